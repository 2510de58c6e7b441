import InstanceNetwork
import LoadBalancer
import NIOCore
import NIOHTTP1
import NIOPosix

/// Checks one instance: an HTTP GET answered with 2xx or 3xx, or, without a path, a TCP connection accepted.
/// An instance in a private network is checked from inside it, exactly as the front reaches it.
public struct HealthProbe: Sendable {
    public init() {}

    /// Nil when healthy, else what went wrong.
    public func check(host: String, port: Int, namespace: NetworkNamespace?, path: String?, timeout: Duration) async -> String? {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let answer = eventLoop.makePromise(of: HTTPResponseStatus.self)
        let channel: any Channel
        do {
            channel = try await BackendConnection.open(host: host, port: port, namespace: namespace?.path, timeout: timeout, on: eventLoop) { channel in
                guard path != nil else { return channel.eventLoop.makeSucceededVoidFuture() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([HTTPRequestEncoder(), ByteToMessageHandler(HTTPResponseDecoder())])
                    try channel.pipeline.syncOperations.addHandler(AnswerCatcher(answer: answer))
                }
            }.get()
        } catch {
            answer.fail(ProbeFailure(reason: "no connection"))
            return "no connection to \(host):\(port)\(namespace == nil ? "" : " in the instance's network"): \(error)"
        }
        guard let path else {
            answer.fail(ProbeFailure(reason: "no request"))
            try? await channel.close()
            return nil
        }
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
        head.headers.add(name: "host", value: "\(host):\(port)")
        head.headers.add(name: "user-agent", value: "imgdeploy-health")
        head.headers.add(name: "connection", value: "close")
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        // A promise completed twice keeps its first result: the answer, or the timeout, whichever came first.
        let expiry = eventLoop.scheduleTask(in: .milliseconds(timeout.milliseconds)) { answer.fail(ProbeFailure(reason: "no answer within \(timeout)")) }
        let result: Result<HTTPResponseStatus, any Error>
        do { result = .success(try await answer.futureResult.get()) } catch { result = .failure(error) }
        expiry.cancel()
        try? await channel.close()
        switch result {
        case .success(let status) where (200..<400).contains(status.code): return nil
        case .success(let status): return "GET \(path) answered \(status.code) \(status.reasonPhrase)"
        case .failure(let problem): return "GET \(path) on port \(port) failed: \((problem as? ProbeFailure)?.reason ?? "\(problem)")"
        }
    }
}

/// Why a probe found no answer.
struct ProbeFailure: Error {
    let reason: String
}

/// Completes `answer` with the status of the first final response, or fails it when there is none.
private final class AnswerCatcher: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let answer: EventLoopPromise<HTTPResponseStatus>

    init(answer: EventLoopPromise<HTTPResponseStatus>) {
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), head.status.code >= 200 { answer.succeed(head.status) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        answer.fail(ProbeFailure(reason: "the connection closed before an answer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        answer.fail(ProbeFailure(reason: "\(error)"))
        context.close(promise: nil)
    }
}
