import Foundation
import Testing

/// The repository's root folder.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The `imgbuild` executable that `swift build --build-tests` put beside the test bundle.
let imgbuildBinary: String = {
    if let explicit = ProcessInfo.processInfo.environment["IMGBUILD_BIN"] { return explicit }
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("imgbuild").path,
        repositoryRoot + "/.build/debug/imgbuild",
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
}()

/// What a finished process left.
struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String

    /// The last line of standard output.
    var lastLine: String { stdout.split(separator: "\n").last.map(String.init) ?? "" }
}

/// Runs a program and waits for it. `umask` is applied through `/bin/sh`.
@discardableResult
func run(_ program: String, _ arguments: [String], environment: [String: String] = [:], umask: String? = nil,
         directory: String? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    let script = "\(umask.map { "umask \($0); " } ?? "")exec \"$0\" \"$@\""
    process.arguments = ["-c", script, program] + arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes while the process runs so a full pipe cannot block it.
    nonisolated(unsafe) var errData = Data()
    let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !reader.isFinished { usleep(1000) }
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs `imgbuild` with a private cache folder.
@discardableResult
func imgbuild(_ arguments: [String], environment: [String: String] = [:], umask: String? = nil) throws -> ProcessResult {
    var env = ["IMGBUILD_CACHE": scratchRoot + "/cache", "SOURCE_DATE_EPOCH": ""]
    for (key, value) in environment { env[key] = value }
    return try run(imgbuildBinary, arguments, environment: env, umask: umask)
}

/// A per-run scratch folder under the system's temporary folder.
let scratchRoot: String = {
    let path = NSTemporaryDirectory() + "imgbuild-tests-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

/// A new, empty folder for one test.
func makeTemporaryDirectory(_ name: String = "t") -> String {
    let path = scratchRoot + "/\(name)-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes a text file, creating folders.
func write(_ text: String, to path: String, mode: Int = 0o644) {
    let url = URL(fileURLWithPath: path)
    try! FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try! Data(text.utf8).write(to: url)
    chmod(path, mode_t(mode))
}

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

/// The JSON object of a blob in a store.
func readJSON(store: String, digest: String) throws -> [String: Any] {
    let hex = digest.replacingOccurrences(of: "sha256:", with: "")
    let data = try Data(contentsOf: URL(fileURLWithPath: store + "/blobs/sha256/" + hex))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

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
