import ArgumentParser
import Foundation
import HostPort
import NIOCore
import RegistryServer
import Store

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the store as an OCI distribution-spec registry whose versions never move.",
        discussion: "Reads are anonymous; with --htpasswd, writes need a user from it (bcrypt entries, 'htpasswd -B'). Tags must be SemVer versions ('+' written '_'); other tags only for artifacts that refer to a subject. Deleting is refused. On an address other than loopback, writes need --htpasswd (or --allow-anonymous-push). Stops on SIGINT/SIGTERM after finishing requests in flight (at most --drain-timeout seconds)."
    )

    @Option(help: "HOST:PORT to listen on.") var listen = "127.0.0.1:5000"
    @OptionGroup var storeOptions: StoreOptions
    @Option(name: .customLong("tls-cert"), help: "PEM certificate (chain) for HTTPS.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for HTTPS.") var tlsKey: String?
    @Option(help: "htpasswd file (bcrypt) of the users who may push.") var htpasswd: String?
    @Flag(name: .customLong("read-only"), help: "Refuse every write.") var readOnly = false
    @Flag(name: .shortAndLong, help: "Log no requests.") var quiet = false
    @Flag(name: .customLong("allow-anonymous-push"), help: "On an address other than loopback, accept writes without --htpasswd.") var allowAnonymousPush = false
    @Option(name: .customLong("drain-timeout"), help: "Seconds that requests in flight get to finish after SIGTERM.") var drainTimeout: Int64 = 30
    @Option(name: .customLong("upload-session-limit"), help: "Upload sessions open at once; more are refused (429).") var uploadSessionLimit = 256
    @Option(name: .customLong("max-connections"), help: "Connections served at once; more wait until one closes.") var maxConnections = 1024
    @Option(name: .customLong("idle-timeout"), help: "Seconds a connection may send nothing while idle, or take nothing of a response, before it is closed.") var idleTimeout: Int64 = 30

    func run() async throws {
        let address: HostPort
        do { address = try HostPort.parse(listen, ports: 0...65535) } catch {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:5000 (port 0 picks a free one), and '\(listen)' is not: \(error)")
        }
        var configuration = RegistryServerConfiguration(storePath: storeOptions.store ?? Store.defaultPath())
        configuration.host = address.host
        configuration.port = address.port
        configuration.tlsCertificate = tlsCert
        configuration.tlsKey = tlsKey
        configuration.htpasswd = htpasswd
        configuration.readOnly = readOnly
        configuration.logRequests = !quiet
        configuration.idleTimeout = .seconds(max(1, idleTimeout))
        configuration.drainTimeout = .seconds(max(0, drainTimeout))
        configuration.allowAnonymousPush = allowAnonymousPush
        configuration.uploadSessionLimit = max(1, uploadSessionLimit)
        configuration.connectionLimit = max(1, maxConnections)
        let banner = "serving \(configuration.storePath) on \(tlsCert == nil ? "http" : "https")://\(configuration.host):"
        try await RegistryServer.run(configuration) { port in printError(banner + String(port)) }
    }
}
