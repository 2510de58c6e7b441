import Foundation
import LoadBalancer
import NIOCore
import ProcessLimits
import CoreMetrics
import Prometheus
import Synchronization
import TerminationSignals
#if canImport(Glibc)
import Glibc
import NIOConcurrencyHelpers
#endif

/// `imgdeploy front`: one service's load balancer as a process of its own, so the daemon can die, restart
/// or be replaced while traffic flows. It listens on a socket it inherited (standard input) or took over
/// from the front it replaces, and obeys requests on its control socket.
public enum FrontProcess {
    public struct Options: Sendable {
        /// Where its control socket is published (a socket there already is the front it replaces).
        public var controlPath: String
        /// Take the listening socket and state from the front at `controlPath`, instead of inheriting the socket as standard input.
        public var takeOver: Bool
        public var idleTimeout: TimeAmount
        public var maxConnections: Int
        /// How long a retiring front waits for its connections' next requests before closing them.
        public var drainTimeout: Duration
        /// The service it fronts, as its metrics are labelled.
        public var service: String

        public init(controlPath: String, takeOver: Bool, idleTimeout: TimeAmount = .seconds(60), maxConnections: Int = 4096,
                    drainTimeout: Duration = .seconds(30), service: String = "") {
            self.service = service
            self.controlPath = controlPath
            self.takeOver = takeOver
            self.idleTimeout = idleTimeout
            self.maxConnections = maxConnections
            self.drainTimeout = drainTimeout
        }
    }

    /// The latency histogram's buckets, as Prometheus' client libraries default them (5 ms to 10 s) with
    /// 1 and 2.5 ms added below: a front's answers are often quicker than 5 ms.
    static let latencyBuckets: [Duration] = [.milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                             .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                             .microseconds(2_500_000), .seconds(5), .seconds(10)]

    /// A Prometheus registry for a front's metrics, and the swift-metrics factory that records into it
    /// (with ``latencyBuckets``). `imgdeploy proxy` makes one too, so that it counts as a front does.
    public static func metricsRegistry() -> (factory: any MetricsFactory, registry: PrometheusCollectorRegistry) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = latencyBuckets
        return (factory, registry)
    }

    /// How a front ends.
    enum Ending: Sendable {
        /// Its successor has the socket: finish every connection, leave the control socket (it is the successor's now).
        case retire
        /// The service is going down: stop accepting, let requests in flight finish, remove the control socket.
        case stop
    }

    /// Runs the front until it is stopped or replaced. Each line it logs begins with its time and pid, since
    /// a front being replaced and its successor write to the same log.
    public static func run(_ options: Options, log write: @escaping @Sendable (String) -> Void) async throws {
        let pid = getpid()
        let log: @Sendable (String) -> Void = { line in
            write("imgdeploy front: \(Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))) [\(pid)] \(line)")
        }
        // Its own registry: what `metrics` answers (each front counts from its start; a successor starts again).
        let (factory, registry) = metricsRegistry()
        let pool = BackendPool(metricsFactory: factory, service: options.service)
        let failures = FailureLog(log: log)
        let balancer = LoadBalancer(pool: pool, idleTimeout: options.idleTimeout, maxConnections: options.maxConnections,
                                    onFailure: { failures.note($0) })
        var predecessor: UnixConnection?
        var predecessors: [RetiringFront] = []
        var activeVersion: UInt64 = 0
        var takenOverState: FrontState?
        let socket: Int32
        if options.takeOver {
            let connection = try UnixConnection.connect(to: options.controlPath, timeout: .seconds(10))
            try connection.send(FrontRequest(.handover))
            let (reply, descriptor) = try connection.receive(FrontReply.self)
            guard reply.ok, let state = reply.state, let descriptor else {
                throw FrontError("the running front did not hand over its socket: \(reply.error ?? "no descriptor came")")
            }
            // The split goes on; its window's figures start again here (they are counted where requests are relayed).
            pool.setActive(state.active, canary: state.canary)
            activeVersion = state.activeVersion ?? 0
            // It runs now (it answered, and waits for this front's `retire`), so its start time names it.
            if let started = ProcessStart.of(state.pid) { predecessors.append(RetiringFront(pid: state.pid, startTime: started)) }
            predecessors += state.predecessors ?? []
            balancer.metrics.add(state.counts)
            socket = descriptor
            predecessor = connection
            takenOverState = state
            if state.features?.contains("pause") == true {
                // The old front stops accepting before this one starts, so the two never accept at once.
                try connection.send(FrontRequest(.pause))
                let (paused, _) = try connection.receive(FrontReply.self)
                guard paused.ok else { throw FrontError("the running front did not stop accepting: \(paused.error ?? "no reason given")") }
            }
        } else {
            var info = stat()
            guard fstat(0, &info) == 0, (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw FrontError("standard input is not a listening socket: the daemon starts fronts (`imgdeploy up`), or use `imgdeploy proxy`")
            }
            socket = fcntl(0, F_DUPFD_CLOEXEC, 0)
            let null = open("/dev/null", O_RDONLY)
            dup2(null, 0)
            close(null)
        }
        // A front the daemon starts (not one that takes over, which carries its predecessor's pool on, unless
        // that one was waiting for its own) accepts once the daemon has told it where to send requests: a
        // connection that waited in the socket's queue (the front before it died) is not answered 503 for
        // want of a pool the daemon is about to send.
        let awaitingPool = !options.takeOver || takenOverState?.awaitingPool == true
        let port = try await balancer.start(listeningSocket: socket, held: awaitingPool)

        let (endings, ending) = AsyncStream<Ending>.makeStream()
        let listener = try UnixListener(publishingAt: options.controlPath)
        let control = ControlLoop(listener: listener, controlPath: options.controlPath, balancer: balancer, port: port,
                                  executable: executableIdentity(), ending: ending, activeVersion: activeVersion,
                                  predecessors: predecessors, registry: registry, awaitingPool: awaitingPool, log: log)
        control.publish()
        if let predecessor {
            // The socket is served here now; the old front may finish and go.
            try? predecessor.send(FrontRequest(.retire))
            _ = try? predecessor.receive(FrontReply.self)
        }
        log("serving port \(port), control \(options.controlPath)")
        control.start()
        if awaitingPool {
            // A daemon that says nothing (it died as it started this front) does not keep the service shut.
            // (On a dispatch thread: it waits until accepting has begun.)
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(ControlLoop.poolWaitSeconds)) {
                control.acceptOnceThePoolIsKnown(late: true)
            }
        }
        let signals = TerminationSignals { ending.yield(.stop) }
        defer { signals.cancel() }

        var how = Ending.stop
        for await next in endings {
            how = next
            break
        }
        control.stop()
        switch how {
        case .retire:
            log("handed over; finishing \(balancer.openConnections) connection(s)")
            await balancer.retire(timeout: options.drainTimeout)
        case .stop:
            log("stopping")
            await balancer.stop(timeout: options.drainTimeout)
            // Unless a successor has replaced it meanwhile, the control socket goes with this front.
            if let published = control.publishedInode, inode(options.controlPath) == published { unlink(options.controlPath) }
        }
        let counts = balancer.metrics.snapshot
        log("done; \(counts.requests) requests, \(counts.failed) failed, \(counts.retried) retried")
    }

    /// The inode of the file at `path`, if there is one.
    static func inode(_ path: String) -> UInt? {
        var info = stat()
        return lstat(path, &info) == 0 ? UInt(info.st_ino) : nil
    }

    /// Device, inode, size and modification time of the running executable.
    public static func executableIdentity() -> String {
        identity(ofFile: "/proc/self/exe")
    }

    /// Device, inode, size and modification time of a file (following links); empty if it cannot be read.
    public static func identity(ofFile path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return "" }
        return "\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
    }
}

/// The control socket's accept loop, on a thread of its own, and each connection on another (requests are
/// small and answered at once; only the owner can connect).
final class ControlLoop: @unchecked Sendable {
    /// The control socket being accepted on: the one this front published, or the one it published again
    /// when a successor that had replaced it died before taking over; with the inode it had when published.
    private let listening: NIOLockedValueBox<(listener: UnixListener, inode: UInt?, stopped: Bool)>
    let controlPath: String
    let log: @Sendable (String) -> Void
    let balancer: LoadBalancer
    let port: Int
    let executable: String
    let ending: AsyncStream<FrontProcess.Ending>.Continuation
    private let retiring = Atomic<Bool>(false)
    /// A successor has the socket and has not yet retired this front or gone: a second is refused, or two
    /// could take over and one be left serving without a control socket.
    private let handoverUnderWay = Atomic<Bool>(false)
    /// Control connections being served; at ``connectionLimit`` the accept loop waits, and further
    /// connections wait in the kernel's queue, so silent clients cannot make the front spawn threads
    /// without bound (each is closed by its read timeout, 5 s).
    private let serving = Atomic<Int>(0)
    static let connectionLimit = 32
    /// This front was started by the daemon and has not accepted yet: it does at the first `set-active`, or
    /// after ``poolWaitSeconds``.
    private let awaitingPool: Synchronization.Atomic<Bool>
    static let poolWaitSeconds = 5
    /// The version of the last `set-active` applied; checked and changed with the pool, under this lock.
    private let activeVersion: NIOLockedValueBox<UInt64>
    /// The fronts this one replaced that may still run (see ``FrontState/predecessors``).
    private let predecessors: [RetiringFront]
    private let registry: PrometheusCollectorRegistry

    init(listener: UnixListener, controlPath: String, balancer: LoadBalancer, port: Int, executable: String,
         ending: AsyncStream<FrontProcess.Ending>.Continuation, activeVersion: UInt64, predecessors: [RetiringFront] = [],
         registry: PrometheusCollectorRegistry, awaitingPool: Bool = false, log: @escaping @Sendable (String) -> Void) {
        self.awaitingPool = Synchronization.Atomic(awaitingPool)
        self.registry = registry
        self.activeVersion = NIOLockedValueBox(activeVersion)
        self.predecessors = predecessors
        self.listening = NIOLockedValueBox((listener, nil, false))
        self.controlPath = controlPath
        self.log = log
        self.balancer = balancer
        self.port = port
        self.executable = executable
        self.ending = ending
    }

    /// The inode the control socket had when this front (last) published it.
    var publishedInode: UInt? { listening.withLockedValue { $0.inode } }

    /// Moves the control socket to its path, where the daemon and successors find it.
    func publish() {
        listening.withLockedValue { state in
            state.listener.path.publish()
            state.inode = FrontProcess.inode(controlPath)
        }
    }

    func start() {
        startAccepting(listening.withLockedValue { $0.listener })
    }

    private func startAccepting(_ listener: UnixListener) {
        let thread = Thread { [self] in
            while true {
                while serving.load(ordering: .relaxed) >= Self.connectionLimit { usleep(10_000) }
                guard let connection = listener.accept(timeout: .seconds(5)) else { break }
                // A connection of its own thread: one that sends nothing (or a successor between handover and
                // retire) never holds up the daemon's requests.
                serving.wrappingAdd(1, ordering: .relaxed)
                Thread { [self] in
                    serve(connection)
                    serving.wrappingSubtract(1, ordering: .relaxed)
                }.start()
            }
            close(listener.fd)
        }
        thread.name = "front-control"
        thread.start()
    }

    func stop() {
        let listener = listening.withLockedValue { state in
            state.stopped = true
            return state.listener
        }
        listener.shutdown()
    }

    /// Publishes a new control socket in place of one a successor published and left dead, and accepts on
    /// it; false if it cannot be made (this front then retires rather than serve where nothing can reach it).
    private func publishAgain() -> Bool {
        let fresh: UnixListener
        do {
            fresh = try UnixListener(publishingAt: controlPath)
        } catch {
            log("cannot publish the control socket again, so this front retires: \(error)")
            return false
        }
        let replaced = listening.withLockedValue { state -> UnixListener? in
            guard !state.stopped else { return nil }
            fresh.path.publish()
            defer { (state.listener, state.inode) = (fresh, FrontProcess.inode(controlPath)) }
            return state.listener
        }
        startAccepting(fresh)
        if let replaced {
            replaced.shutdown()
        } else {
            // Stopped meanwhile: it was never published.
            fresh.shutdown()
            try? FileManager.default.removeItem(atPath: fresh.path.folder)
        }
        return true
    }

    /// Whether `process` has ended (or is a zombie) within `time`: a process that closed its end of a
    /// connection by dying may take a moment more to finish exiting.
    private static func ends(_ process: ProcessIdentity, within time: Duration) -> Bool {
        let deadline = ContinuousClock.now + time
        while process.isRunning {
            if ContinuousClock.now >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    /// Ends the hold on accepting of a front that waits for its first pool (accepting then begins, unless a
    /// successor has paused it). `late`: the daemon said nothing for ``poolWaitSeconds``.
    func acceptOnceThePoolIsKnown(late: Bool = false) {
        guard awaitingPool.exchange(false, ordering: .relaxed) else { return }
        if late { log("no pool from the daemon within \(Self.poolWaitSeconds) s; accepting with the pool it has") }
        waitFor { await $0.releaseHold() }
    }

    /// Stops or resumes accepting, waiting until it is done (this thread is the control connection's own).
    private func setAccepting(_ accepting: Bool) {
        waitFor { await $0.setAccepting(accepting) }
    }

    /// Runs `work` on the load balancer and waits until it is done (on a control connection's own thread,
    /// or a timer's).
    private func waitFor(_ work: @escaping @Sendable (LoadBalancer) async -> Void) {
        let done = DispatchSemaphore(value: 0)
        let balancer = self.balancer
        Task {
            await work(balancer)
            done.signal()
        }
        done.wait()
    }

    var state: FrontState {
        let pool = balancer.pool
        let (active, canary, version) = activeVersion.withLockedValue { (pool.active, pool.canary, $0) }
        return FrontState(pid: getpid(), port: port, executable: executable, active: active, canary: canary, window: pool.window,
                          activeVersion: version, inFlight: pool.inFlightByBackend,
                          counts: balancer.metrics.snapshot, connections: balancer.openConnections, retiring: retiring.load(ordering: .relaxed),
                          features: ["pause", "canary"], predecessors: predecessors.filter(\.isRunning),
                          awaitingPool: awaitingPool.load(ordering: .relaxed))
    }

    /// Answers a connection's requests until it closes (a successor sends two: handover, then retire).
    private func serve(_ connection: UnixConnection) {
        var handedOver = false
        var paused = false
        /// The process taking over (pid and start time), once it has the socket.
        var successor: ProcessIdentity?
        while true {
            let request: FrontRequest
            do {
                let (received, stray) = try connection.receive(FrontRequest.self)
                if let stray { close(stray) }
                request = received
            } catch {
                // Said why, unless the client has simply gone.
                try? connection.send(FrontReply(ok: false, error: error.description))
                // A successor that took the socket and then went without a word: if its control socket
                // replaced this one and it runs, it serves now and this front retires; if it died (it would
                // have said `retire`), nobody serves but this front, which takes the control socket back.
                if handedOver, FrontProcess.inode(controlPath) != publishedInode {
                    // (Nobody can ask for a handover before the control socket is published again.)
                    if let successor, Self.ends(successor, within: .seconds(2)), publishAgain() {
                        log("the front taking over (pid \(successor.pid)) died before it did; serving again")
                        handoverUnderWay.store(false, ordering: .relaxed)
                        if paused { setAccepting(true) }
                    } else {
                        retiring.store(true, ordering: .relaxed)
                        ending.yield(.retire)
                    }
                } else {
                    if paused {
                        // The successor went before it served: this front accepts again (one still held for
                        // its first pool once that comes).
                        setAccepting(true)
                    }
                    if handedOver { handoverUnderWay.store(false, ordering: .relaxed) }
                }
                return
            }
            switch request.op {
            case .state:
                try? connection.send(FrontReply(ok: true, state: state))
            case .metrics:
                try? connection.send(FrontReply(ok: true, metrics: registry.emitToString()))
            case .setActive:
                guard let backends = request.backends else {
                    try? connection.send(FrontReply(ok: false, error: "set-active needs 'backends'"))
                    continue
                }
                // Applied only if no later one was: the reply's state then shows what is in force.
                activeVersion.withLockedValue { applied in
                    guard let version = request.version else {
                        balancer.pool.setActive(backends, canary: request.canary)
                        return
                    }
                    // Versions are nanosecond clock readings; one beyond 2^62 is nobody's, and would block every later one.
                    guard version > applied, version < 1 << 62 else { return }
                    balancer.pool.setActive(backends, canary: request.canary)
                    applied = version
                }
                acceptOnceThePoolIsKnown()
                try? connection.send(FrontReply(ok: true, state: state))
            case .handover:
                guard let socket = balancer.listeningSocketForHandover, !retiring.load(ordering: .relaxed) else {
                    try? connection.send(FrontReply(ok: false, error: "this front is no longer listening"))
                    continue
                }
                guard handoverUnderWay.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
                    try? connection.send(FrontReply(ok: false, error: "another front is taking over from this one"))
                    continue
                }
                successor = connection.peerProcess.flatMap { ProcessIdentity(running: $0) }
                try? connection.send(FrontReply(ok: true, state: state), descriptor: socket)
                connection.waitWithoutTimeout()
                handedOver = true
            case .listeningSocket:
                guard let socket = balancer.listeningSocketForHandover, !retiring.load(ordering: .relaxed) else {
                    try? connection.send(FrontReply(ok: false, error: "this front is no longer listening"))
                    continue
                }
                try? connection.send(FrontReply(ok: true, state: state), descriptor: socket)
            case .pause:
                guard handedOver else {
                    try? connection.send(FrontReply(ok: false, error: "pause comes after handover, from the front that takes over"))
                    continue
                }
                setAccepting(false)
                paused = true
                try? connection.send(FrontReply(ok: true))
            case .retire:
                retiring.store(true, ordering: .relaxed)
                try? connection.send(FrontReply(ok: true))
                ending.yield(.retire)
                return
            case .stop:
                retiring.store(true, ordering: .relaxed)
                try? connection.send(FrontReply(ok: true))
                ending.yield(.stop)
                return
            }
        }
    }
}
