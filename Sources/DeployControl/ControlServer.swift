import Foundation
import Front
import Hummingbird
import Logging
import NIOCore
import ReleaseSpec
import DeployerCore
import ServiceLifecycle
import TerminationSignals

/// `imgdeploy up`: the deployer daemon, controlled over HTTP on a Unix socket that only its owner can reach.
///
/// | request | answer |
/// |---|---|
/// | `POST /v1/apply` (a release spec as JSON) | the finished rollout record |
/// | `GET /v1/status[?service=NAME]` | service statuses |
/// | `GET /v1/history/NAME` | the service's rollout records |
/// | `POST /v1/rollback/NAME[?to=DIGEST]` | the finished rollout record |
/// | `POST /v1/down/NAME` | `{}` |
/// | `GET /v1/metrics[?service=NAME]` | the fronts' metrics, Prometheus text format |
/// | `POST /v1/promote/NAME` | `{}`: the canary in its steps skips the rest |
/// | `POST /v1/abort/NAME` | `{}`: the canary in its steps stops, the old version serves on |
/// | `POST /v1/upgrade-front/NAME` | how the front upgrade went |
/// | `POST /v1/verify/NAME` | each release's tree compared with the one recorded at unpack |
/// | `POST /v1/gc[?dry-run=true]` | the releases and blobs removed (or that would be) |
public enum ControlServer {
    /// Runs until SIGTERM or SIGINT, then exits leaving every service serving: fronts and instances are
    /// processes of their own, and the next daemon adopts them. With `metrics`, the fronts' metrics are also
    /// served at `GET /metrics` on that TCP address, for Prometheus to scrape.
    public static func run(paths: DeployPaths, metrics: (host: String, port: Int)? = nil,
                           onReady: @escaping @Sendable ([String]) -> Void = { _ in }) async throws {
        try FileManager.default.createDirectory(atPath: paths.root, withIntermediateDirectories: true)
        // Others may pass through (an instance's user must reach its root) but not list; the socket is the owner's alone.
        chmod(paths.root, 0o711)
        try DaemonLock.acquire(paths.root + "/daemon.lock")
        unlink(paths.socket)
        // Private socket folders of a daemon that died while starting (the lock says none is running).
        PrivateSocketPath.removeLeftovers(in: paths.root)
        let deployer = Deployer(paths: paths)
        let adopted = await deployer.start()
        var logger = Logger(label: "imgdeploy")
        logger.logLevel = .warning
        // The socket is bound inside a folder only the owner can enter, made 0600, and only then renamed into
        // place, so no other user can connect to it even for an instant. (A umask would do the same for the
        // socket, but it is the whole process's, and re-adopted services create files meanwhile.)
        let binding = try PrivateSocketPath(finalPath: paths.socket)
        let app = Application(router: router(deployer), configuration: .init(address: .unixDomainSocket(path: binding.temporaryPath), serverName: "imgdeploy"),
                              onServerRunning: { _ in
                                  binding.publish()
                                  onReady(adopted)
                              }, logger: logger)
        var services: [any Service] = [app]
        if let metrics {
            let scrape = Router()
            scrape.get("/metrics") { _, _ -> Response in await metricsAnswer(deployer, service: nil) }
            services.append(Application(router: scrape, configuration: .init(address: .hostname(metrics.host, port: metrics.port), serverName: "imgdeploy"),
                                        logger: logger))
        }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        let signals = TerminationSignals {
            Task {
                await deployer.shutdown()
                await group.triggerGracefulShutdown()
            }
        }
        defer { signals.cancel() }
        try await group.run()
        unlink(paths.socket)
    }

    static func router(_ deployer: Deployer) -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/v1/apply") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let spec: ReleaseSpec
            do { spec = try DeployJSON.decoder.decode(ReleaseSpec.self, from: Data(buffer: body)) } catch {
                return failure(.badRequest, "the release spec sent is not valid: \(error)")
            }
            let problems = spec.problems
            guard problems.isEmpty else {
                return failure(.badRequest, "the release spec sent is not valid: " + problems.joined(separator: "; "))
            }
            return await answer { () async throws(DeployError) in try await deployer.apply(spec) }
        }
        router.get("/v1/status") { request, _ -> Response in
            let name = request.uri.queryParameters.get("service")
            return await answer { () async throws(DeployError) in try await deployer.status(name) }
        }
        router.get("/v1/history/:service") { _, context -> Response in
            let name = context.parameters.get("service") ?? ""
            return await answer { () async throws(DeployError) in try await deployer.history(name) }
        }
        router.post("/v1/rollback/:service") { request, context -> Response in
            let name = context.parameters.get("service") ?? ""
            let digest = request.uri.queryParameters.get("to")
            return await answer { () async throws(DeployError) in try await deployer.rollback(name, to: digest) }
        }
        router.post("/v1/verify/:service") { _, context -> Response in
            let name = context.parameters.get("service") ?? ""
            return await answer { () async throws(DeployError) in try await deployer.verify(name) }
        }
        router.post("/v1/upgrade-front/:service") { _, context -> Response in
            let name = context.parameters.get("service") ?? ""
            return await answer { () async throws(DeployError) in try await deployer.upgradeFront(name) }
        }
        router.post("/v1/gc") { request, _ -> Response in
            let dryRun = request.uri.queryParameters.get("dry-run") == "true"
            return await answer { () async throws(DeployError) in try await deployer.collectReleases(dryRun: dryRun) }
        }
        router.get("/v1/metrics") { request, _ -> Response in
            await metricsAnswer(deployer, service: request.uri.queryParameters.get("service").map { String($0) })
        }
        router.post("/v1/promote/:service") { _, context -> Response in
            let name = context.parameters.get("service") ?? ""
            return await answer { () async throws(DeployError) -> [String: String] in
                try await deployer.promote(name)
                return [:]
            }
        }
        router.post("/v1/abort/:service") { _, context -> Response in
            let name = context.parameters.get("service") ?? ""
            return await answer { () async throws(DeployError) -> [String: String] in
                try await deployer.abortCanary(name)
                return [:]
            }
        }
        router.post("/v1/down/:service") { _, context -> Response in
            let name = context.parameters.get("service") ?? ""
            return await answer { () async throws(DeployError) -> [String: String] in
                try await deployer.down(name)
                return [:]
            }
        }
        return router
    }

    /// The fronts' metrics (of `service`, or all) in the Prometheus text format.
    static func metricsAnswer(_ deployer: Deployer, service: String?) async -> Response {
        do throws(DeployError) {
            let text = try await deployer.metrics(service)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        } catch {
            return failure(error.isUnknownService ? .notFound : .conflict, error.description)
        }
    }

    static func answer<T: Encodable>(_ body: () async throws(DeployError) -> T) async -> Response {
        do {
            let value = try await body()
            guard let data = try? DeployJSON.encoder.encode(value) else { return failure(.internalServerError, "cannot encode the answer") }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
        } catch {
            switch error {
            case .unknownService: return failure(.notFound, error.description)
            default: return failure(.conflict, error.description)
            }
        }
    }

    static func failure(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let data = (try? DeployJSON.encoder.encode(ControlFailure(error: message))) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// One deployer per state folder: an exclusive flock held for the daemon's life.
enum DaemonLock {
    struct Held: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "another imgdeploy daemon is running on this state folder (\(path) is locked): stop it first, or give this one its own --state"
        }
    }

    static func acquire(_ path: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw Held(path: path)
        }
        // The descriptor stays open, and the lock held, until the process exits.
    }
}
