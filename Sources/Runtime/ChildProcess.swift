import Foundation
import LogFiles
import NIOConcurrencyHelpers

/// A child process whose exit can be awaited by any number of tasks.
public final class ChildProcess: Sendable {
    private let process: Process
    private let state = ExitState()

    /// Starts `executable` with `arguments`, its output and errors appended to `logPath`, its input empty,
    /// and every signal's handling back at its default.
    ///
    /// The daemon ignores SIGTERM and SIGINT (it hears them through dispatch sources), and an ignored
    /// signal stays ignored across `exec`: without the reset, an instance would never hear the SIGTERM
    /// that asks it to stop gracefully, and would wait out its stop timeout for SIGKILL. Foundation's
    /// `Process` clears the signal mask but not the dispositions, so the child goes through coreutils'
    /// `env --default-signal`, which resets them and then execs it (same pid).
    public init(executable: String, arguments: [String], environment: [String: String]? = nil, logPath: String) throws(RuntimeError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["--default-signal", "--", executable] + arguments
        if let environment { process.environment = environment }
        // Emptied at each start, and appended to (the daemon empties it again when it passes its limit).
        guard let fd = LogFile.openForAppending(logPath, emptied: true) else {
            throw .setupFailed(instance: logPath, reason: "cannot open its log file")
        }
        let log = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        self.process = process
        process.terminationHandler = { [state] finished in
            let status = finished.terminationReason == .uncaughtSignal ? 128 + finished.terminationStatus : finished.terminationStatus
            let waiters = state.withLock { value in
                value.status = status
                defer { value.waiters = [] }
                return value.waiters
            }
            for waiter in waiters { waiter.resume(returning: status) }
        }
        do { try process.run() } catch {
            throw .setupFailed(instance: executable, reason: "cannot start \(executable): \(error.localizedDescription)")
        }
        try? log.close()
    }

    public var pid: Int32 { process.processIdentifier }

    /// The exit status, once the process has exited (128 + N when a signal N ended it).
    public var exitStatus: Int32? { state.withLock { $0.status } }

    /// Waits until the process exits and returns its status.
    public func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let done = state.withLock { value -> Int32? in
                if let status = value.status { return status }
                value.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Waits at most `timeout` for the exit; true if the process has exited.
    public func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while exitStatus == nil, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return exitStatus != nil
    }

    public func signal(_ signal: Int32) {
        if exitStatus == nil { kill(process.processIdentifier, signal) }
    }
}

/// The exit status once known, and the tasks waiting for it.
private final class ExitState: Sendable {
    private let mutex = NIOLockedValueBox<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    func withLock<T>(_ body: (inout (status: Int32?, waiters: [CheckedContinuation<Int32, Never>])) -> T) -> T {
        mutex.withLockedValue { body(&$0) }
    }
}

/// Runs a short helper command to completion and returns its status and output.
func runHelper(_ executable: String, _ arguments: [String]) async -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch { return (-1, "cannot start \(executable): \(error.localizedDescription)") }
    let data = await Task.detached { pipe.fileHandleForReading.readDataToEndOfFile() }.value
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The full path of `program` on `PATH` (or in the usual system folders), if it is installed.
func findProgram(_ program: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let folders = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    return folders.map { "\($0)/\(program)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}
