import ArgumentParser
import Foundation
import HostPort
import Front
import LoadBalancer
import NIOCore
import TerminationSignals

struct ProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run only the load balancer in front of fixed backends (for measuring it, or fronting servers by hand).",
        discussion: "Runs in the foreground until SIGINT or SIGTERM. Example: imgdeploy proxy --listen 127.0.0.1:9000 --backend 127.0.0.1:8080 --backend 127.0.0.1:8081")

    @Option(name: .long, help: ArgumentHelp("Where to listen.", valueName: "HOST:PORT")) var listen: String
    @Option(name: .long, help: ArgumentHelp("A backend (repeat for more).", valueName: "HOST:PORT")) var backend: [String]
    @Option(name: .customLong("idle-timeout"), help: "Seconds a client may send nothing between requests or while sending one.") var idleTimeout: Int64 = 60
    @Option(name: .customLong("max-connections"), help: "Client connections served at once; more wait until one closes.") var maxConnections = 4096

    func run() async throws {
        func split(_ text: String) throws -> (String, Int) {
            do {
                let address = try HostPort.parse(text)
                return (address.host, address.port)
            } catch {
                throw ValidationError("'\(text)' is not HOST:PORT: \(error)")
            }
        }
        guard !backend.isEmpty else { throw ValidationError("give at least one --backend HOST:PORT") }
        // It counts every answer as a service's front does (into a registry nobody reads here), so that what
        // the benchmark measures is the front's whole path.
        let pool = BackendPool(metricsFactory: FrontProcess.metricsRegistry().factory, service: "proxy")
        pool.setActive(try backend.enumerated().map { index, text in
            let (host, port) = try split(text)
            return Backend(id: "backend-\(index + 1)", host: host, port: port)
        })
        let (host, port) = try split(listen)
        let balancer = LoadBalancer(pool: pool, idleTimeout: .seconds(max(1, idleTimeout)), maxConnections: max(1, maxConnections))
        let bound = try await balancer.start(host: host, port: port)
        printError("imgdeploy proxy: listening on \(host):\(bound)")
        let (stop, continuation) = AsyncStream<Void>.makeStream()
        let signals = TerminationSignals { continuation.yield() }
        defer { signals.cancel() }
        for await _ in stop { break }
        await balancer.stop()
        let counts = balancer.metrics.snapshot
        printError("imgdeploy proxy: \(counts.requests) requests, \(counts.failed) failed, \(counts.retried) retried")
    }
}
