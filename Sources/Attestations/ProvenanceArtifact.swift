import Foundation
import OCI
import Store

/// An in-toto statement (v1) with a SLSA provenance predicate (v1) for a build: every input by digest
/// (the build definition, context files, dependencies, base), the builder's version and the parameters
/// that decide the output. It holds no clock time, only the build's SOURCE_DATE_EPOCH, so the same build
/// gives the same statement. Kept as a referrer of the image, tagged `sha256-<hex>.att`.
public struct ProvenanceStatement: Sendable {
    public static let builderVersion = "0.1.0"
    public static let mediaType = "application/vnd.in-toto+json"

    /// An input of the build, named by URI (`file:Imagefile`, `file:app/main.py`, `deb:…`, a URL, `oci:base@…`).
    public struct Material: Sendable {
        public enum Content: Sendable {
            /// A file read when the statement is written, and hashed then.
            case file(path: String)
            /// Bytes already known by digest.
            case digest(Digest)
        }

        public var uri: String
        public var content: Content

        public init(uri: String, content: Content) {
            self.uri = uri
            self.content = content
        }
    }

    /// A value of `externalParameters`.
    public enum Parameter: Sendable {
        case text(String)
        case number(Int64)
        var json: Any {
            switch self {
            case .text(let text): text
            case .number(let number): number
            }
        }
    }

    /// The image's repository name, as the subject's name.
    public var subjectName: String
    public var image: Descriptor
    public var buildType: String
    public var externalParameters: [String: Parameter]
    /// In the order they are listed.
    public var materials: [Material]
    public var invocationID: String
    /// The build's SOURCE_DATE_EPOCH, as `startedOn`.
    public var epoch: Int64

    public init(subjectName: String, image: Descriptor, buildType: String, externalParameters: [String: Parameter],
                materials: [Material], invocationID: String, epoch: Int64) {
        self.subjectName = subjectName
        self.image = image
        self.buildType = buildType
        self.externalParameters = externalParameters
        self.materials = materials
        self.invocationID = invocationID
        self.epoch = epoch
    }

    /// The statement's JSON, keys sorted: file materials are hashed now.
    public func document() throws -> Data {
        let dependencies: [[String: Any]] = try materials.map { material in
            let digest: Digest
            switch material.content {
            case .file(let path): digest = try Digest.ofFile(atPath: path).digest
            case .digest(let known): digest = known
            }
            return ["uri": material.uri, "digest": ["sha256": digest.hex]]
        }
        let statement: [String: Any] = [
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [["name": subjectName, "digest": ["sha256": image.digest.hex]]],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": [
                "buildDefinition": [
                    "buildType": buildType,
                    "externalParameters": externalParameters.mapValues(\.json),
                    "resolvedDependencies": dependencies,
                ] as [String: Any],
                "runDetails": [
                    "builder": ["id": "https://imgbuild.invalid/imgbuild", "version": ["imgbuild": Self.builderVersion]],
                    "metadata": ["invocationId": invocationID, "startedOn": RFC3339.string(fromEpochSeconds: epoch)],
                ] as [String: Any],
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: statement, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Keeps the statement as a referrer of the image in `repository`.
    public func attach(repository: RepositoryName, in store: Store) throws -> Descriptor {
        try ReferrerArtifact.store(try document(), mediaType: Self.mediaType, artifactType: Self.mediaType, subject: image,
                                   repository: repository, in: store,
                                   tag: ReferrerTag.tag(subject: image.digest, suffix: ReferrerTag.attestation))
    }
}
