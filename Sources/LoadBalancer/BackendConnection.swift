import InstanceNetwork
import NIOCore
import NIOPosix

extension FrontHandler {
    /// A new connection to `backend`, its pipeline set up by `initializer`. An instance in a private
    /// network is reached from inside that network: the socket is made there (joining the namespace
    /// takes this thread a few microseconds), connected without any thread waiting, and handed to the
    /// event loop once connected. A backend that accepts nothing holds up no other.
    static func connect(to backend: Backend, on eventLoop: any EventLoop,
                        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) -> EventLoopFuture<any Channel> {
        let bootstrap: @Sendable () -> ClientBootstrap = {
            ClientBootstrap(group: eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(5))
                .channelInitializer(initializer)
        }
        guard let namespace = backend.namespace else {
            return bootstrap().channelOption(.socketOption(.so_reuseaddr), value: 1).connect(host: backend.host, port: backend.port)
        }
        return NetworkNamespace(path: namespace).connect(host: backend.host, port: backend.port, timeout: .seconds(5), on: eventLoop)
            .flatMap { descriptor in bootstrap().withConnectedSocket(descriptor) }
    }
}

extension NetworkNamespace {
    /// ``connect(host:port:timeout:completion:)`` as a future of `eventLoop`.
    public func connect(host: String, port: Int, timeout: Duration, on eventLoop: any EventLoop) -> EventLoopFuture<Int32> {
        let promise = eventLoop.makePromise(of: Int32.self)
        connect(host: host, port: port, timeout: timeout) { promise.completeWith($0.mapError { $0 as any Error }) }
        return promise.futureResult
    }
}
