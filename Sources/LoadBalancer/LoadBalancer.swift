import NIOCore
import NIOPosix
import ProcessLimits
import Synchronization
#if canImport(Glibc)
import Glibc
import NIOConcurrencyHelpers
#endif

/// Counters of what the front has done.
public final class ProxyMetrics: Sendable {
    /// A snapshot of the counters.
    public struct Counts: Sendable, Codable, Equatable {
        public var requests = 0
        /// Requests that got a 502 or 503 from the load balancer itself, or whose response was cut.
        public var failed = 0
        /// Requests sent again to another backend after the first failed before answering.
        public var retried = 0

        public init(requests: Int = 0, failed: Int = 0, retried: Int = 0) {
            self.requests = requests
            self.failed = failed
            self.retried = retried
        }
    }

    private let requests = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let retried = Atomic<Int>(0)
    /// Hears why each failed request failed.
    private let failureNotes: (@Sendable (String) -> Void)?

    /// `onFailure` hears, for each request counted as failed, what the client got and why.
    public init(onFailure: (@Sendable (String) -> Void)? = nil) {
        failureNotes = onFailure
    }

    public var snapshot: Counts {
        Counts(requests: requests.load(ordering: .relaxed), failed: failed.load(ordering: .relaxed), retried: retried.load(ordering: .relaxed))
    }

    enum Counter { case requests, retried }

    /// Adds counts carried over from a front this one replaced, so the totals span the handover.
    public func add(_ counts: Counts) {
        requests.wrappingAdd(counts.requests, ordering: .relaxed)
        failed.wrappingAdd(counts.failed, ordering: .relaxed)
        retried.wrappingAdd(counts.retried, ordering: .relaxed)
    }

    func count(_ counter: Counter) {
        switch counter {
        case .requests: requests.wrappingAdd(1, ordering: .relaxed)
        case .retried: retried.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// Counts a failed request; `note` (what the client got and why) is made only if someone listens.
    func countFailure(_ note: @autoclosure () -> String) {
        failed.wrappingAdd(1, ordering: .relaxed)
        failureNotes?(note())
    }
}

/// The HTTP reverse proxy at a service's front (SwiftNIO): it spreads requests over the pool's active
/// backends and lets backends be switched without dropping a request.
public final class LoadBalancer: Sendable {
    public let pool: BackendPool
    public let metrics: ProxyMetrics
    /// A client connection that sends nothing for this long between requests, or while sending one, is
    /// closed; a request sent whole whose instance has not begun to answer in this time gets 504.
    public let idleTimeout: TimeAmount
    /// Client connections served at once; more wait in the kernel's queue until one closes.
    public let maxConnections: Int
    private let group: any EventLoopGroup
    private let server = NIOLockedValueBox<Listener?>(nil)
    private let draining = DrainSignal()
    private let connections = NIOLockedValueBox<[ObjectIdentifier: Channel]>([:])
    /// ``stop(timeout:)`` or ``retire(timeout:)`` has begun: accepting does not resume.
    private let ending = Atomic<Bool>(false)

    /// `onFailure` hears, for each request counted as failed, what its client got and why (see ``ProxyMetrics``).
    public init(pool: BackendPool, idleTimeout: TimeAmount = .seconds(60), maxConnections: Int = 4096,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, onFailure: (@Sendable (String) -> Void)? = nil) {
        self.pool = pool
        self.metrics = ProxyMetrics(onFailure: onFailure)
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.group = group
    }

    /// Starts listening on `host:port`; returns the bound address's port.
    @discardableResult
    public func start(host: String, port: Int) async throws -> Int {
        let socket = try ListeningSocket.bind(host: host, port: port)
        return try await start(listeningSocket: socket)
    }

    /// Starts accepting on `socket`, a bound and listening TCP socket (made here, inherited from the
    /// process that started this one, or handed over by the front this one replaces), which the load
    /// balancer now owns; returns its port. A duplicate is kept for ``listeningSocketForHandover``.
    /// With `held`, it accepts nothing until ``releaseHold()`` (a front waiting for its first pool):
    /// connections wait in the kernel's queue. The hold is apart from ``setAccepting(_:)``'s pause.
    @discardableResult
    public func start(listeningSocket socket: Int32, held: Bool = false) async throws -> Int {
        ending.store(false, ordering: .relaxed)
        let pool = self.pool
        let metrics = self.metrics
        let draining = self.draining
        let (idleTimeout, maxConnections) = (self.idleTimeout, self.maxConnections)
        // Each connection takes two descriptors (the client's and its backend's).
        OpenFiles.raiseLimit(to: maxConnections * 2 + 256)
        let backlog = ListeningSocket.backlog(of: socket)
        let kept = fcntl(socket, F_DUPFD_CLOEXEC, 0)
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ConnectionLimitHandler(limit: maxConnections, held: held) { self.track($0) })
                    }
                }
                .serverChannelOption(.autoRead, value: !held)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(FrontHandler(pool: pool, metrics: metrics, draining: draining,
                                                                                    idleTimeout: idleTimeout))
                    }
                }
                .withBoundSocket(socket)
                .get()
        } catch {
            if kept >= 0 { close(kept) }
            throw error
        }
        // NIO listens again on a socket it is given, with its own backlog (128): the socket's is restored, or a
        // burst of connections (every client reconnecting as a replaced front closes its connections) would
        // overflow the queue, and the kernel resets what it cannot queue.
        if let backlog, kept >= 0 { listen(kept, backlog) }
        server.withLockedValue { $0 = Listener(channel: channel, handoverCopy: kept) }
        return channel.localAddress?.port ?? 0
    }

    /// A descriptor of the listening socket, for handing it to the front that replaces this one; nil
    /// once this front has stopped listening.
    public var listeningSocketForHandover: Int32? {
        server.withLockedValue { $0.map(\.handoverCopy).flatMap { $0 >= 0 ? $0 : nil } }
    }

    /// Client connections open now.
    public var openConnections: Int { connections.withLockedValue { $0.count } }

    /// Remembers a front connection from the moment it is accepted (before NIO has set it up on its event
    /// loop) until it closes.
    private func track(_ channel: Channel) {
        connections.withLockedValue { $0[ObjectIdentifier(channel)] = channel }
        channel.closeFuture.whenComplete { _ in _ = self.connections.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
    }

    /// Stops or resumes accepting on the listening socket without closing it. A front that hands the
    /// socket over stops before its successor starts, so the two never accept at once (each connection
    /// would wake both, and one of them would find nothing to accept); connections wait in the kernel's
    /// queue meanwhile. It resumes if the successor never takes over, unless ``stop(timeout:)`` or
    /// ``retire(timeout:)`` has begun since the last start: a resume then is not applied.
    public func setAccepting(_ accepting: Bool) async {
        guard let channel = server.withLockedValue({ $0?.channel }) else { return }
        // On the listening channel's loop, after any pause asked for before it: a resume that comes once
        // stopping or retiring has begun (a successor gone while this front stops) is not applied, whichever
        // thread asked first. `.get()`: without it `await` resolved to nothing to wait for, and a paused front
        // said so before it had stopped accepting.
        try? await channel.eventLoop.submit { [self] in
            if accepting, ending.load(ordering: .relaxed) { return }
            try channel.pipeline.syncOperations.handler(type: ConnectionLimitHandler.self).setAccepting(accepting)
        }.get()
    }

    /// Ends the hold of ``start(listeningSocket:held:)``: accepting begins, unless paused (or stopping).
    public func releaseHold() async {
        guard let channel = server.withLockedValue({ $0?.channel }) else { return }
        try? await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: ConnectionLimitHandler.self).releaseHold()
        }.get()
    }

    /// Closes this front's side of the listening socket (a front that took it over keeps accepting on it).
    private func stopListening() async {
        let listener = server.withLockedValue { value -> Listener? in
            defer { value = nil }
            return value
        }
        try? await listener?.channel.close()
        if let copy = listener?.handoverCopy, copy >= 0 { close(copy) }
    }

    /// Stops accepting, lets requests in flight finish (up to `timeout`), then closes every connection.
    public func stop(timeout: Duration = .seconds(10)) async {
        ending.store(true, ordering: .relaxed)
        await setAccepting(false)
        pool.setActive([])
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, pool.totalInFlight > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let open = connections.withLockedValue { Array($0.values) }
        for channel in open { try? await channel.close() }
        await stopListening()
    }

    /// Hands the service to a successor that accepts on the same socket: stops accepting, keeps
    /// relaying to the same backends, and answers each connection's next request with
    /// `Connection: close` (closing it after that response), so no request already sent is dropped.
    /// Connections still open after `timeout` (clients that send nothing more) are closed.
    ///
    /// The listening channel closes last: NIO sets a connection up on its own event loop after accepting
    /// it, and closes it unserved, its request unread (the kernel resets it), if the listening channel
    /// has closed meanwhile. A connection accepted just before accepting stopped is served instead.
    public func retire(timeout: Duration) async {
        ending.store(true, ordering: .relaxed)
        await setAccepting(false)
        draining.begin()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, openConnections > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let open = connections.withLockedValue { Array($0.values) }
        for channel in open { try? await channel.close() }
        await stopListening()
    }
}

/// The listening channel, and the duplicate of its socket kept for a handover.
private struct Listener {
    var channel: Channel
    var handoverCopy: Int32
}

/// Set when the front is retiring: every connection closes after its current or next response.
final class DrainSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    var isDraining: Bool { flag.load(ordering: .relaxed) }
    func begin() { flag.store(true, ordering: .relaxed) }
}

/// On the listening channel: accepts while fewer than `limit` connections are open and the front has not
/// paused accepting (a handover, a stop), so a flood of connections waits in the kernel's queue instead of
/// exhausting descriptors, and a resume at the limit waits for a connection to close.
///
/// Accepting is switched with autoRead alone, and the listening channel accepts no more connections per
/// wake-up than there is room for (`maxMessagesPerRead`, up to 16): NIO accepts that many in a row whatever
/// a handler says, and turning autoRead on reads at once without asking the pipeline, so a limit kept by
/// holding back `read` was passed by up to four connections.
final class ConnectionLimitHandler: ChannelInboundHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    let limit: Int
    /// Hears of each connection as it is accepted.
    let accepted: (Channel) -> Void
    private var open = 0
    private var paused = false
    /// Held from the start until the front knows where to send requests (apart from `paused`, which a
    /// handover sets and clears).
    private var held: Bool
    /// The listening channel's `maxMessagesPerRead` as last set.
    private var acceptsPerWakeUp: UInt = 0
    private var context: ChannelHandlerContext?

    init(limit: Int, held: Bool, accepted: @escaping (Channel) -> Void) {
        self.limit = limit
        self.held = held
        self.accepted = accepted
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        updateAccepting()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let child = unwrapInboundIn(data)
        accepted(child)
        open += 1
        updateAccepting()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        child.closeFuture.hop(to: context.eventLoop).whenComplete { _ in
            handler.value.open -= 1
            handler.value.updateAccepting()
        }
        context.fireChannelRead(data)
    }

    /// Pauses or resumes accepting for the front; a resume at the limit takes effect once a connection closes.
    func setAccepting(_ accepting: Bool) {
        paused = !accepting
        updateAccepting()
    }

    func releaseHold() {
        held = false
        updateAccepting()
    }

    private func updateAccepting() {
        guard let options = context?.channel.syncOptions else { return }
        // NIO reads this when a wake-up's accepting begins, so those accepts never pass the limit.
        let room = UInt(max(1, min(16, limit - open)))
        if room != acceptsPerWakeUp {
            acceptsPerWakeUp = room
            try? options.setOption(.maxMessagesPerRead, value: room)
        }
        // NIO does nothing when the value does not change, and fails (ignored) once the channel has closed.
        try? options.setOption(.autoRead, value: !paused && !held && open < limit)
    }
}
