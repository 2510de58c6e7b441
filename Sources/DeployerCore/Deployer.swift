import Foundation
import Front
import ReleaseSpec
import UnpackedReleases

/// The deployer daemon's core: one controller per service, the releases they share, and the state on disk.
public actor Deployer {
    public let paths: DeployPaths
    private let releases: ReleaseCache
    private let runners: RunnerSet
    private let launcher: FrontLauncher
    private let keeper: ReleaseKeeper
    private var controllers: [String: ServiceController] = [:]

    public init(paths: DeployPaths, launcher: FrontLauncher = FrontLauncher()) {
        self.paths = paths
        self.releases = ReleaseCache(root: paths.root)
        self.runners = RunnerSet(paths: paths)
        self.launcher = launcher
        self.keeper = ReleaseKeeper(paths: paths, releases: releases)
    }

    /// Carries on from the daemon that ran before: adopts every service's running front and instances
    /// (restarting nothing that runs), cleans up what was left of the rest, and, in the background,
    /// aborts rollouts that were in flight, starts what is missing, and replaces fronts that run an older
    /// executable; then removes what a removal cut short by a crash left (releases outside every rollback
    /// window). Returns the services being re-adopted.
    public func start() async -> [String] {
        PrivateSocketPath.removeLeftovers(in: paths.fronts)
        var adopted: [String] = []
        var kept: Set<String> = []
        var specs: [(ServiceController, ReleaseSpec)] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: paths.services)) ?? []
        for name in names.sorted() {
            guard let spec = ReleaseHistory(paths: paths, service: name).current() else { continue }
            adopted.append(name)
            let controller = controller(name)
            kept.formUnion(await controller.adoptInstances())
            specs.append((controller, spec))
        }
        await runners.removeLeftovers(keeping: kept)
        await stopOrphanFronts(serving: Set(adopted))
        releases.removeScratch()
        // Begun before this returns, so that no rollout asked for through the control socket runs beside one.
        // Each re-adoption also replaces a front that runs an older executable.
        var readoptions: [Task<RolloutRecord, Never>] = []
        for (controller, spec) in specs { readoptions.append(await controller.beginReattach(spec)) }
        let keeper = self.keeper
        Task {
            for readoption in readoptions { _ = await readoption.value }
            _ = try? await keeper.collect(dryRun: false)
        }
        return adopted
    }

    /// Stops the fronts of services that are not deployed any more: a `down` whose daemon died after it
    /// forgot the service and before it stopped the front. (Their instances went with the leftovers.)
    private func stopOrphanFronts(serving: Set<String>) async {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: paths.fronts)) ?? [] where name.hasSuffix(".sock") {
            let service = String(name.dropLast(".sock".count))
            guard !serving.contains(service) else { continue }
            try? await FrontClient(controlPath: paths.frontControl(service)).stop()
        }
    }

    private func controller(_ name: String) -> ServiceController {
        if let existing = controllers[name] { return existing }
        let made = ServiceController(name: name, paths: paths, releases: releases, probe: HealthProbe(), runners: runners,
                                     launcher: launcher, keeper: keeper)
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
        if let name { return [try await existing(name).status()] }
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

    /// The fronts' metrics (of `name`, or of every service) as one Prometheus text exposition: answers by
    /// service, release digest and status, and their latency.
    public func metrics(_ name: String?) async throws(DeployError) -> String {
        let chosen: [ServiceController]
        if let name { chosen = [try existing(name)] } else { chosen = controllers.keys.sorted().compactMap { controllers[$0] } }
        var texts: [String] = []
        for controller in chosen {
            do { texts.append(try await controller.front.metrics()) } catch {
                if name != nil { throw .metricsUnavailable(service: controller.name, reason: error.description) }
            }
        }
        return MetricsText.merge(texts)
    }

    /// Skips the remaining steps of the canary rollout of `name` in progress: every request to the new version.
    public func promote(_ name: String) async throws(DeployError) {
        try await existing(name).command(.promote)
    }

    /// Stops the canary rollout of `name` in progress: its new instances retire, the old version serves on.
    public func abortCanary(_ name: String) async throws(DeployError) {
        try await existing(name).command(.abort)
    }

    public func down(_ name: String) async throws(DeployError) {
        let controller = try existing(name)
        await controller.down()
        // Unless another apply made a new controller meanwhile.
        if controllers[name] === controller { controllers[name] = nil }
    }

    /// Replaces a service's front with one running the daemon's executable as it is on disk now, without
    /// dropping a request.
    /// Checks that every release `name`'s instances run from is still the tree that was unpacked.
    public func verify(_ name: String) async throws(DeployError) -> [ReleaseCheck] {
        await (try existing(name)).verifyReleases()
    }

    public func upgradeFront(_ name: String) async throws(DeployError) -> FrontUpgrade {
        try await existing(name).upgradeFront()
    }

    /// Removes every release outside the services' rollback windows that no instance runs from, with the
    /// store's blobs only they reach; with `dryRun`, only says what that would remove.
    public func collectReleases(dryRun: Bool) async throws(DeployError) -> ReleaseCollection {
        do { return try await keeper.collect(dryRun: dryRun) } catch { throw .cleanupFailed(reason: error.description) }
    }

    /// Lets go of every service without stopping it: fronts and instances keep serving, and the next
    /// daemon adopts them.
    public func shutdown() async {
        controllers = [:]
    }
}
