import CDescriptorPassing
import Dispatch
import Foundation
import LogFiles
import LoadBalancer
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's side of a front's control socket.
public struct FrontClient: Sendable {
    public let controlPath: String
    /// How long a front has to answer one request.
    public var timeout: Duration = .seconds(5)
    /// Requests go out one at a time, in the order they were made (a later pool change never arrives first).
    private let queue: DispatchQueue

    public init(controlPath: String) {
        self.controlPath = controlPath
        self.queue = DispatchQueue(label: "front-client")
    }

    /// What the front is doing.
    public func state() async throws(FrontError) -> FrontState {
        try await ask(FrontRequest(.state))
    }

    /// Sends new requests to `backends`, all at once, and a share of them to a `canary`'s backends if one
    /// is given, unless the front has applied a later `version`; returns the front's state after the
    /// request (which shows what is in force).
    @discardableResult
    public func setActive(_ backends: [Backend], canary: CanarySplit? = nil, version: UInt64? = nil) async throws(FrontError) -> FrontState {
        try await ask(FrontRequest(.setActive, backends: backends, canary: canary, version: version))
    }

    /// The front's metrics, in the Prometheus text format.
    public func metrics() async throws(FrontError) -> String {
        let reply: FrontReply
        do { reply = try await exchange(FrontRequest(.metrics)) } catch where !error.frontGone {
            throw FrontError("the front at \(controlPath) gave no metrics (a front older than metrics refuses the request: `imgdeploy upgrade-front`): \(error)")
        }
        guard reply.ok, let text = reply.metrics else {
            throw FrontError("the front at \(controlPath) gave no metrics: \(reply.error ?? "it is older than metrics (`imgdeploy upgrade-front`)")")
        }
        return text
    }

    /// A copy of the front's listening socket (close-on-exec), for the daemon to keep: while any process
    /// holds it, connections wait in its queue, so a front that dies and is started again on it refuses
    /// none. A front older than this request, or one that is retiring, gives none.
    public func listeningSocket() async throws(FrontError) -> Int32 {
        let (_, descriptor) = try await exchangeKeepingDescriptor(FrontRequest(.listeningSocket))
        guard let descriptor else { throw FrontError("the front at \(controlPath) sent no listening socket") }
        return descriptor
    }

    /// Stops the front: it stops accepting, lets requests in flight finish, and exits.
    public func stop() async throws(FrontError) {
        _ = try await exchange(FrontRequest(.stop))
    }

    /// Waits until the backend named `id` has no request in flight at the front, or `timeout` passes;
    /// true when drained. A front that is gone has no requests to finish; one that is only slow to
    /// answer may still be relaying some, so it is asked again until the deadline.
    public func drain(_ id: String, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                let state = try await state()
                let assigned = state.active.contains { $0.id == id } || state.canary?.backends.contains { $0.id == id } == true
                if !assigned, (state.inFlight[id] ?? 0) == 0 { return true }
            } catch {
                if error.frontGone { return true }
            }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private func ask(_ request: FrontRequest) async throws(FrontError) -> FrontState {
        let reply = try await exchange(request)
        guard let state = reply.state else { throw FrontError("the front at \(controlPath) answered without its state") }
        return state
    }

    private func exchange(_ request: FrontRequest) async throws(FrontError) -> FrontReply {
        let (reply, stray) = try await exchangeKeepingDescriptor(request)
        if let stray { close(stray) }
        return reply
    }

    /// The reply to `request` and the descriptor that came with it, if any (the caller's to close).
    private func exchangeKeepingDescriptor(_ request: FrontRequest) async throws(FrontError) -> (FrontReply, Int32?) {
        let (path, timeout, queue) = (controlPath, self.timeout, self.queue)
        // Blocking socket calls, off the concurrency pool's few threads.
        let result: Result<(FrontReply, Int32?), FrontError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(FrontError) -> (FrontReply, Int32?) in
                    let connection = try UnixConnection.connect(to: path, timeout: timeout)
                    try connection.send(request)
                    return try connection.receive(FrontReply.self)
                })
            }
        }
        let (reply, descriptor) = try result.get()
        guard reply.ok else {
            if let descriptor { close(descriptor) }
            throw FrontError("the front at \(path) refused '\(request.op.rawValue)': \(reply.error ?? "no reason given")")
        }
        return (reply, descriptor)
    }
}

/// Starts fronts as processes of their own: in a new session, not children that die with the daemon.
public struct FrontLauncher: Sendable {
    /// The imgdeploy executable that runs `imgdeploy front`.
    public var executable: String
    public var idleTimeout: Int = 60
    public var maxConnections: Int = 4096
    public var drainTimeout: Int = 30
    /// How long a front started may take to answer on its control socket.
    public var startTimeout: Duration = .seconds(15)

    public init(executable: String = FrontLauncher.currentExecutable()) {
        self.executable = executable
    }

    /// The path of the running executable as it is on disk now (a newer binary installed over it is what runs next).
    public static func currentExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        var path = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        return path
    }

    /// The identity `FrontState.executable` would show for a front started now.
    public var executableIdentity: String { FrontProcess.identity(ofFile: executable) }

    /// Starts a front that serves `socket` (a listening socket; this process's copy is closed) with its
    /// control socket at `controlPath`; returns its state once it answers there.
    public func start(socket: Int32, controlPath: String, logPath: String) async throws(FrontError) -> FrontState {
        defer { close(socket) }
        try spawn(takeOver: false, input: socket, controlPath: controlPath, logPath: logPath)
        return try await waitForFront(at: controlPath, other: nil, logPath: logPath)
    }

    /// Starts a front that takes the listening socket over from the one at `controlPath`, which then
    /// finishes its connections and exits; returns the new front's state once it serves.
    public func replace(controlPath: String, logPath: String) async throws(FrontError) -> FrontState {
        let old = try await FrontClient(controlPath: controlPath).state()
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(null) }
        try spawn(takeOver: true, input: null, controlPath: controlPath, logPath: logPath)
        return try await waitForFront(at: controlPath, other: old.pid, logPath: logPath)
    }

    private func spawn(takeOver: Bool, input: Int32, controlPath: String, logPath: String) throws(FrontError) {
        guard let setsid = ["/usr/bin/setsid", "/bin/setsid"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw FrontError("setsid (Debian package util-linux) is not installed; the front runs in a session of its own through it")
        }
        guard let log = LogFile.openForAppending(logPath) else { throw .system("cannot open the front's log \(logPath)") }
        defer { close(log) }
        // The daemon publishes a service's front at fronts/SERVICE.sock: its metrics are labelled with that name.
        let service = URL(fileURLWithPath: controlPath).deletingPathExtension().lastPathComponent
        var arguments = [setsid, "--fork", executable, "front", "--control", controlPath, "--service", service,
                         "--idle-timeout", String(idleTimeout), "--max-connections", String(maxConnections),
                         "--drain-timeout", String(drainTimeout)]
        if takeOver { arguments.append("--take-over") }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = imgdeploy_spawn_clean(setsid, argv, environ, input, log, &pid)
        guard spawned == 0 else { throw FrontError("cannot start \(executable) front: \(String(cString: strerror(spawned)))") }
        // setsid forks the front and exits at once; the front is nobody's child here.
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    private func waitForFront(at controlPath: String, other: Int32?, logPath: String) async throws(FrontError) -> FrontState {
        let client = FrontClient(controlPath: controlPath)
        let deadline = ContinuousClock.now + startTimeout
        while ContinuousClock.now < deadline {
            if let state = try? await client.state(), state.pid != other { return state }
            try? await Task.sleep(for: .milliseconds(25))
        }
        let tail = LogFile.tail(of: logPath, bytes: 600).trimmingCharacters(in: .whitespacesAndNewlines)
        throw FrontError("the front did not start serving within \(startTimeout); its log (\(logPath)) ends: \(tail.isEmpty ? "(empty)" : tail)")
    }
}
