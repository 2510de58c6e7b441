import InstanceNetwork
import NIOCore
import NIOPosix

/// New TCP connections to an instance, for the front and the health probe alike.
public enum BackendConnection {
    /// A connection to `host:port`, its pipeline set up by `initializer`. An instance in a private network
    /// (`namespace`) is reached from inside that network: the socket is made there (joining the namespace
    /// takes this thread a few microseconds), connected without any thread waiting, and handed to the
    /// event loop once connected. A backend that accepts nothing holds up no other.
    ///
    /// With `halfClosure`, the backend closing its side is an event (`ChannelEvent.inputClosed`) before the
    /// connection closes, so what the kernel knows of it can still be read (see ``DeliveredBytes``).
    public static func open(host: String, port: Int, namespace: String?, timeout: Duration, on eventLoop: any EventLoop,
                            halfClosure: Bool = false,
                            initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) -> EventLoopFuture<any Channel> {
        let bootstrap: @Sendable () -> ClientBootstrap = {
            ClientBootstrap(group: eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.allowRemoteHalfClosure, value: halfClosure)
                .connectTimeout(.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))
                .channelInitializer(initializer)
        }
        guard let namespace else {
            return bootstrap().channelOption(.socketOption(.so_reuseaddr), value: 1).connect(host: host, port: port)
        }
        let promise = eventLoop.makePromise(of: Int32.self)
        NetworkNamespace(path: namespace).connect(host: host, port: port, timeout: timeout) { promise.completeWith($0.mapError { $0 as any Error }) }
        return promise.futureResult.flatMap { descriptor in bootstrap().withConnectedSocket(descriptor) }
    }
}

extension FrontHandler {
    /// A new connection to `backend`, its pipeline set up by `initializer` (see ``BackendConnection``).
    static func connect(to backend: Backend, on eventLoop: any EventLoop,
                        initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>) -> EventLoopFuture<any Channel> {
        BackendConnection.open(host: backend.host, port: backend.port, namespace: backend.namespace, timeout: .seconds(5), on: eventLoop,
                               halfClosure: true, initializer: initializer)
    }
}
