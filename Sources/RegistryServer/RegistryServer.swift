import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import ServiceLifecycle
import NIOSSL
import NIOCore
import ProcessLimits
import Store
import TerminationSignals
import NIOConcurrencyHelpers

/// How `imgbuild serve` runs.
public struct RegistryServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 5000
    public var storePath: String
    public var tlsCertificate: String?
    public var tlsKey: String?
    public var htpasswd: String?
    public var readOnly = false
    /// One structured line per request on standard error.
    public var logRequests = true
    /// Connections idle longer than this are closed (slowloris protection).
    public var idleTimeout: TimeAmount = .seconds(30)
    /// On SIGTERM, how long requests in flight may take to finish before the server stops anyway.
    public var drainTimeout: Duration = .seconds(30)
    /// Lets a server on an address other than loopback take writes without a user file.
    public var allowAnonymousPush = false
    /// Upload sessions open at once; more are refused (429) until one ends or idles out.
    public var uploadSessionLimit = 256
    /// Connections open at once; further ones wait in the kernel's queue until one closes.
    public var connectionLimit = 1024

    public init(storePath: String) {
        self.storePath = storePath
    }
}

/// An OCI distribution-spec registry over the store. Runs until SIGINT or SIGTERM, then finishes the
/// requests in flight.
public enum RegistryServer {
    /// Why the server cannot start.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs the server; `onListening` receives the bound port (useful with port 0).
    public static func run(_ configuration: RegistryServerConfiguration, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        if !configuration.readOnly, configuration.htpasswd == nil, !configuration.allowAnonymousPush, !isLoopback(configuration.host) {
            throw StartError(description: "serving \(configuration.host) to other machines would let anyone push: give --htpasswd FILE (users made with 'htpasswd -B'), or --read-only, or --allow-anonymous-push if that is really meant")
        }
        let store = try Store.open(at: configuration.storePath, create: !configuration.readOnly)
        // While the server can write, it holds the write lease: gc waits until it stops (or runs --read-only),
        // so blobs uploaded before their manifest are never collected in between.
        let lease = configuration.readOnly ? nil : try store.acquireWriteLease()
        defer { withExtendedLifetime(lease) {} }
        let passwords = try configuration.htpasswd.map { PasswordVerifier(try Htpasswd(path: $0)) }
        let inFlight = InFlight()
        let responder = RegistryResponder(store: store, passwords: passwords, readOnly: configuration.readOnly,
                                          log: RequestLog(enabled: configuration.logRequests), inFlight: inFlight,
                                          uploads: UploadSessions(store: store, limit: configuration.uploadSessionLimit))
        let stallTimeout = configuration.idleTimeout
        var server: HTTPServerBuilder = .http1(configuration: .init(additionalChannelHandlers: [WriteStallHandler(timeout: stallTimeout)],
                                                                   idleTimeout: configuration.idleTimeout))
        switch (configuration.tlsCertificate, configuration.tlsKey) {
        case let (certificate?, key?):
            var tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            tls.minimumTLSVersion = .tlsv12
            server = try .tls(server, tlsConfiguration: tls)
        case (nil, nil):
            break
        default:
            throw StartError(description: "--tls-cert and --tls-key go together")
        }
        var logger = Logger(label: "imgbuild.serve")
        logger.logLevel = .warning
        OpenFiles.raiseLimit(to: configuration.connectionLimit * 2 + 256)
        let connections = ConnectionTracker(limit: configuration.connectionLimit)
        let app = Application(responder: responder, server: server,
                              configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "imgbuild",
                                                   availableConnectionsDelegate: ConnectionCounter(tracker: connections)),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? configuration.port) },
                              logger: logger)
        // SIGTERM/SIGINT: refuse new requests and connections, let every response in flight be written and
        // its connection close, then shut down. Hummingbird's own quiescing closes connections whose bodies
        // are still streaming, which would cut downloads in flight. Both waits are bounded, so a client
        // that sends or reads one byte a minute cannot keep the server up.
        let patience = Duration.seconds(configuration.idleTimeout.nanoseconds / 1_000_000_000 + 5)
        var groupConfiguration = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [], logger: logger)
        // By the time graceful shutdown starts, what could finish has: whatever still holds a connection
        // is cut rather than waited for.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(2)
        let group = ServiceGroup(configuration: groupConfiguration)
        let drainTimeout = configuration.drainTimeout
        let shutdownLogger = logger
        let signals = TerminationSignals {
            Task {
                let left = await inFlight.drain(within: drainTimeout)
                if left > 0 { shutdownLogger.warning("stopping with \(left) request(s) unfinished after \(drainTimeout)") }
                await connections.closeAll(within: left > 0 ? .zero : patience)
                await group.triggerGracefulShutdown()
            }
        }
        defer { signals.cancel() }
        try await group.run()
    }
}

/// Whether a listening host is reachable from this machine only.
func isLoopback(_ host: String) -> Bool {
    var address = in_addr()
    return host == "localhost" || host == "::1" || (inet_pton(AF_INET, host, &address) == 1 && host.hasPrefix("127."))
}

/// Open connections, and whether new ones are accepted: not while draining, nor while `limit` are open.
final class ConnectionTracker: Sendable {
    private struct State {
        var open = 0
        var accepting = true
    }

    private let state = NIOLockedValueBox(State())
    let limit: Int

    init(limit: Int) { self.limit = limit }

    func opened() { state.withLockedValue { $0.open += 1 } }
    func closed() { state.withLockedValue { $0.open -= 1 } }
    var isAccepting: Bool { state.withLockedValue { $0.accepting && $0.open < limit } }

    /// Stops accepting and waits until every connection has closed, or `patience` has passed.
    func closeAll(within patience: Duration) async {
        state.withLockedValue { $0.accepting = false }
        let deadline = ContinuousClock.now + patience
        while ContinuousClock.now < deadline {
            if state.withLockedValue({ $0.open }) <= 0 { return }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }
}

struct ConnectionCounter: AvailableConnectionsDelegate {
    let tracker: ConnectionTracker
    func connectionOpened() { tracker.opened() }
    func connectionClosed() { tracker.closed() }
    func isAcceptingNewConnections() -> Bool { tracker.isAccepting }
}
