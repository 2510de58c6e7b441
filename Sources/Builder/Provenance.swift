import Foundation
import Imagefile
import Layers
import OCI

/// An in-toto statement (v1) with a SLSA provenance predicate (v1) for a build: the Imagefile's digest,
/// every input's digest (context files, dependencies, base), the builder's version and the parameters
/// that decide the output. It has no clock time in it, only SOURCE_DATE_EPOCH, so the same build gives
/// the same statement.
struct Provenance {
    static let builderVersion = "0.1.0"
    static let mediaType = "application/vnd.in-toto+json"

    var imagefile: Imagefile
    var image: Descriptor
    var version: String
    var compression: Compression
    var epoch: Int64
    var platform: Platform
    var baseDigest: Digest?
    var contextFiles: [String]

    func statement() throws -> Data {
        var dependencies: [[String: Any]] = []
        let imagefileData = try Data(contentsOf: URL(fileURLWithPath: imagefile.path))
        dependencies.append(["uri": "file:Imagefile", "digest": ["sha256": Digest.of(imagefileData).hex]])
        let root = imagefile.contextDirectory.hasSuffix("/") ? imagefile.contextDirectory : imagefile.contextDirectory + "/"
        for file in contextFiles.sorted(by: LayerPath.precedes) {
            let digest = try Digest.ofFile(atPath: file).digest
            let relative = file.hasPrefix(root) ? String(file.dropFirst(root.count)) : file
            dependencies.append(["uri": "file:" + relative, "digest": ["sha256": digest.hex]])
        }
        for dependency in imagefile.dependencies {
            let uri: String
            switch dependency.source {
            case .deb(let path): uri = "deb:" + path
            case .archive(let path): uri = "archive:" + path
            case .url(let url): uri = url
            }
            dependencies.append(["uri": uri, "digest": ["sha256": dependency.sha256.hex]])
        }
        if let baseDigest {
            dependencies.append(["uri": "oci:base@\(baseDigest)", "digest": ["sha256": baseDigest.hex]])
        }
        let statement: [String: Any] = [
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [["name": imagefile.name.value, "digest": ["sha256": image.digest.hex]]],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": [
                "buildDefinition": [
                    "buildType": "https://imgbuild.invalid/imagefile/v1",
                    "externalParameters": [
                        "imagefile": "Imagefile",
                        "name": imagefile.name.value,
                        "version": version,
                        "compression": compression.rawValue,
                        "sourceDateEpoch": epoch,
                        "platform": platform.description,
                    ] as [String: Any],
                    "resolvedDependencies": dependencies,
                ] as [String: Any],
                "runDetails": [
                    "builder": ["id": "https://imgbuild.invalid/imgbuild", "version": ["imgbuild": Provenance.builderVersion]],
                    "metadata": ["invocationId": "\(imagefile.name):\(version)", "startedOn": RFC3339.string(fromEpochSeconds: epoch)],
                ] as [String: Any],
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: statement, options: [.sortedKeys, .withoutEscapingSlashes])
    }
}
