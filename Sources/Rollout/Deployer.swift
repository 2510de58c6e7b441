import AsyncHTTPClient
import Foundation
import ReleaseSpec
import Releases

/// The deployer daemon's core: one controller per service, the releases they share, and the state on disk.
public actor Deployer {
    public let paths: DeployPaths
    private let releases: ReleaseCache
    private let http: HTTPClient
    private let runners: RunnerSet
    private var controllers: [String: ServiceController] = [:]

    public init(paths: DeployPaths) {
        self.paths = paths
        self.releases = ReleaseCache(root: paths.root)
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        self.runners = RunnerSet(paths: paths)
    }

    /// Cleans up what a killed deployer left (containers, mounts) and starts again every release that was
    /// serving, in the background; returns the services being re-adopted.
    public func start() async -> [String] {
        await runners.removeLeftovers()
        var adopted: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: paths.services)) ?? []
        for name in names.sorted() {
            guard let spec = ReleaseHistory(paths: paths, service: name).current() else { continue }
            adopted.append(name)
            let controller = controller(name)
            Task { _ = try? await controller.apply(spec, kind: "readopt") }
        }
        return adopted
    }

    private func controller(_ name: String) -> ServiceController {
        if let existing = controllers[name] { return existing }
        let made = ServiceController(name: name, paths: paths, releases: releases, probe: HealthProbe(client: http), runners: runners)
        controllers[name] = made
        return made
    }

    private func existing(_ name: String) throws(DeployError) -> ServiceController {
        guard let controller = controllers[name] else { throw .unknownService(name) }
        return controller
    }

    /// Rolls out a release spec and returns how it ended.
    public func apply(_ spec: ReleaseSpec) async throws(DeployError) -> RolloutRecord {
        try await controller(spec.service).apply(spec)
    }

    /// Every service's status, or one's.
    public func status(_ name: String?) async throws(DeployError) -> [ServiceStatus] {
        if let name { return [await try existing(name).status()] }
        var result: [ServiceStatus] = []
        for name in controllers.keys.sorted() { result.append(await controllers[name]!.status()) }
        return result
    }

    /// A service's rollouts, oldest first, read from disk (so they outlive the service and the daemon).
    public func history(_ name: String) throws(DeployError) -> [RolloutRecord] {
        let records = ReleaseHistory(paths: paths, service: name).records()
        guard !records.isEmpty || controllers[name] != nil else { throw .unknownService(name) }
        return records
    }

    public func rollback(_ name: String, to digest: String?) async throws(DeployError) -> RolloutRecord {
        try await existing(name).rollback(to: digest)
    }

    public func down(_ name: String) async throws(DeployError) {
        await try existing(name).down()
        controllers[name] = nil
    }

    /// Stops every service (they are re-adopted at the next start) and releases the HTTP client.
    public func shutdown() async {
        for controller in controllers.values { await controller.down(forget: false) }
        controllers = [:]
        try? await http.shutdown()
    }
}
