import NIOCore
import NIOHTTP1
import NIOPosix

/// Headers that describe one hop of a connection and are never forwarded (RFC 9110 §7.6.1).
private let hopByHopHeaders: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate", "proxy-authorization"]
/// The lengths of those names: most headers are passed over without lower-casing them.
private let hopByHopLengths: Set<Int> = Set(hopByHopHeaders.map(\.utf8.count))
/// Headers that frame a message or name its target: a `Connection` header that names them is ignored
/// for them, or a client could strip a body's framing and smuggle a second request to the backend.
private let framingHeaders: Set<String> = ["content-length", "transfer-encoding", "host"]

extension HTTPHeaders {
    /// Removes the hop-by-hop headers, and those the Connection header names (`Connection: close,
    /// X-Session` makes X-Session hop-by-hop) except the framing ones, in one pass over the headers,
    /// touching nothing when there are none.
    mutating func removeHopByHop() {
        var names = Set<String>()
        for header in self where hopByHopLengths.contains(header.name.utf8.count) {
            let name = header.name.lowercased()
            if hopByHopHeaders.contains(name) { names.insert(name) }
        }
        guard !names.isEmpty else { return }
        if names.contains("connection") {
            for token in self[canonicalForm: "connection"] {
                let name = token.lowercased()
                if !framingHeaders.contains(name) { names.insert(name) }
            }
        }
        var kept = HTTPHeaders()
        kept.reserveCapacity(count)
        for (name, value) in self where !names.contains(name.lowercased()) { kept.add(name: name, value: value) }
        self = kept
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
    ///
    /// Its body is kept in `body` until it has been sent to a backend, however large (reading from the
    /// client pauses once more than `retryBufferLimit` waits), and after that only while it fits in the
    /// retry buffer.
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
    /// Set when the front is retiring: the connection closes after its current or next response.
    let draining: DrainSignal
    private var context: ChannelHandlerContext?
    /// The client's address, for X-Forwarded-For.
    private var clientAddress: String?
    private var exchange: Exchange?
    private var upstream: Upstream?
    /// Bumped for each new backend connection, so events of an old one are ignored.
    private var upstreamGeneration = 0
    /// Reading from the client is paused: its body waits for a backend, or the backend cannot take more.
    private var readingPaused = false

    init(pool: BackendPool, metrics: ProxyMetrics, draining: DrainSignal = DrainSignal()) {
        self.pool = pool
        self.metrics = metrics
        self.draining = draining
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
            exchange = Exchange(head: forwardedHead(head), clientVersion: head.version, clientKeepAlive: head.isKeepAlive && !draining.isDraining,
                                idempotent: FrontHandler.isIdempotent(head.method))
            dispatch()
        case .body(let buffer):
            guard exchange != nil, exchange?.rejected == false else { return }
            exchange!.bodyBytes += buffer.readableBytes
            if let channel = sentUpstream {
                channel.writeAndFlush(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil)
                if exchange!.bodyKept && exchange!.bodyBytes <= retryBufferLimit {
                    exchange!.body.append(buffer)
                } else {
                    exchange!.bodyKept = false
                    exchange!.body = []
                }
            } else {
                // No backend has the request yet: every byte waits for one.
                exchange!.body.append(buffer)
            }
            updateClientReading()
        case .end(let trailers):
            guard exchange != nil else { return }
            exchange!.requestEnded = true
            if exchange!.rejected {
                exchange = nil
                return
            }
            sentUpstream?.writeAndFlush(HTTPClientRequestPart.end(trailers), promise: nil)
        }
    }

    /// The backend connection the current request's head went to, if it went.
    private var sentUpstream: Channel? {
        guard let upstream, upstream.ready, let backend = exchange?.backend, backend.id == upstream.backend.id else { return nil }
        return upstream.channel
    }

    /// Pauses reading from the client while more than the retry buffer of its body waits for a backend,
    /// or while the backend cannot take more (uploads flow no faster than the backend reads them).
    private func updateClientReading() {
        guard let context else { return }
        var pause = false
        if let current = exchange, !current.rejected, !current.requestEnded {
            if let channel = sentUpstream {
                pause = !channel.isWritable
            } else {
                pause = current.bodyBytes > retryBufferLimit
            }
        }
        guard pause != readingPaused else { return }
        readingPaused = pause
        context.channel.setOption(.autoRead, value: !pause).whenFailure { _ in }
    }

    /// Closes the backend connection, so that nothing it sends or does afterwards touches this one.
    private func dropUpstream() {
        upstreamGeneration += 1
        upstream?.channel.close(promise: nil)
        upstream = nil
    }

    /// The client sent nothing for the idle timeout: a connection between requests, or one stalled
    /// half-way through sending a request, is closed. A request sent whole whose instance has not begun
    /// to answer in that time gets 504 (the instance is hung); one whose answer is streaming is left alone.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            if let current = exchange, current.requestEnded, !current.responseStarted, !current.rejected {
                if let backend = current.backend {
                    pool.release(backend)
                    pool.reportFailure(backend)
                }
                exchange!.backend = nil
                exchange!.clientKeepAlive = false
                dropUpstream()
                reject(status: .gatewayTimeout, message: "the instance did not begin to answer within the load balancer's timeout")
                return
            }
            if exchange == nil || exchange?.requestEnded == false {
                if exchange != nil { metrics.count(.failed) }
                finishExchange()
                dropUpstream()
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
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
        dropUpstream()
        let generation = upstreamGeneration
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let connecting = FrontHandler.connect(to: backend, on: context.eventLoop) { channel in
            channel.eventLoop.makeCompletedFuture {
                // Interim answers (100 Continue) are passed on, so a client that waits for one before
                // sending its body does not stall. Header values were checked when they came in.
                let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)
                try channel.pipeline.syncOperations.addHandlers([HTTPRequestEncoder(), ByteToMessageHandler(decoder)])
                try channel.pipeline.syncOperations.addHandler(UpstreamHandler(front: bound, generation: generation))
            }
        }
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

    /// Writes the request's head and what has arrived of its body (all of it: nothing is read past what
    /// waits here). Past the retry buffer, the sent bytes are not kept.
    private func sendRequest(on channel: Channel) {
        guard let current = exchange else { return }
        channel.write(HTTPClientRequestPart.head(current.head), promise: nil)
        for buffer in current.body { channel.write(HTTPClientRequestPart.body(.byteBuffer(buffer)), promise: nil) }
        if current.requestEnded { channel.write(HTTPClientRequestPart.end(nil), promise: nil) }
        channel.flush()
        if current.bodyBytes > retryBufferLimit {
            exchange!.bodyKept = false
            exchange!.body = []
        }
        updateClientReading()
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
        case .head(let head) where head.status == .switchingProtocols:
            // The front relays HTTP requests, not the protocols a backend may switch to.
            exchange!.clientKeepAlive = false
            if let backend = exchange!.backend { pool.release(backend) }
            exchange!.backend = nil
            dropUpstream()
            reject(status: .badGateway, message: "the instance asked to switch protocols, which the load balancer does not relay")
        case .head(var head):
            exchange!.responseStarted = true
            if !head.isKeepAlive { upstream?.closing = true }
            if draining.isDraining { exchange!.clientKeepAlive = false }
            head.headers.removeHopByHop()
            let client = exchange!.clientVersion
            if client.major == 1 && client.minor == 0 && !head.headers.contains(name: "content-length") {
                // HTTP/1.0 has no chunked framing: such a body ends when the connection does.
                head.headers.remove(name: "transfer-encoding")
                exchange!.clientKeepAlive = false
            }
            head.version = client
            if !exchange!.clientKeepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(head)), promise: nil)
        case .body(let buffer):
            // Flushed at the end of the response, or when the backend's read burst ends.
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        case .end(let trailers):
            let keepAlive = exchange!.clientKeepAlive
            // A backend that answered before the whole request body arrived may still be reading it: the
            // rest of the body is dropped, so that connection is closed rather than used again (the next
            // request would be read as the end of this body).
            let bodyUnfinished = !exchange!.requestEnded
            finishExchange()
            if upstream?.closing == true || bodyUnfinished { dropUpstream() }
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
        defer { updateClientReading() }
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

    /// The backend can take more of the request body, or cannot: reading from the client follows.
    func upstreamWritabilityChanged(generation: Int) {
        guard generation == upstreamGeneration else { return }
        updateClientReading()
    }

    // MARK: Ending requests

    private func finishExchange() {
        if let backend = exchange?.backend { pool.release(backend) }
        exchange = nil
        updateClientReading()
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
        // The state is settled before the end is written: writing it can deliver a pipelined request at
        // once, whose exchange must not be the one cleared here.
        if current.requestEnded {
            exchange = nil
        } else {
            exchange!.rejected = true
        }
        updateClientReading()
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !current.clientKeepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
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

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        front.value.upstreamWritabilityChanged(generation: generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        front.value.upstreamFailed(generation: generation)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
