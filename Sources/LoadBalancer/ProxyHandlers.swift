import NIOCore
import NIOHTTP1
import NIOPosix

/// Headers that describe one hop of a connection and are never forwarded (RFC 9110 §7.6.1).
private let hopByHopHeaders: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"]

extension HTTPHeaders {
    /// Removes the hop-by-hop headers, and those the Connection header names (`Connection: close,
    /// X-Session` makes X-Session hop-by-hop), touching nothing when there are none.
    mutating func removeHopByHop() {
        func isHopByHop(_ name: String) -> Bool {
            switch name.utf8.count {
            case 2, 7, 10, 16, 17, 19: return hopByHopHeaders.contains(name.lowercased())
            default: return false
            }
        }
        var found: [String] = []
        for header in self where isHopByHop(header.name) { found.append(header.name) }
        guard !found.isEmpty else { return }
        for token in self[canonicalForm: "connection"] where !hopByHopHeaders.contains(token.lowercased()) {
            found.append(String(token))
        }
        for name in found { remove(name: name) }
    }
}

/// The largest request body kept for a retry on another backend.
private let retryBufferLimit = 64 * 1024

/// One client connection at the front: reads requests, relays each to a backend, relays the response back.
///
/// A keep-alive connection stays on its backend while that backend is active and moves to another at its
/// next request once it is not. A request that fails before any response byte came back is retried on
/// another backend when its body was kept and it is idempotent (reset, closed) or was never sent
/// (connection refused).
final class FrontHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// The request being relayed.
    struct Exchange {
        /// The head as it is sent to a backend: hop-by-hop headers removed, HTTP/1.1, X-Forwarded-For.
        var head: HTTPRequestHead
        /// The client's HTTP version and wish to keep its connection, which the response follows.
        var clientVersion: HTTPVersion
        var clientKeepAlive: Bool
        var body: [ByteBuffer] = []
        var bodyBytes = 0
        var requestEnded = false
        var responseStarted = false
        var backend: Backend?
        /// Backends that failed this request before answering (empty unless it was retried).
        var failedOn: Set<String> = []
        /// GET, HEAD, PUT, DELETE…: may be sent again even if a backend may have seen it.
        var idempotent: Bool
        /// Every body byte read so far is kept, so the request can be sent again.
        var bodyKept = true
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
            exchange = Exchange(head: forwardedHead(head), clientVersion: head.version, clientKeepAlive: head.isKeepAlive,
                                idempotent: FrontHandler.isIdempotent(head.method))
            dispatch()
        case .body(let buffer):
            guard exchange != nil, exchange?.rejected == false else { return }
            exchange!.bodyBytes += buffer.readableBytes
            if exchange!.bodyBytes <= retryBufferLimit {
                exchange!.body.append(buffer)
            } else {
                exchange!.bodyKept = false
                exchange!.body = []
            }
            if let upstream, upstream.ready, exchange?.backend?.id == upstream.backend.id {
                upstream.channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
            }
        case .end(let trailers):
            guard exchange != nil else { return }
            exchange!.requestEnded = true
            if exchange!.rejected {
                exchange = nil
                return
            }
            if let upstream, upstream.ready, exchange?.backend?.id == upstream.backend.id {
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

    /// The request head as a backend receives it: without hop-by-hop headers, as HTTP/1.1, with the
    /// client's address appended to X-Forwarded-For. Made once per request, and sent again on a retry.
    private func forwardedHead(_ head: HTTPRequestHead) -> HTTPRequestHead {
        var head = head
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
        return head
    }

    /// Assigns the current request to a backend and sends what has been read of it.
    private func dispatch() {
        guard let failedOn = exchange?.failedOn, let context else { return }
        // A retry must not go back to a backend that already failed it; otherwise a keep-alive
        // connection stays on its backend.
        guard let backend = pool.acquire(preferred: failedOn.isEmpty ? upstream?.backend.id : nil, excluding: failedOn) else {
            reject(status: failedOn.isEmpty ? .serviceUnavailable : .badGateway,
                   message: failedOn.isEmpty ? "no healthy instance is serving this service" : "no instance could answer the request")
            return
        }
        exchange!.backend = backend
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
                    // Interim answers (100 Continue) are passed on, so a client that waits for one before
                    // sending its body does not stall. Header values were checked when they came in.
                    let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)
                    try channel.pipeline.syncOperations.addHandlers([HTTPRequestEncoder(), ByteToMessageHandler(decoder)])
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
                self.upstreamFailed(generation: generation, requestSent: false)
            }
        }
    }

    /// Writes the request's head and what has arrived of its body.
    private func sendRequest(on channel: Channel) {
        guard let current = exchange else { return }
        channel.write(HTTPClientRequestPart.head(current.head), promise: nil)
        for buffer in current.body { channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil) }
        if current.requestEnded { channel.write(HTTPClientRequestPart.end(nil), promise: nil) }
        channel.flush()
    }

    // MARK: Events of the backend connection

    func upstreamRead(_ part: HTTPClientResponsePart, generation: Int) {
        guard generation == upstreamGeneration, let context, exchange != nil else { return }
        switch part {
        case .head(var head) where head.status.code / 100 == 1 && head.status != .switchingProtocols:
            // An interim answer: the final one follows on the same exchange. HTTP/1.0 clients never get one.
            guard exchange!.clientVersion.major > 1 || exchange!.clientVersion.minor >= 1 else { return }
            head.headers.removeHopByHop()
            head.version = exchange!.clientVersion
            context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
        case .head(var head):
            exchange!.responseStarted = true
            if !head.isKeepAlive { upstream?.closing = true }
            head.headers.removeHopByHop()
            head.version = exchange!.clientVersion
            if !exchange!.clientKeepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            // Flushed at the end of the response, or when the backend's read burst ends.
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            let keepAlive = exchange!.clientKeepAlive
            finishExchange()
            if upstream?.closing == true {
                upstream?.channel.close(promise: nil)
                upstream = nil
            }
            if keepAlive {
                context.writeAndFlush(wrapOutboundOut(.end(trailers)), promise: nil)
            } else {
                context.writeAndFlush(wrapOutboundOut(.end(trailers))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            }
        }
    }

    /// The backend's read burst ended: send what was relayed.
    func upstreamReadComplete(generation: Int) {
        guard generation == upstreamGeneration, exchange?.responseStarted == true else { return }
        context?.flush()
    }

    /// The backend connection failed or closed. A request that was never sent (the connection was
    /// refused) may go to another backend whatever its method; one that was sent, only if idempotent.
    func upstreamFailed(generation: Int, requestSent: Bool = true) {
        guard generation == upstreamGeneration else { return }
        upstream = nil
        guard let backend = exchange?.backend else { return }
        pool.release(backend)
        exchange!.backend = nil
        if exchange!.responseStarted {
            // Part of a response went out: the client must see the connection end, not a spliced answer.
            metrics.count(.failed)
            exchange = nil
            context?.close(promise: nil)
            return
        }
        pool.reportFailure(backend)
        exchange!.failedOn.insert(backend.id)
        if exchange!.bodyKept && (exchange!.idempotent || !requestSent) {
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
        guard let context, let current = exchange else { return }
        metrics.count(.failed)
        var headers = HTTPHeaders()
        let body = context.channel.allocator.buffer(string: message + "\n")
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body.readableBytes))
        if !current.clientKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: current.clientVersion, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        let keepAlive = current.clientKeepAlive
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
        if current.requestEnded {
            exchange = nil
        } else {
            exchange!.rejected = true
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
