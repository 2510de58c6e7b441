import Foundation
import OCI

/// The payload a signature covers, in the structure of cosign's simple signing: it binds the image's
/// manifest digest to the repository it was signed for.
///
/// ```json
/// {"critical":{"identity":{"docker-reference":"hello"},"image":{"docker-manifest-digest":"sha256:…"},
///  "type":"cosign container image signature"},"optional":null}
/// ```
public struct SimpleSigningPayload: Equatable, Sendable {
    public static let type = "cosign container image signature"
    public var repository: String
    public var digest: Digest

    public init(repository: String, digest: Digest) {
        self.repository = repository
        self.digest = digest
    }

    /// The payload's bytes, canonical JSON (sorted keys, no spaces).
    public var bytes: Data {
        let object: [String: Any] = [
            "critical": [
                "identity": ["docker-reference": repository],
                "image": ["docker-manifest-digest": digest.description],
                "type": SimpleSigningPayload.type,
            ] as [String: Any],
            "optional": NSNull(),
        ]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    /// Reads a payload, refusing anything that is not exactly this structure.
    public init(parsing data: Data) throws(SigningError) {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .badPayload("it is not a JSON object (truncated or damaged)")
        }
        guard let critical = object["critical"] as? [String: Any],
              let identity = critical["identity"] as? [String: Any], let repository = identity["docker-reference"] as? String,
              let image = critical["image"] as? [String: Any], let digestText = image["docker-manifest-digest"] as? String,
              critical["type"] as? String == SimpleSigningPayload.type else {
            throw .badPayload("critical.identity, critical.image or critical.type is missing or wrong")
        }
        do { digest = try Digest(parsing: digestText) } catch { throw .badPayload("its digest: \(error)") }
        self.repository = repository
    }
}
