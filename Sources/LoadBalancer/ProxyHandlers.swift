import NIOCore
import NIOHTTP1
import NIOPosix

/// Headers that describe one hop of a connection and are never forwarded (RFC 9110 §7.6.1).
private let hopByHopHeaders: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"]

extension HTTPHeaders {
    /// Removes the hop-by-hop headers, in one pass, touching nothing when there are none.
    mutating func removeHopByHop() {
        func isHopByHop(_ name: String) -> Bool {
            switch name.utf8.count {
            case 2, 7, 10, 16, 17, 19: return hopByHopHeaders.contains(name.lowercased())
            default: return false
            }
        }
        var found: [String] = []
        for header in self where isHopByHop(header.name) { found.append(header.name) }
        for name in found { remove(name: name) }
    }
}

/// The largest request body kept for a retry on another backend.
private let retryBufferLimit = 64 * 1024

/// One client connection at the front: reads requests, relays each to a backend, relays the response back.
///
/// A keep-alive connection stays on its backend while that backend is active and moves to another at its
/// next request once it is not. A request that fails before any response byte came back (connection
/// refused, reset, closed) is retried on another backend when it is idempotent and its body was kept.
final class FrontHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The request being relayed.
    struct Exchange {
        var head: HTTPRequestHead
        var body: [ByteBuffer] = []
        var bodyBytes = 0
        var requestEnded = false
        var responseStarted = false
        var backend: Backend?
        var tried: Set<String> = []
        var retryable: Bool
        /// No backend could take it: the rest of the request is read and dropped.
        var rejected = false
    }

    /// The backend connection in use.
    struct Upstream {
        var channel: Channel
        var backend: Backend
        /// Connected and ready for a request.
        var ready: Bool
        /// The backend said it closes after this response.
        var closing = false
    }

    let pool: BackendPool
    let metrics: ProxyMetrics
    private var context: ChannelHandlerContext?
    /// The client's address, for X-Forwarded-For.
    private var clientAddress: String?
    private var exchange: Exchange?
    private var upstream: Upstream?
    /// Bumped for each new backend connection, so events of an old one are ignored.
    private var upstreamGeneration = 0

    init(pool: BackendPool, metrics: ProxyMetrics) {
        self.pool = pool
        self.metrics = metrics
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientAddress = context.channel.remoteAddress?.ipAddress
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finishExchange()
        upstream?.channel.close(promise: nil)
        upstream = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        finishExchange()
        upstream?.channel.close(promise: nil)
        upstream = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            metrics.count(.requests)
            exchange = Exchange(head: head, retryable: FrontHandler.isIdempotent(head.method))
            dispatch()
        case .body(let buffer):
            guard var current = exchange, !current.rejected else { return }
            current.bodyBytes += buffer.readableBytes
            if current.bodyBytes <= retryBufferLimit { current.body.append(buffer) } else { current.retryable = false; current.body = [] }
            exchange = current
            if let upstream, upstream.ready, current.backend?.id == upstream.backend.id {
                upstream.channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            }
        case .end(let trailers):
            guard var current = exchange else { return }
            current.requestEnded = true
            exchange = current
            if current.rejected {
                exchange = nil
                return
            }
            if let upstream, upstream.ready, current.backend?.id == upstream.backend.id {
                upstream.channel.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
            }
        }
    }

    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE: return true
        default: return false
        }
    }

    // MARK: Choosing a backend and connecting

    /// Assigns the current request to a backend and sends what has been read of it.
    private func dispatch() {
        guard var current = exchange, let context else { return }
        guard let backend = pool.acquire(preferred: upstream?.backend.id, excluding: current.tried) else {
            reject(status: current.tried.isEmpty ? .serviceUnavailable : .badGateway,
                   message: current.tried.isEmpty ? "no healthy instance is serving this service" : "no instance could answer the request")
            return
        }
        current.backend = backend
        current.tried.insert(backend.id)
        exchange = current
        if let upstream, upstream.backend == backend, upstream.ready, !upstream.closing, upstream.channel.isActive {
            sendRequest(on: upstream.channel)
            return
        }
        upstream?.channel.close(promise: nil)
        upstream = nil
        upstreamGeneration += 1
        let generation = upstreamGeneration
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let connecting = ClientBootstrap(group: context.eventLoop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler(front: bound, generation: generation))
                }
            }
            .connect(host: backend.host, port: backend.port)
        connecting.assumeIsolated().whenComplete { result in
            guard generation == self.upstreamGeneration else {
                if case .success(let channel) = result { channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let channel):
                self.upstream = Upstream(channel: channel, backend: backend, ready: true)
                if self.exchange?.backend == backend { self.sendRequest(on: channel) }
            case .failure:
                self.upstream = nil
                self.upstreamFailed(generation: generation)
            }
        }
    }

    /// Writes the request's head and what has arrived of its body.
    private func sendRequest(on channel: Channel) {
        guard let current = exchange, let context else { return }
        var head = current.head
        head.headers.removeHopByHop()
        head.version = .http1_1
        if let address = clientAddress {
            if head.headers.contains(name: "x-forwarded-for") {
                let previous = head.headers["x-forwarded-for"].joined(separator: ", ")
                head.headers.replaceOrAdd(name: "x-forwarded-for", value: previous + ", " + address)
            } else {
                head.headers.add(name: "x-forwarded-for", value: address)
            }
        }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        for buffer in current.body { channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil) }
        if current.requestEnded { channel.write(HTTPClientRequestPart.end(nil), promise: nil) }
        channel.flush()
    }

    // MARK: Events of the backend connection

    func upstreamRead(_ part: HTTPClientResponsePart, generation: Int) {
        guard generation == upstreamGeneration, let context, var current = exchange else { return }
        switch part {
        case .head(var head):
            current.responseStarted = true
            exchange = current
            if !head.isKeepAlive { upstream?.closing = true }
            head.headers.removeHopByHop()
            head.version = current.head.version
            if !current.head.isKeepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            // Flushed at the end of the response, or when the backend's read burst ends.
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            let keepAlive = current.head.isKeepAlive
            finishExchange()
            if upstream?.closing == true {
                upstream?.channel.close(promise: nil)
                upstream = nil
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
            if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        }
    }

    /// The backend's read burst ended: send what was relayed.
    func upstreamReadComplete(generation: Int) {
        guard generation == upstreamGeneration, exchange?.responseStarted == true else { return }
        context?.flush()
    }

    /// The backend connection failed or closed.
    func upstreamFailed(generation: Int) {
        guard generation == upstreamGeneration else { return }
        upstream = nil
        guard var current = exchange, let backend = current.backend else { return }
        pool.release(backend)
        current.backend = nil
        exchange = current
        if current.responseStarted {
            // Part of a response went out: the client must see the connection end, not a spliced answer.
            metrics.count(.failed)
            exchange = nil
            context?.close(promise: nil)
            return
        }
        pool.reportFailure(backend)
        if current.retryable {
            metrics.count(.retried)
            dispatch()
        } else {
            reject(status: .badGateway, message: "the instance closed the connection before answering")
        }
    }

    /// Relays backpressure: stop reading the backend while the client cannot take more.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        upstream?.channel.setOption(.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Ending requests

    private func finishExchange() {
        if let backend = exchange?.backend { pool.release(backend) }
        exchange = nil
    }

    private func reject(status: HTTPResponseStatus, message: String) {
        guard let context, var current = exchange else { return }
        metrics.count(.failed)
        var headers = HTTPHeaders()
        let body = context.channel.allocator.buffer(string: message + "\n")
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.readableBytes))
        if !current.head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: current.head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let keepAlive = current.head.isKeepAlive
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        if current.requestEnded {
            exchange = nil
        } else {
            current.rejected = true
            exchange = current
        }
    }
}

/// Hands a backend connection's response parts and failures to its front connection.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    let front: NIOLoopBound<FrontHandler>
    let generation: Int

    init(front: NIOLoopBound<FrontHandler>, generation: Int) {
        self.front = front
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        front.value.upstreamRead(unwrapInboundIn(data), generation: generation)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        front.value.upstreamReadComplete(generation: generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        front.value.upstreamFailed(generation: generation)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
