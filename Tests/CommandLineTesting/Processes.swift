import Foundation

/// The repository's root folder.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The `imgbuild` executable that `swift build --build-tests` put beside the test bundle.
public let imgbuildBinary: String = {
    if let explicit = ProcessInfo.processInfo.environment["IMGBUILD_BIN"] { return explicit }
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("imgbuild").path,
        repositoryRoot + "/.build/debug/imgbuild",
    ]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[1]
}()

/// What a finished process left.
public struct ProcessResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// The last line of standard output.
    public var lastLine: String { stdout.split(separator: "\n").last.map(String.init) ?? "" }
}

/// Runs a program and waits for it. `umask` is applied through `/bin/sh`.
@discardableResult
public func run(_ program: String, _ arguments: [String], environment: [String: String] = [:], umask: String? = nil,
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
public func imgbuild(_ arguments: [String], environment: [String: String] = [:], umask: String? = nil, directory: String? = nil) throws -> ProcessResult {
    var env = ["IMGBUILD_CACHE": scratchRoot + "/cache", "SOURCE_DATE_EPOCH": ""]
    for (key, value) in environment { env[key] = value }
    return try run(imgbuildBinary, arguments, environment: env, umask: umask, directory: directory)
}

/// A per-run scratch folder under the system's temporary folder, removed when the test process exits
/// (a whole run leaves over a gigabyte of stores and images in it). `IMGBUILD_KEEP_SCRATCH=1` keeps it.
public let scratchRoot: String = {
    let path = scratchPath(of: getpid())
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    if ProcessInfo.processInfo.environment["IMGBUILD_KEEP_SCRATCH"] != "1" {
        atexit { try? FileManager.default.removeItem(atPath: scratchPath(of: getpid())) }
    }
    return path
}()

private func scratchPath(of pid: pid_t) -> String {
    NSTemporaryDirectory() + "imgbuild-tests-\(pid)"
}

/// A new, empty folder for one test.
public func makeTemporaryDirectory(_ name: String = "t") -> String {
    let path = scratchRoot + "/\(name)-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes a text file, creating folders.
public func write(_ text: String, to path: String, mode: Int = 0o644) {
    let url = URL(fileURLWithPath: path)
    try! FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try! Data(text.utf8).write(to: url)
    chmod(path, mode_t(mode))
}

/// The JSON object of a blob in a store.
public func readJSON(store: String, digest: String) throws -> [String: Any] {
    let hex = digest.replacingOccurrences(of: "sha256:", with: "")
    let data = try Data(contentsOf: URL(fileURLWithPath: store + "/blobs/sha256/" + hex))
    return try JSONSerialization.jsonObject(with: data) as! [String: Any]
}
