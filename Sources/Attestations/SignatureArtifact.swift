import Foundation
import OCI
import Signing
import Store

/// Signatures kept beside images: an OCI artifact whose `subject` is the image manifest, so registries
/// list it through the referrers API, and which is also tagged `sha256-<hex>.sig` for registries without
/// that API (cosign's tag scheme).
///
/// The artifact's one layer is the simple-signing payload; the signature (ASN.1 DER, base64) sits in the
/// layer's `dev.cosignproject.cosign/signature` annotation, as cosign writes it.
public enum SignatureArtifact {
    public static let artifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
    public static let payloadMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
    public static let signatureAnnotation = "dev.cosignproject.cosign/signature"

    /// The tag a signature of `digest` carries where the referrers API is missing.
    public static func tag(for digest: Digest) -> String { ReferrerTag.tag(subject: digest, suffix: ReferrerTag.signature) }

    /// Signs `image` (a manifest of `repository` in `store`) with `key`; returns the signature manifest's descriptor.
    public static func sign(_ image: Descriptor, repository: RepositoryName, in store: Store, with key: SigningKey) throws -> Descriptor {
        let payload = SimpleSigningPayload(repository: repository.value, digest: image.digest).bytes
        let signature = try key.sign(payload)
        return try ReferrerArtifact.store(payload, mediaType: payloadMediaType,
                                          annotations: [signatureAnnotation: signature.base64EncodedString()],
                                          artifactType: artifactType, subject: image, repository: repository, in: store,
                                          tag: tag(for: image.digest))
    }

    /// Why an image's signatures do not verify.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unsigned(image: String)
        case rejected(image: String, reasons: [String])

        public var description: String {
            switch self {
            case .unsigned(let image):
                return "\(image) has no signature: sign it with `imgbuild sign \(image) --key KEY`, or pull it with its referrers"
            case let .rejected(image, reasons):
                return "no signature of \(image) verifies with this key: " + reasons.joined(separator: "; ")
            }
        }
    }

    /// Checks that at least one signature referring to `image` verifies with `key` and binds this digest
    /// and repository. Returns the verified signature manifests' digests.
    public static func verify(_ image: Digest, repository: RepositoryName, in store: Store, with key: VerifyingKey) throws(Failure) -> [Digest] {
        let candidates = ReferrerArtifact.referring(to: image, artifactType: artifactType, repository: repository, in: store)
        let label = "\(repository)@\(image)"
        guard !candidates.isEmpty else { throw .unsigned(image: label) }
        var verified: [Digest] = []
        var reasons: [String] = []
        for (digest, loaded) in candidates {
            switch loaded.map({ check($0, image: image, repository: repository, key: key) }) {
            case .success(nil): verified.append(digest)
            case .success(let reason?): reasons.append("\(digest): \(reason)")
            case .failure(let problem): reasons.append("\(digest): \(problem.reason)")
            }
        }
        guard !verified.isEmpty else { throw .rejected(image: label, reasons: reasons) }
        return verified
    }

    /// Nil when the signature artifact verifies, else why not.
    static func check(_ artifact: ReferrerArtifact.Loaded, image: Digest, repository: RepositoryName, key: VerifyingKey) -> String? {
        guard artifact.layer.mediaType == payloadMediaType else { return "not a signature manifest" }
        guard let encoded = artifact.layer.annotations?[signatureAnnotation], let signature = Data(base64Encoded: encoded) else {
            return "it carries no signature annotation"
        }
        guard key.verify(signature, over: artifact.payload) else {
            return "the signature does not match the payload with this key (signed by another key, or the payload was altered)"
        }
        let statement: SimpleSigningPayload
        do { statement = try SimpleSigningPayload(parsing: artifact.payload) } catch { return error.description }
        guard statement.digest == image else { return "the payload signs another digest, \(statement.digest)" }
        guard statement.repository == repository.value else { return "the payload signs the repository '\(statement.repository)', not '\(repository)'" }
        return nil
    }
}
