import HTTPFraming
import NIOCore
import NIOPosix

/// The largest request body kept for a retry on another backend.
private let retryBufferLimit = 64 * 1024
/// The largest header section accepted from a client or a backend.
private let headLimit = 80 * 1024
/// Bytes of pipelined requests held while a response is pending; past this, reading from the client pauses.
private let pipelineLimit = 64 * 1024
/// A connection closing after its last answer reads and drops what the client still sends until the client
/// closes, sends nothing for `lingerQuiet`, or `lingerLimit` has passed (see ``FrontHandler/linger(_:)``).
private let lingerQuiet = TimeAmount.seconds(2)
private let lingerLimit = TimeAmount.seconds(10)

/// One client connection at the front: relays each request to a backend and the response back, as
/// bytes. Only what delimits messages is parsed (the heads, and the chunked framing of bodies), as
/// haproxy does: bodies pass through untouched, and a head is rewritten only where it must change
/// (hop-by-hop fields, the version, X-Forwarded-For).
///
/// A keep-alive connection stays on its backend while that backend is active and moves to another at its
/// next request once it is not. A request that fails before any response byte came back is retried on
/// another backend when its body was kept and it is idempotent (reset, closed) or was never sent
/// (connection refused).
final class FrontHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The request being relayed.
    ///
    /// Its body is kept in `body` until it has been sent to a backend, however large (reading from the
    /// client pauses once more than `retryBufferLimit` waits), and after that only while it fits in the
    /// retry buffer.
    struct Exchange {
        /// The head as it is sent to a backend: hop-by-hop fields removed, HTTP/1.1, X-Forwarded-For.
        var head: ByteBuffer
        /// The client's HTTP minor version and wish to keep its connection, which the response follows.
        var clientMinorVersion: Int
        var clientKeepAlive: Bool
        /// A HEAD: its response has no body.
        var isHead: Bool
        /// Where the request body ends.
        var requestBody: BodyReader
        /// The body as it is sent (chunked framing included).
        var body: [ByteBuffer] = []
        var bodyBytes = 0
        var requestEnded = false
        /// A byte of the answer went to the client: from here on, a failure cuts the connection.
        var responseStarted = false
        /// The answer's head, held back while no byte of its body has come (see ``holdHead(_:)``).
        var heldHead: ByteBuffer?
        /// Where the response body ends, once its head has been relayed; nil before.
        var responseBody: BodyReader?
        /// The response body is passed on without its chunked framing (to an HTTP/1.0 client).
        var dechunk = false
        /// The response body ends when the backend closes the connection.
        var responseUntilClose = false
        var backend: Backend?
        /// The side of a canary split `backend` is on (see ``BackendPool/acquire(preferred:excluding:side:)``).
        var side = BackendPool.Side.stable
        /// The side the client's cookie asks for, under a sticky split.
        var cookieSide: BackendPool.Side?
        /// The side a retry on a fresh connection keeps (the keep-alive connection it was sent on had closed):
        /// chosen once, so the split's share is not charged twice.
        var retrySide: BackendPool.Side?
        /// When the current attempt was sent to its backend (monotonic nanoseconds): each side's latency is
        /// its own attempts', not a retry's total.
        var attemptStarted: UInt64 = 0
        /// The answer gives the client a cookie for its side in this rollout (a sticky split, and it came
        /// without one): the rollout, read when the side was chosen; nil for no cookie.
        var cookieRollout: UInt64?
        /// The status of the answer being relayed, once its head has been read.
        var status: Int?
        /// Backends that failed this request before answering (empty unless it was retried).
        var failedOn: Set<String> = []
        /// GET, HEAD, PUT, DELETE…: may be sent again even if a backend may have seen it.
        var idempotent: Bool
        /// Every body byte read so far is kept, so the request can be sent again.
        var bodyKept = true
        /// Sent on a backend connection that had served a request before: if it closes before answering,
        /// the backend may simply have timed it out, and one retry goes out on a fresh connection.
        var sentOnReusedConnection = false
        var retriedOnFreshConnection = false
        /// Sent on a fresh connection past the retry buffer, and kept (reading from the client paused) until
        /// the backend's kernel acknowledges a byte of it: until then it may not have reached the instance.
        var awaitingDelivery = false
        /// Answered already (by the front, or early by the backend): the rest of the request is read and dropped.
        var rejected = false
    }

    /// The backend connection in use.
    struct Upstream {
        var channel: Channel
        var backend: Backend
        /// The backend said it closes after this response, or sent more than the response.
        var closing = false
    }

    let pool: BackendPool
    let metrics: ProxyMetrics
    /// Set when the front is retiring: the connection closes after its current or next response.
    let draining: DrainSignal
    /// How long the client may send nothing (see ``idle()``).
    let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    /// The client's address, for X-Forwarded-For.
    private var clientAddress = ""
    private var exchange: Exchange?
    private var upstream: Upstream?
    /// Bumped for each new backend connection, so events of an old one are ignored.
    private var upstreamGeneration = 0
    /// What the backend connection that is ending had taken and given, read just before it closed.
    private var endingDelivery: DeliveredBytes?
    /// Reading from the client is paused: its body waits for a backend, the backend cannot take more, or
    /// pipelined requests pile up behind a pending response.
    private var readingPaused = false
    /// Bytes from the client not yet relayed: a head still arriving, or requests pipelined behind this one.
    private var clientBytes: ByteBuffer?
    /// Bytes from the backend not yet relayed: a response head still arriving.
    private var backendBytes: ByteBuffer?
    private var requestScanner = HeadScanner(limit: headLimit)
    private var responseScanner = HeadScanner(limit: headLimit)
    /// Reused for every head parsed and written on this connection.
    private var fields: [HeaderField] = []
    private var scratch: [UInt8] = []
    /// Request bytes were written to the backend and wait for a flush.
    private var upstreamUnflushed = false
    /// The connection closes once its last answer is written: nothing more is read from it or relayed.
    private var closing = false
    /// The last answer went out and this side is shut (see ``linger(_:)``).
    private var lingering = false
    /// The client sent bytes since the last linger check.
    private var lingerHeard = false
    /// The idle check runs every quarter of the idle timeout; these are the checks since the client last
    /// sent anything. (A flag per read costs less than reading the clock per read.)
    private var quietChecks = 0
    /// Checks since a head began to arrive (any byte while no request is in progress), however slowly
    /// it comes: a head must arrive whole within the idle timeout.
    private var headChecks: Int?
    /// Checks in a row that found the client not taking the answer (its connection not writable).
    private var stalledChecks = 0
    /// Checks since the backend last sent a byte of an answer that has begun.
    private var backendQuietChecks = 0
    private var idleCheck: Scheduled<Void>?

    init(pool: BackendPool, metrics: ProxyMetrics, draining: DrainSignal = DrainSignal(), idleTimeout: TimeAmount = .seconds(60)) {
        self.pool = pool
        self.metrics = metrics
        self.draining = draining
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        clientAddress = context.channel.remoteAddress?.ipAddress ?? ""
        scheduleIdleCheck(context)
    }

    /// Checks, every quarter of the idle timeout, whether the client has sent nothing for a whole timeout
    /// (so an idle connection is noticed between one and one and a quarter timeouts after its last byte).
    private func scheduleIdleCheck(_ context: ChannelHandlerContext) {
        let interval = TimeAmount.nanoseconds(max(idleTimeout.nanoseconds / 4, 1_000_000))
        idleCheck = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: interval) { [self] in
            guard self.context != nil, !closing else { return }
            // While the front itself holds the client back (a body waiting for its acknowledgement), the
            // client's silence is not counted against it.
            if exchange?.awaitingDelivery != true { quietChecks += 1 }
            if exchange?.heldHead != nil {
                releaseHeldHead()
                self.context?.flush()
            }
            if let checks = headChecks, exchange == nil { headChecks = checks + 1 }
            if let context = self.context, exchange?.responseStarted == true, !context.channel.isWritable {
                stalledChecks += 1
            } else {
                stalledChecks = 0
            }
            if exchange?.responseStarted == true, exchange?.rejected == false { backendQuietChecks += 1 } else { backendQuietChecks = 0 }
            if stalledChecks >= 4 {
                // The client has taken nothing of its answer for a whole timeout: its slot is given back.
                responseBroken(why: "the client took nothing of its answer for the idle timeout")
            } else if backendQuietChecks >= 4 {
                // The instance began an answer and has sent nothing more for a whole timeout (hung): the
                // client sees the connection end, as a proxy read timeout does.
                responseBroken(why: "the instance sent nothing more of its answer for the idle timeout")
            } else if let checks = headChecks, checks >= 4, exchange == nil {
                refuseRequest(nil)
            } else if quietChecks >= 4 {
                quietChecks = 0
                idle()
            }
            if let context = self.context, context.channel.isActive { scheduleIdleCheck(context) }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        closing = true
        clientGaveUp()
        finishExchange()
        // The generation moves too, so that a backend connection still being made is closed when it is.
        dropUpstream()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        clientGaveUp()
        finishExchange()
        dropUpstream()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    // MARK: Bytes from the client

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if closing {
            // The last answer is going or gone: what the client still sends is dropped.
            lingerHeard = true
            return
        }
        quietChecks = 0
        FrontHandler.append(unwrapInboundIn(data), to: &clientBytes)
        relayClientBytes()
        // A read buffer nothing refers to any more is reused by the next read (NIO's pooled allocator).
        if clientBytes?.readableBytes == 0 { clientBytes = nil }
        flushUpstream()
        updateClientReading()
    }

    /// Adds a read to the bytes not yet relayed: the read itself when nothing waits (no copy), else
    /// appended to what waits.
    private static func append(_ incoming: ByteBuffer, to pending: inout ByteBuffer?) {
        guard var waiting = pending, waiting.readableBytes > 0 else {
            pending = incoming
            return
        }
        pending = nil
        var incoming = incoming
        waiting.discardReadBytes()
        waiting.writeBuffer(&incoming)
        pending = waiting
    }

    /// Relays what can be relayed of the client's bytes: a head once it is whole, a body as it comes.
    /// Bytes past the current request wait until its response has been relayed.
    private func relayClientBytes() {
        while context != nil, !closing, var bytes = clientBytes, bytes.readableBytes > 0 {
            clientBytes = nil
            defer { if clientBytes == nil { clientBytes = bytes } }
            guard let current = exchange else {
                guard startExchange(&bytes) else { return }
                continue
            }
            if current.requestEnded { return }
            let consumed: Int
            do {
                consumed = try bytes.withUnsafeReadableBytes { (raw) throws(FramingError) -> Int in try exchange!.requestBody.read(raw) }
            } catch {
                bytes.clear()
                requestBodyMalformed(error)
                return
            }
            let part = bytes.readSlice(length: consumed)!
            relayBody(part)
            if exchange?.requestBody.isComplete == true { endRequest() }
        }
    }

    /// Reads a request head from the start of `bytes` and sends it on its way; false when it has not all
    /// arrived yet, or was refused (and the connection is closing).
    private func startExchange(_ bytes: inout ByteBuffer) -> Bool {
        if headChecks == nil { headChecks = 0 }
        let skipped = bytes.withUnsafeReadableBytes { HeadScanner.leadingEmptyLines($0) }
        if skipped > 0 {
            bytes.moveReaderIndex(forwardBy: skipped)
            requestScanner.restart()
        }
        fields.removeAll(keepingCapacity: true)
        let parsed: RequestHead
        do {
            guard let end = try bytes.withUnsafeReadableBytes({ (raw) throws(FramingError) -> Int? in try requestScanner.end(in: raw) }) else {
                return false
            }
            parsed = try bytes.withUnsafeReadableBytes { (raw) throws(FramingError) -> RequestHead in
                try RequestHead.parse(raw, length: end, fields: &fields)
            }
        } catch {
            bytes.clear()
            refuseRequest(error)
            return false
        }
        scratch.removeAll(keepingCapacity: true)
        let stickyRollout = pool.stickyRollout
        let cookieSide = bytes.withUnsafeReadableBytes { raw in
            ForwardedHead.request(raw, head: parsed, fields: fields, clientAddress: clientAddress, into: &scratch)
            // Read while `fields` still point into the readable bytes (before the reader index moves past the head).
            return stickyRollout.flatMap { StickyCookie.side(in: raw, fields: fields, rollout: $0) }
        }
        bytes.moveReaderIndex(forwardBy: parsed.length)
        guard let context else { return false }
        var head = context.channel.allocator.buffer(capacity: scratch.count)
        head.writeBytes(scratch)
        metrics.count(.requests)
        headChecks = nil
        exchange = Exchange(head: head, clientMinorVersion: parsed.minorVersion, clientKeepAlive: parsed.keepAlive && !draining.isDraining,
                            isHead: parsed.isHead, requestBody: BodyReader(parsed.body), requestEnded: parsed.body == .none,
                            cookieSide: cookieSide, idempotent: parsed.idempotent)
        if parsed.isConnect {
            exchange!.clientKeepAlive = false
            reject(status: 405, reason: "Method Not Allowed", message: "the load balancer relays requests, not CONNECT tunnels")
            return false
        }
        dispatch()
        return true
    }

    /// A part of the request body: sent on if the backend has the head, kept otherwise.
    private func relayBody(_ part: ByteBuffer) {
        guard exchange != nil, !exchange!.rejected, part.readableBytes > 0 else { return }
        exchange!.bodyBytes += part.readableBytes
        if let channel = sentUpstream {
            channel.write(part, promise: nil)
            upstreamUnflushed = true
            if exchange!.bodyKept && (exchange!.bodyBytes <= retryBufferLimit || exchange!.awaitingDelivery) {
                exchange!.body.append(part)
            } else if exchange!.bodyKept && !exchange!.sentOnReusedConnection && !acknowledged(channel) {
                // Past the retry buffer before the instance took a byte: kept until it does.
                exchange!.body.append(part)
                awaitDelivery(on: channel)
            } else {
                exchange!.bodyKept = false
                exchange!.body = []
            }
        } else {
            // No backend has the request yet: every byte waits for one.
            exchange!.body.append(part)
        }
    }

    /// The request body has ended (or there was none).
    private func endRequest() {
        exchange!.requestEnded = true
        if exchange!.rejected { exchange = nil }
    }

    private func flushUpstream() {
        guard upstreamUnflushed else { return }
        upstreamUnflushed = false
        upstream?.channel.flush()
    }

    /// The backend connection the current request's head went to, if it went.
    private var sentUpstream: Channel? {
        guard let upstream, let backend = exchange?.backend, backend.id == upstream.backend.id else { return nil }
        return upstream.channel
    }

    /// Pauses reading from the client while more than the retry buffer of its body waits for a backend,
    /// while the backend cannot take more (uploads flow no faster than the backend reads them), or while
    /// requests pipelined behind a pending response pile up.
    private func updateClientReading() {
        // A closing connection reads (and drops) whatever comes, so that it can close without a reset.
        guard let context, !closing else { return }
        // Bytes wait unread only behind a request in progress; a head still arriving is read up to its limit.
        var pause = exchange != nil && (clientBytes?.readableBytes ?? 0) > pipelineLimit
        if let current = exchange, !current.rejected, !current.requestEnded {
            if let channel = sentUpstream {
                pause = pause || !channel.isWritable || current.awaitingDelivery
            } else {
                pause = pause || current.bodyBytes > retryBufferLimit
            }
        }
        guard pause != readingPaused else { return }
        readingPaused = pause
        context.channel.setOption(.autoRead, value: !pause).whenFailure { _ in }
    }

    /// Closes the backend connection, so that nothing it sends or does afterwards touches this one.
    private func dropUpstream() {
        upstreamGeneration += 1
        endingDelivery = nil
        upstream?.channel.close(promise: nil)
        upstream = nil
        backendBytes = nil
        responseScanner.restart()
    }

    /// The client sent nothing for the idle timeout: a connection between requests, or one stalled
    /// half-way through sending a request, is closed. A request sent whole whose instance has not begun
    /// to answer in that time gets 504 (the instance is hung); one whose answer is streaming is left alone.
    private func idle() {
        guard let context else { return }
        if exchange?.heldHead != nil {
            releaseHeldHead()
            context.flush()
            return
        }
        if let current = exchange, current.requestEnded, !current.responseStarted, !current.rejected {
            if let backend = current.backend {
                pool.release(backend)
                attemptFailed(backend)
                exchange!.failedOn.insert(backend.id)
            }
            exchange!.backend = nil
            exchange!.clientKeepAlive = false
            dropUpstream()
            reject(status: 504, reason: "Gateway Timeout", message: "the instance did not begin to answer within the load balancer's timeout")
            return
        }
        if exchange == nil || exchange?.requestEnded == false {
            if exchange != nil && exchange?.rejected == false { metrics.countFailure(self.failureNote("closed", "the client sent nothing more of its request for the idle timeout")) }
            finishExchange()
            dropUpstream()
            closing = true
            context.close(promise: nil)
        }
    }

    // MARK: Choosing a backend and connecting

    /// Assigns the current request to a backend and sends what has been read of it.
    private func dispatch() {
        guard let failedOn = exchange?.failedOn, let context else { return }
        // A retry must not go back to a backend that already failed it; otherwise a keep-alive
        // connection stays on its backend.
        guard let (backend, side, stickyRollout) = pool.acquire(preferred: failedOn.isEmpty ? upstream?.backend.id : nil, excluding: failedOn,
                                                         side: exchange?.cookieSide ?? exchange?.retrySide) else {
            if failedOn.isEmpty {
                pool.recordFrontAnswer(status: 503)
                reject(status: 503, reason: "Service Unavailable", message: "no healthy instance is serving this service")
            } else {
                pool.recordFrontAnswer(status: 502)
                reject(status: 502, reason: "Bad Gateway", message: "no instance could answer the request")
            }
            return
        }
        exchange!.backend = backend
        exchange!.side = side
        exchange!.cookieRollout = exchange!.cookieSide != side ? stickyRollout : nil
        exchange!.attemptStarted = NIODeadline.now().uptimeNanoseconds
        if let upstream, upstream.backend == backend, !upstream.closing, upstream.channel.isActive {
            exchange!.sentOnReusedConnection = true
            sendRequest(on: upstream.channel)
            return
        }
        exchange!.sentOnReusedConnection = false
        dropUpstream()
        let generation = upstreamGeneration
        // Made here, on this connection's event loop, where the backend connection's pipeline is set up too.
        let handler = NIOLoopBound(UpstreamHandler(front: self, generation: generation), eventLoop: context.eventLoop)
        let connecting = FrontHandler.connect(to: backend, on: context.eventLoop) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(handler.value)
            }
        }
        connecting.assumeIsolated().whenComplete { result in
            guard generation == self.upstreamGeneration else {
                if case .success(let channel) = result { channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let channel):
                self.upstream = Upstream(channel: channel, backend: backend)
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
        exchange!.responseBody = nil
        channel.write(current.head, promise: nil)
        for buffer in current.body { channel.write(buffer, promise: nil) }
        channel.flush()
        if current.bodyBytes > retryBufferLimit {
            if current.bodyKept && !current.sentOnReusedConnection {
                awaitDelivery(on: channel)
            } else {
                exchange!.bodyKept = false
                exchange!.body = []
            }
        }
        // Bytes that waited for this request to be sent (its body) are relayed now.
        relayClientBytes()
        flushUpstream()
        updateClientReading()
    }

    /// Whether the backend's kernel has acknowledged a byte of the request sent on `channel` (true when
    /// that cannot be known, so that nothing waits on it).
    private func acknowledged(_ channel: Channel) -> Bool {
        (DeliveredBytes.read(channel)?.requestBytesAcknowledged ?? 1) > 0
    }

    /// Keeps the body sent so far, pauses reading from the client, and checks for the acknowledgement.
    private func awaitDelivery(on channel: Channel) {
        guard exchange?.awaitingDelivery == false else { return }
        exchange!.awaitingDelivery = true
        checkDelivery(on: channel, generation: upstreamGeneration, after: .microseconds(200))
    }

    /// Checks, at growing intervals, whether the backend's kernel has acknowledged a byte of the request
    /// sent on `channel`; once it has, the kept body is let go and the rest of it is read from the client.
    /// After some 1.6 s without an acknowledgement the body is let go anyway, and streams on.
    private func checkDelivery(on channel: Channel, generation: Int, after delay: TimeAmount) {
        guard let context else { return }
        context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: delay) { [self] in
            guard generation == upstreamGeneration, exchange?.awaitingDelivery == true, sentUpstream === channel else { return }
            if acknowledged(channel) || delay >= .milliseconds(800) {
                exchange!.awaitingDelivery = false
                exchange!.bodyKept = false
                exchange!.body = []
                updateClientReading()
            } else {
                checkDelivery(on: channel, generation: generation, after: delay * 2)
            }
        }
    }

    // MARK: Bytes from the backend

    func upstreamRead(_ incoming: ByteBuffer, generation: Int) {
        guard generation == upstreamGeneration, context != nil, !closing else { return }
        backendQuietChecks = 0
        guard exchange != nil, !exchange!.rejected else {
            // Nothing was asked: a backend that talks out of turn is not used again.
            dropUpstream()
            return
        }
        FrontHandler.append(incoming, to: &backendBytes)
        relayBackendBytes()
        if backendBytes?.readableBytes == 0 { backendBytes = nil }
    }

    /// Relays what can be relayed of the backend's bytes: interim answers, the response head once it is
    /// whole, the body as it comes.
    private func relayBackendBytes() {
        while let context, exchange != nil, !exchange!.rejected, var bytes = backendBytes, bytes.readableBytes > 0 {
            backendBytes = nil
            defer { if backendBytes == nil && upstream != nil { backendBytes = bytes } }
            guard var reader = exchange!.responseBody else {
                guard relayResponseHead(&bytes, context: context) else { return }
                continue
            }
            var payload: [Range<Int>] = []
            let dechunk = exchange!.dechunk
            let consumed: Int
            do {
                consumed = try bytes.withUnsafeReadableBytes { (raw) throws(FramingError) -> Int in
                    try reader.read(raw) { if dechunk { payload.append($0) } }
                }
            } catch {
                // The response is cut short: the client must see its connection end, not a spliced answer.
                responseBroken(why: "the instance's answer broke its framing: \(error)")
                return
            }
            if consumed > 0 { releaseHeldHead() }
            if dechunk {
                for range in payload where !range.isEmpty {
                    context.write(wrapOutboundOut(bytes.getSlice(at: bytes.readerIndex + range.lowerBound, length: range.count)!), promise: nil)
                }
                bytes.moveReaderIndex(forwardBy: consumed)
            } else if consumed > 0 {
                context.write(wrapOutboundOut(bytes.readSlice(length: consumed)!), promise: nil)
            }
            exchange!.responseBody = reader
            if reader.isComplete {
                // Bytes past the response: the backend cannot be trusted with another request.
                if bytes.readableBytes > 0 { upstream?.closing = true }
                bytes.clear()
                finishResponse()
                return
            }
        }
    }

    /// Reads a response head from the start of `bytes` and relays it; false when it has not all arrived
    /// yet, or the exchange ended with it.
    private func relayResponseHead(_ bytes: inout ByteBuffer, context: ChannelHandlerContext) -> Bool {
        fields.removeAll(keepingCapacity: true)
        let parsed: ResponseHead
        do {
            guard let end = try bytes.withUnsafeReadableBytes({ (raw) throws(FramingError) -> Int? in try responseScanner.end(in: raw) }) else {
                return false
            }
            let toHead = exchange!.isHead
            parsed = try bytes.withUnsafeReadableBytes { (raw) throws(FramingError) -> ResponseHead in
                try ResponseHead.parse(raw, length: end, toHead: toHead, fields: &fields)
            }
        } catch {
            bytes.clear()
            backendAnswerRefused(message: "the instance's answer is not valid HTTP/1.1: \(error)")
            return false
        }
        if parsed.status == 101 {
            bytes.clear()
            backendAnswerRefused(message: "the instance asked to switch protocols, which the load balancer does not relay")
            return false
        }
        let client = exchange!.clientMinorVersion
        if parsed.isInterim {
            // An interim answer (100 Continue): the final one follows on the same exchange. HTTP/1.0 clients never get one.
            if client == 1 { context.writeAndFlush(wrapOutboundOut(rewritten(bytes, parsed, keepAlive: true, dechunk: false)), promise: nil) }
            bytes.moveReaderIndex(forwardBy: parsed.length)
            return true
        }
        exchange!.status = parsed.status
        if !parsed.keepAlive { upstream?.closing = true }
        if draining.isDraining { exchange!.clientKeepAlive = false }
        // HTTP/1.0 has no chunked framing: such a body is passed on dechunked and ends when the connection does.
        let dechunk = client == 0 && parsed.body == .chunked
        if dechunk || parsed.body == .untilClose { exchange!.clientKeepAlive = false }
        exchange!.dechunk = dechunk
        exchange!.responseUntilClose = parsed.body == .untilClose
        let keepAlive = exchange!.clientKeepAlive
        var head: ByteBuffer
        if ForwardedHead.responseUnchanged(parsed, clientMinorVersion: client, keepAlive: keepAlive) {
            head = bytes.readSlice(length: parsed.length)!
        } else {
            head = rewritten(bytes, parsed, keepAlive: keepAlive, dechunk: client == 0)
            bytes.moveReaderIndex(forwardBy: parsed.length)
        }
        if let rollout = exchange!.cookieRollout { head = withStickyCookie(head, rollout: rollout) }
        if parsed.body == .none || bytes.readableBytes > 0 {
            // The usual case: the body (or the end) came with the head.
            context.write(wrapOutboundOut(head), promise: nil)
            exchange!.responseStarted = true
        } else {
            holdHead(head)
        }
        exchange!.responseBody = BodyReader(parsed.body)
        if parsed.body == .none {
            if bytes.readableBytes > 0 { upstream?.closing = true }
            bytes.clear()
            finishResponse()
            return false
        }
        return true
    }

    /// Holds back a response head that came without any of its body until the first body byte: an
    /// instance that dies between writing its head and its body (killed, crashed) has then sent the
    /// client nothing, and an idempotent request goes to another instance instead of failing. A body
    /// that takes long to begin (a stream) gets its head at the next idle check, within a quarter of
    /// the idle timeout. (No timer per response: servers such as nginx write the head and the body
    /// apart, so this is the common path, and a timer each would cost a fifth of the throughput.)
    private func holdHead(_ head: ByteBuffer) {
        guard exchange != nil else { return }
        exchange!.heldHead = head
    }

    /// Writes the held response head, if there is one: the answer has begun.
    private func releaseHeldHead() {
        guard let context, let head = exchange?.heldHead else { return }
        exchange!.heldHead = nil
        exchange!.responseStarted = true
        context.write(wrapOutboundOut(head), promise: nil)
    }

    /// `head` with a cookie that keeps the client on the side that answered it (before the blank line).
    private func withStickyCookie(_ head: ByteBuffer, rollout: UInt64) -> ByteBuffer {
        let line = StickyCookie.setCookieLine(exchange!.side, rollout: rollout)
        var buffer = context!.channel.allocator.buffer(capacity: head.readableBytes + line.count)
        var rest = head
        buffer.writeBuffer(&rest)
        buffer.moveWriterIndex(to: buffer.writerIndex - 2)
        buffer.writeBytes(line)
        buffer.writeBytes([0x0D, 0x0A])
        return buffer
    }

    /// The response head in `bytes` as the client receives it.
    private func rewritten(_ bytes: ByteBuffer, _ head: ResponseHead, keepAlive: Bool, dechunk: Bool) -> ByteBuffer {
        scratch.removeAll(keepingCapacity: true)
        bytes.withUnsafeReadableBytes { raw in
            ForwardedHead.response(raw, head: head, fields: fields, clientMinorVersion: exchange!.clientMinorVersion,
                                   keepAlive: keepAlive, dechunked: dechunk, into: &scratch)
        }
        var buffer = context!.channel.allocator.buffer(capacity: scratch.count)
        buffer.writeBytes(scratch)
        return buffer
    }

    /// The response has been relayed whole: the connection goes on with the next request, or closes.
    private func finishResponse() {
        guard let context, exchange != nil else { return }
        releaseHeldHead()
        let keepAlive = exchange!.clientKeepAlive
        // A backend that answered before the whole request body arrived may still be reading it: the
        // rest of the body is read and dropped, and that backend connection is not used again (the next
        // request would be read as the end of this body).
        let bodyUnfinished = !exchange!.requestEnded
        if let backend = exchange!.backend { pool.record(backend, side: exchange!.side, status: exchange!.status, microseconds: elapsedMicroseconds) }
        if upstream?.closing == true || bodyUnfinished { dropUpstream() }
        if bodyUnfinished {
            if let backend = exchange!.backend { pool.release(backend) }
            exchange!.backend = nil
            exchange!.rejected = true
        } else {
            finishExchange()
        }
        if keepAlive {
            context.flush()
            relayClientBytes()
            flushUpstream()
            updateClientReading()
        } else {
            closeAfterWrites(context)
        }
    }

    /// The backend's read burst ended: send what was relayed.
    func upstreamReadComplete(generation: Int) {
        guard generation == upstreamGeneration, exchange?.responseStarted == true else { return }
        context?.flush()
    }

    /// The backend connection `generation` is about to close; `delivered` is what its kernel counted.
    func upstreamEnding(generation: Int, delivered: DeliveredBytes) {
        guard generation == upstreamGeneration else { return }
        endingDelivery = delivered
    }

    /// The backend connection failed or closed. A response delimited by the connection's end is
    /// complete. A request that was never sent (the connection was refused) may go to another backend
    /// whatever its method; one that was sent, only if idempotent.
    func upstreamFailed(generation: Int, requestSent: Bool = true) {
        guard generation == upstreamGeneration else { return }
        let delivery = endingDelivery
        endingDelivery = nil
        if exchange?.responseUntilClose == true, exchange?.rejected == false {
            upstream = nil
            exchange!.clientKeepAlive = false
            finishResponse()
            return
        }
        upstream = nil
        backendBytes = nil
        responseScanner.restart()
        defer { updateClientReading() }
        guard exchange?.rejected == false, let backend = exchange?.backend else { return }
        if exchange!.responseStarted {
            responseBroken(why: "the instance closed the connection in the middle of its answer")
            return
        }
        pool.release(backend)
        exchange!.backend = nil
        exchange!.awaitingDelivery = false
        // A head that was held back never reached the client: the request can still go elsewhere.
        exchange!.heldHead = nil
        exchange!.responseBody = nil
        exchange!.responseUntilClose = false
        exchange!.dechunk = false
        if exchange!.sentOnReusedConnection, !exchange!.retriedOnFreshConnection, exchange!.bodyKept, exchange!.idempotent {
            // A kept-alive connection the backend closed as the request went out (its keep-alive timeout):
            // not a failure of the backend. Once, on a new connection (to any backend, the same included).
            exchange!.retriedOnFreshConnection = true
            exchange!.retrySide = exchange!.side
            metrics.count(.retried)
            dispatch()
            return
        }
        attemptFailed(backend)
        exchange!.failedOn.insert(backend.id)
        // A request none of whose bytes the backend's kernel acknowledged, on a connection made for it, never
        // reached the instance (see ``DeliveredBytes``): it goes elsewhere like a refused one, whatever its method.
        let neverReached = !requestSent || (!exchange!.sentOnReusedConnection && delivery?.requestNeverReached == true)
        if exchange!.bodyKept && (exchange!.idempotent || neverReached) {
            metrics.count(.retried)
            dispatch()
        } else {
            reject(status: 502, reason: "Bad Gateway", message: "the instance closed the connection before answering")
        }
    }

    /// Part of a response went out and the rest cannot follow: the client must see the connection end,
    /// not a spliced answer.
    private func responseBroken(why: String) {
        metrics.countFailure(failureNote("cut", why))
        if let backend = exchange?.backend {
            pool.release(backend)
            pool.record(backend, side: exchange!.side, status: nil, microseconds: elapsedMicroseconds)
        }
        exchange = nil
        closing = true
        clientBytes = nil
        dropUpstream()
        context?.flush()
        context?.close(promise: nil)
    }

    /// The backend answered with something that cannot be relayed: 502, and that connection is dropped.
    private func backendAnswerRefused(message: String) {
        exchange!.clientKeepAlive = false
        if let backend = exchange!.backend {
            pool.release(backend)
            attemptFailed(backend)
            exchange!.failedOn.insert(backend.id)
        }
        exchange!.backend = nil
        dropUpstream()
        reject(status: 502, reason: "Bad Gateway", message: message)
    }

    /// Relays backpressure: stop reading the backend while the client cannot take more.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { stalledChecks = 0 }
        upstream?.channel.setOption(.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }

    /// The backend can take more of the request body, or cannot: reading from the client follows.
    func upstreamWritabilityChanged(generation: Int) {
        guard generation == upstreamGeneration else { return }
        updateClientReading()
    }

    // MARK: Ending requests

    /// The attempt on `backend` failed before an answer: the pool hears of it, and it counts as an error
    /// of its side.
    private func attemptFailed(_ backend: Backend) {
        pool.reportFailure(backend)
        pool.record(backend, side: exchange?.side ?? .stable, status: nil, microseconds: elapsedMicroseconds)
    }

    /// Since the current attempt was sent to its backend.
    private var elapsedMicroseconds: UInt64 {
        guard let started = exchange?.attemptStarted, started > 0 else { return 0 }
        return (NIODeadline.now().uptimeNanoseconds &- started) / 1000
    }

    /// The client closed its connection while its request was relayed. An answer that had begun (its head
    /// read) counts with its status. Otherwise the attempt counts as an error of its side when the version
    /// kept the client waiting: for the first byte of an answer to a request sent whole, or by taking no more
    /// of its body (a version that hangs loses its clients before any timeout). A client that was simply
    /// slow to send is not the version's doing.
    private func clientGaveUp() {
        guard let current = exchange, let backend = current.backend, !current.rejected else { return }
        if let status = current.status {
            pool.record(backend, side: current.side, status: status, microseconds: elapsedMicroseconds)
        } else if current.requestEnded || upstream?.channel.isWritable == false {
            pool.record(backend, side: current.side, status: nil, microseconds: elapsedMicroseconds)
        }
    }

    private func finishExchange() {
        if let backend = exchange?.backend { pool.release(backend) }
        exchange = nil
        updateClientReading()
    }

    /// A request whose head breaks the grammar: 400 (431, 501, 505), and the connection closes, since
    /// where the next request would begin is unknown. Without an error: the head did not arrive whole
    /// within the idle timeout (408).
    private func refuseRequest(_ error: FramingError?) {
        guard let context, !closing else { return }
        let (status, reason): (Int, String)
        switch error {
        case nil: (status, reason) = (408, "Request Timeout")
        case .headTooLarge: (status, reason) = (431, "Request Header Fields Too Large")
        case .unsupportedVersion: (status, reason) = (505, "HTTP Version Not Supported")
        case .unsupportedTransferCoding: (status, reason) = (501, "Not Implemented")
        default: (status, reason) = (400, "Bad Request")
        }
        let message = error.map { "\($0)" } ?? "the request's head did not arrive whole within the load balancer's timeout"
        let answer = FrontHandler.answer(status: status, reason: reason, message: message, minorVersion: 1, keepAlive: false,
                                         allocator: context.channel.allocator)
        context.write(wrapOutboundOut(answer), promise: nil)
        closeAfterWrites(context)
    }

    /// A request body whose chunked framing is broken: 400 if nothing of an answer went out yet, else the
    /// connection is cut. Either way it closes, since where the next request would begin is unknown.
    private func requestBodyMalformed(_ error: FramingError) {
        clientBytes = nil
        guard exchange != nil, !exchange!.responseStarted || exchange!.rejected else {
            responseBroken(why: "the client's request body broke its chunked framing after the answer began: \(error)")
            return
        }
        if exchange!.rejected {
            exchange = nil
            closing = true
            context?.close(promise: nil)
            return
        }
        if let backend = exchange!.backend { pool.release(backend) }
        exchange = nil
        dropUpstream()
        refuseRequest(error)
    }

    private func reject(status: Int, reason: String, message: String) {
        guard let context, let current = exchange else { return }
        metrics.countFailure(failureNote(String(status), message))
        let answer = FrontHandler.answer(status: status, reason: reason, message: message, minorVersion: current.clientMinorVersion,
                                         keepAlive: current.clientKeepAlive, allocator: context.channel.allocator)
        // The state is settled before the answer is written: a request pipelined behind this one may be
        // relayed at once, and its exchange must not be the one cleared here.
        if current.requestEnded {
            exchange = nil
        } else {
            exchange!.rejected = true
        }
        updateClientReading()
        context.write(wrapOutboundOut(answer), promise: nil)
        if !current.clientKeepAlive {
            closeAfterWrites(context)
        } else {
            context.flush()
            if current.requestEnded {
                relayClientBytes()
                flushUpstream()
            }
        }
    }

    /// Flushes what was written to the client, then ends its connection (see ``linger(_:)``); nothing more
    /// is relayed, and what the client still sends is read and dropped. A client that takes nothing of that
    /// last answer for the idle timeout has its connection closed, as on a connection that stays open.
    private func closeAfterWrites(_ context: ChannelHandlerContext) {
        closing = true
        clientBytes = nil
        dropUpstream()
        if readingPaused {
            readingPaused = false
            context.channel.setOption(.autoRead, value: true).whenFailure { _ in }
        }
        stalledChecks = 0
        watchLastAnswer(context, buffered: nil)
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { [self] result in
            guard case .success = result, self.context != nil else {
                context.close(promise: nil)
                return
            }
            linger(context)
        }
    }

    /// Every quarter of the idle timeout until the last answer is flushed: four checks in a row that find
    /// as many of its bytes waiting as before (the client takes nothing) close the connection. (Whether the
    /// connection is writable says nothing here: what is left of an answer may be under the high-water mark.)
    private func watchLastAnswer(_ context: ChannelHandlerContext, buffered before: Int?) {
        let interval = TimeAmount.nanoseconds(max(idleTimeout.nanoseconds / 4, 1_000_000))
        context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: interval) { [self] in
            guard self.context != nil, !lingering, context.channel.isActive else { return }
            let buffered = try? context.channel.syncOptions?.getOption(.bufferedWritableBytes)
            stalledChecks = buffered != nil && buffered == before ? stalledChecks + 1 : 0
            if stalledChecks >= 4 {
                metrics.countFailure(failureNote("cut", "the client took nothing of its last answer for the idle timeout"))
                context.close(promise: nil)
            } else {
                watchLastAnswer(context, buffered: buffered)
            }
        }
    }

    /// Ends a connection whose last answer has been written without losing that answer (RFC 9112 §9.6):
    /// closing a socket with unread bytes (the rest of a body the instance answered early, a request sent
    /// behind one answered with `Connection: close`) makes the kernel send a reset, and a reset can discard
    /// the answer before the client reads it, or fail the client's send of the body it is still writing.
    /// So the front shuts its side (the client reads the answer, then the end), reads and drops whatever
    /// still comes, and closes when the client does, when it sends nothing for `lingerQuiet`, or after
    /// `lingerLimit`, as nginx's lingering close does.
    private func linger(_ context: ChannelHandlerContext) {
        lingering = true
        context.close(mode: .output).assumeIsolated().whenFailure { _ in context.close(promise: nil) }
        let started = NIODeadline.now()
        func check() {
            context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: lingerQuiet) { [self] in
                guard self.context != nil, context.channel.isActive else { return }
                if lingerHeard, NIODeadline.now() - started < lingerLimit {
                    lingerHeard = false
                    check()
                } else {
                    context.close(promise: nil)
                }
            }
        }
        check()
    }

    /// What a failed request's client got (`outcome`: a status, "cut" or "closed") and why, with what the
    /// front knew of the request, for the log.
    private func failureNote(_ outcome: String, _ why: String) -> String {
        guard let current = exchange else { return "\(outcome): \(why)" }
        var facts = [current.idempotent ? "idempotent" : "not idempotent",
                     "body \(current.bodyBytes) bytes\(current.requestEnded ? "" : " so far")"]
        if !current.bodyKept { facts.append("body past the retry buffer") }
        if let backend = current.backend { facts.append("on \(backend.id)") }
        if current.sentOnReusedConnection { facts.append("sent on a reused backend connection") }
        if !current.failedOn.isEmpty { facts.append("failed on \(current.failedOn.sorted().joined(separator: ", "))") }
        if current.responseStarted { facts.append("answer begun") }
        return "\(outcome): \(why) (\(facts.joined(separator: "; ")))"
    }

    /// A complete answer from the front itself.
    static func answer(status: Int, reason: String, message: String, minorVersion: Int, keepAlive: Bool,
                       allocator: ByteBufferAllocator) -> ByteBuffer {
        let body = message + "\n"
        var head = "HTTP/1.\(minorVersion) \(status) \(reason)\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: \(body.utf8.count)\r\n"
        if !keepAlive {
            head += "connection: close\r\n"
        } else if minorVersion == 0 {
            head += "connection: keep-alive\r\n"
        }
        var buffer = allocator.buffer(capacity: head.utf8.count + body.utf8.count + 2)
        buffer.writeString(head)
        buffer.writeString("\r\n")
        buffer.writeString(body)
        return buffer
    }
}

/// Hands a backend connection's bytes and failures to its front connection. Both connections are on
/// the same event loop, so the front's handler is called directly.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let front: FrontHandler
    let generation: Int

    init(front: FrontHandler, generation: Int) {
        self.front = front
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        front.upstreamRead(unwrapInboundIn(data), generation: generation)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        front.upstreamReadComplete(generation: generation)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        front.upstreamWritabilityChanged(generation: generation)
    }

    func channelInactive(context: ChannelHandlerContext) {
        front.upstreamFailed(generation: generation)
    }

    /// The backend closed its side (the connection allows half-closure, so the socket is still open and
    /// what the kernel knows of it can be read before it is closed here).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            ending(context, finReceived: true)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        ending(context)
    }

    /// Tells the front whether the backend's kernel took any byte of the request before the connection
    /// ended, then closes it.
    private func ending(_ context: ChannelHandlerContext, finReceived: Bool = false) {
        if let transfer = DeliveredBytes.read(context.channel, finReceived: finReceived) {
            front.upstreamEnding(generation: generation, delivered: transfer)
        }
        context.close(promise: nil)
    }
}
