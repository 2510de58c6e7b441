import CommandLineTesting
import Foundation
import Testing

/// Every file below a folder with its size, for "nothing changed" checks.
func snapshot(_ directory: String) -> [String] {
    guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
    var result: [String] = []
    while let item = enumerator.nextObject() as? String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: directory + "/" + item)
        result.append("\(item) \(attributes?[.size] ?? 0)")
    }
    return result.sorted()
}

/// The pinned busybox-static package (fetched by fixtures/debs/fetch).
let busyboxDeb = repositoryRoot + "/fixtures/debs/busybox-static.deb"
/// A program of the venv `.ci/install-deps --test` makes for the PyPI validators (pyspdxtools, and python
/// with in-toto-attestation).
func attestationTool(_ name: String) -> String {
    let environment = ProcessInfo.processInfo.environment
    let venv = environment["ATTEST_VENV"] ?? ((environment["HOME"] ?? "/root") + "/.cache/imgbuild/attest-venv")
    return venv + "/bin/" + name
}

let busyboxSHA256 = "3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744"


/// The layer digests of a manifest in a store.
func layerDigests(store: String, manifest: String) throws -> [String] {
    let json = try readJSON(store: store, digest: manifest)
    return (json["layers"] as! [[String: Any]]).map { $0["digest"] as! String }
}

/// A referrer of `subject` in a store, found by its artifact type (a subject may have several: a
/// signature, an SBOM, a provenance statement and a test record, listed in no particular order).
struct StoredReferrer {
    /// The referrer manifest's digest.
    let digest: String
    let manifest: [String: Any]
    /// The bytes of the manifest's first layer: the payload, the document or the statement.
    let payload: Data

    init(store: String, repository: String = "hello", subject: String, artifactType: String) throws {
        let folder = store + "/repositories/\(repository)/referrers/sha256-" + subject.dropFirst(7)
        for record in try FileManager.default.contentsOfDirectory(atPath: folder).sorted() {
            let manifest = try readJSON(store: store, digest: "sha256:" + record.dropFirst(7))
            guard manifest["artifactType"] as? String == artifactType,
                  let layer = (manifest["layers"] as? [[String: Any]])?.first,
                  let layerDigest = layer["digest"] as? String else { continue }
            self.digest = "sha256:" + record.dropFirst(7)
            self.manifest = manifest
            self.payload = try Data(contentsOf: URL(fileURLWithPath: store + "/blobs/sha256/" + layerDigest.dropFirst(7)))
            return
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "no \(artifactType) referrer in \(folder)"])
    }

    /// The path of the manifest blob in the store.
    func manifestPath(store: String) -> String { store + "/blobs/sha256/" + digest.dropFirst(7) }
}
