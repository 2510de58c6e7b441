import InstanceNetwork
import NIOCore
import NIOPosix

extension FrontHandler {
    /// A new connection to `backend`, its pipeline set up by `initializer`. An instance in a private
    /// network is reached from inside that network: the socket is made there, on a thread of NIO's
    /// pool (joining the namespace takes a moment of that thread), and handed to the event loop connected.
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
        return NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            try NetworkNamespace(path: namespace).connect(host: backend.host, port: backend.port, timeout: .seconds(5))
        }.flatMap { descriptor in
            bootstrap().withConnectedSocket(descriptor)
        }
    }
}
