import Foundation
import Layers
import LoadBalancer
import ReleaseSpec
import Releases
import Runtime

/// One service: its front, its instances, and the rollouts that replace them.
///
/// A rollout goes Pending → Verifying → Provisioning → HealthChecking → Shifting → ScaleDownDelay →
/// Succeeded, or → Aborting → Failed when the new version cannot be fetched, started or made healthy
/// before its deadline, in which case traffic stays on (or returns to) the old version. Instances that
/// exit while serving are restarted with exponential backoff and take traffic again once healthy.
actor ServiceController {
    let name: String
    let paths: DeployPaths
    let releases: ReleaseCache
    let probe: HealthProbe
    let runners: RunnerSet
    let history: ReleaseHistory
    let pool: BackendPool
    let balancer: LoadBalancer

    /// The spec whose release serves, once one has succeeded.
    private(set) var serving: ReleaseSpec?
    private var listening: ReleaseSpec.ListenAddress?
    private var instances: [String: ManagedInstance] = [:]
    private var lastRollout: RolloutRecord?
    private var rolloutRunning = false
    private var counter = 0

    struct ManagedInstance {
        var id: String
        var release: Release
        var spec: ReleaseSpec
        var port: Int
        var instance: any Instance
        /// Bumped at each restart, so the watcher of an earlier run is ignored.
        var generation = 0
        /// Part of the serving set: restarted when it exits, and in the pool while healthy.
        var wanted = false
        var inPool = false
        var stopping = false
        var restarts = 0
        var lastExit: Int32?
    }

    init(name: String, paths: DeployPaths, releases: ReleaseCache, probe: HealthProbe, runners: RunnerSet) {
        self.name = name
        self.paths = paths
        self.releases = releases
        self.probe = probe
        self.runners = runners
        self.history = ReleaseHistory(paths: paths, service: name)
        let pool = BackendPool()
        self.pool = pool
        self.balancer = LoadBalancer(pool: pool)
    }

    // MARK: Rollouts

    /// Rolls out `spec`; returns the finished record (Succeeded or Failed). Throws only for requests refused outright.
    func apply(_ spec: ReleaseSpec, kind: String = "deploy") async throws(DeployError) -> RolloutRecord {
        if rolloutRunning, let lastRollout { throw .rolloutInProgress(service: name, image: lastRollout.image, state: lastRollout.state) }
        if let listening, listening != spec.listen {
            throw .listenChanged(service: name, from: listening.description, to: spec.listen.description)
        }
        if listening == nil {
            do { try await balancer.start(host: spec.listen.host, port: spec.listen.port) } catch {
                throw .cannotListen(service: name, address: spec.listen.description, reason: "\(error)")
            }
            listening = spec.listen
        }
        rolloutRunning = true
        defer { rolloutRunning = false }
        var record = RolloutRecord(service: name, image: spec.image, strategy: spec.strategy, kind: kind)
        lastRollout = record
        await rollout(spec, &record)
        lastRollout = record
        try? history.append(record)
        if record.state == .succeeded {
            serving = spec
            try? history.saveCurrent(spec)
        }
        return record
    }

    private func enter(_ state: RolloutState, _ record: inout RolloutRecord, note: String? = nil) {
        record.enter(state, note: note)
        lastRollout = record
    }

    private func rollout(_ spec: ReleaseSpec, _ record: inout RolloutRecord) async {
        enter(.verifying, &record)
        let release: Release
        do {
            let policy = UnpackPolicy(allowSetuid: spec.unpack.allowSetuid, maxBytes: spec.unpack.maxBytes)
            release = try await releases.prepare(spec.image, from: spec.source, policy: policy, verify: spec.verify)
        } catch {
            record.reason = error.description
            enter(.failed, &record, note: error.description)
            return
        }
        let old = instances.values.filter(\.wanted).sorted { $0.id < $1.id }.map(\.id)
        switch spec.strategy {
        case .blueGreen: await blueGreen(spec, release, old: old, &record)
        case .rolling: await rolling(spec, release, old: old, &record)
        }
    }

    private func blueGreen(_ spec: ReleaseSpec, _ release: Release, old: [String], _ record: inout RolloutRecord) async {
        enter(.provisioning, &record, note: "starting \(spec.replicas) instance(s) of \(spec.image.digest)")
        var fresh: [String] = []
        for _ in 0..<spec.replicas {
            do { fresh.append(try await startInstance(release, spec)) } catch {
                await abort(&record, reason: error.description, stopping: fresh, restoring: [])
                return
            }
        }
        enter(.healthChecking, &record)
        if let problem = await waitHealthy(fresh, spec) {
            await abort(&record, reason: problem, stopping: fresh, restoring: [])
            return
        }
        enter(.shifting, &record, note: "all traffic to \(fresh.joined(separator: ", "))")
        for id in fresh { instances[id]?.wanted = true; instances[id]?.inPool = true }
        for id in old { instances[id]?.wanted = false; instances[id]?.inPool = false }
        pool.setActive(fresh.compactMap { backend($0) })
        enter(.scaleDownDelay, &record, note: old.isEmpty ? nil : "draining \(old.joined(separator: ", "))")
        await retire(old)
        enter(.succeeded, &record)
    }

    private func rolling(_ spec: ReleaseSpec, _ release: Release, old: [String], _ record: inout RolloutRecord) async {
        var fresh: [String] = []
        var retired: [String] = []
        for step in 0..<max(spec.replicas, old.count) {
            if step < spec.replicas {
                enter(.provisioning, &record, note: "instance \(step + 1) of \(spec.replicas)")
                let id: String
                do { id = try await startInstance(release, spec) } catch {
                    await abort(&record, reason: error.description, stopping: fresh, restoring: retired)
                    return
                }
                fresh.append(id)
                enter(.healthChecking, &record, note: id)
                if let problem = await waitHealthy([id], spec) {
                    await abort(&record, reason: problem, stopping: fresh, restoring: retired)
                    return
                }
                enter(.shifting, &record, note: "\(id) takes traffic")
                instances[id]?.wanted = true
                instances[id]?.inPool = true
                if let backend = backend(id) { pool.add(backend) }
            }
            if step < old.count {
                let id = old[step]
                enter(.scaleDownDelay, &record, note: "draining \(id)")
                retired.append(id)
                await retire([id])
            }
        }
        enter(.succeeded, &record)
    }

    /// Takes the new instances out and brings the old version back to full strength, then marks the rollout failed.
    private func abort(_ record: inout RolloutRecord, reason: String, stopping fresh: [String], restoring retired: [String]) async {
        enter(.aborting, &record, note: reason)
        var restoreProblem: String?
        if !retired.isEmpty, let previous = serving, let release = releases.existing(previous.image) {
            var restored: [String] = []
            for _ in retired {
                do { restored.append(try await startInstance(release, previous)) } catch {
                    restoreProblem = error.description
                    break
                }
            }
            if restoreProblem == nil, let problem = await waitHealthy(restored, previous) { restoreProblem = problem }
            for id in restored where restoreProblem == nil {
                instances[id]?.wanted = true
                instances[id]?.inPool = true
                if let backend = backend(id) { pool.add(backend) }
            }
        }
        for id in fresh { instances[id]?.wanted = false; instances[id]?.inPool = false }
        await retire(fresh)
        record.reason = reason + (restoreProblem.map { "; restoring the previous version also failed: \($0)" } ?? "")
        enter(.failed, &record, note: record.reason)
    }

    // MARK: Instances

    private func backend(_ id: String) -> Backend? {
        instances[id].map { Backend(id: $0.id, host: "127.0.0.1", port: $0.port) }
    }

    private func startInstance(_ release: Release, _ spec: ReleaseSpec) async throws(RuntimeError) -> String {
        counter += 1
        let id = "\(name)-\(counter)"
        let port: Int
        do { port = try freeLoopbackPort() } catch {
            throw .setupFailed(instance: id, reason: "no free port on 127.0.0.1: \(error)")
        }
        let instance = try await launch(id: id, release: release, spec: spec, port: port)
        instances[id] = ManagedInstance(id: id, release: release, spec: spec, port: port, instance: instance)
        watch(id, generation: 0, instance)
        return id
    }

    private func launch(id: String, release: Release, spec: ReleaseSpec, port: Int) async throws(RuntimeError) -> any Instance {
        let request = InstanceRequest(id: id, releaseRootfs: release.rootfs, config: release.config, image: "\(release.image)",
                                      directory: paths.instances + "/" + id, host: "127.0.0.1", port: port,
                                      memoryBytes: spec.limits.memoryBytes, pids: spec.limits.pids)
        return try await runners.runner(spec.runner).start(request)
    }

    private func watch(_ id: String, generation: Int, _ instance: any Instance) {
        Task { [weak self] in
            let status = await instance.waitForExit()
            await self?.exited(id, generation: generation, status: status)
        }
    }

    /// An instance's process ended: if it was meant to serve, take it out of the pool and restart it after a backoff.
    private func exited(_ id: String, generation: Int, status: Int32) async {
        guard var managed = instances[id], managed.generation == generation, !managed.stopping else { return }
        managed.lastExit = status
        managed.inPool = false
        instances[id] = managed
        pool.remove(id)
        guard managed.wanted else { return }
        let backoff = Duration.milliseconds(min(30_000, 500 << min(managed.restarts, 6)))
        try? await Task.sleep(for: backoff)
        await restart(id, generation: generation)
    }

    private func restart(_ id: String, generation: Int) async {
        guard var managed = instances[id], managed.generation == generation, managed.wanted, !managed.stopping else { return }
        await managed.instance.stop(timeout: .zero)
        managed.generation += 1
        managed.restarts += 1
        do {
            managed.instance = try await launch(id: id, release: managed.release, spec: managed.spec, port: managed.port)
        } catch {
            instances[id] = managed
            // Try again later, with a longer backoff.
            Task { [weak self] in await self?.exited(id, generation: managed.generation, status: -1) }
            return
        }
        managed.lastExit = nil
        instances[id] = managed
        watch(id, generation: managed.generation, managed.instance)
        let problem = await waitHealthy([id], managed.spec)
        guard let current = instances[id], current.generation == managed.generation, current.wanted, !current.stopping else { return }
        if problem == nil {
            instances[id]?.inPool = true
            if let backend = backend(id) { pool.add(backend) }
        } else if current.lastExit == nil {
            // Running but never healthy: start it afresh after a longer backoff.
            await exited(id, generation: managed.generation, status: -1)
        }
    }

    /// Waits until each instance has passed `healthyAfter` checks in a row; the reason when one cannot before the deadline.
    private func waitHealthy(_ ids: [String], _ spec: ReleaseSpec) async -> String? {
        let check = spec.health
        let deadline = ContinuousClock.now + check.deadline
        var passes = Dictionary(uniqueKeysWithValues: ids.map { ($0, 0) })
        var lastProblem: [String: String] = [:]
        while true {
            for id in ids where passes[id, default: 0] < check.healthyAfter {
                guard let managed = instances[id] else { return "instance \(id) is gone" }
                if let status = managed.lastExit {
                    return "instance \(id) exited with status \(status) before it became healthy; its last output: \(logTail(id))"
                }
                if let problem = await probe.check(host: "127.0.0.1", port: managed.port, path: check.path, timeout: check.timeout) {
                    passes[id] = 0
                    lastProblem[id] = problem
                } else {
                    passes[id, default: 0] += 1
                }
            }
            if passes.values.allSatisfy({ $0 >= check.healthyAfter }) { return nil }
            if ContinuousClock.now + check.interval > deadline {
                let failing = ids.filter { passes[$0, default: 0] < check.healthyAfter }
                let details = failing.map { "\($0): \(lastProblem[$0] ?? "not yet checked")" }.joined(separator: "; ")
                return "not healthy within the \(DurationText.format(check.deadline)) deadline (\(check.path.map { "GET \($0)" } ?? "TCP connect"), \(check.healthyAfter) passes in a row needed): \(details)"
            }
            try? await Task.sleep(for: check.interval)
        }
    }

    private func logTail(_ id: String) -> String {
        guard let data = FileManager.default.contents(atPath: paths.instances + "/" + id + "/output.log") else { return "(none)" }
        let text = String(decoding: data.suffix(400), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "(none)" : text
    }

    /// Drains the instances' requests in flight, then stops them.
    private func retire(_ ids: [String]) async {
        for id in ids { pool.remove(id); instances[id]?.stopping = true }
        await withTaskGroup(of: Void.self) { group in
            for id in ids {
                guard let managed = instances[id] else { continue }
                let pool = self.pool
                group.addTask {
                    _ = await pool.drain(id, timeout: .seconds(30))
                    await managed.instance.stop(timeout: managed.spec.stopTimeout)
                }
            }
        }
        for id in ids { instances[id] = nil }
    }

    // MARK: Rollback, down, status

    /// The rollout records, oldest first.
    func records() -> [RolloutRecord] { history.records() }

    /// Re-deploys the release before the current one, or `digest` if given (which must have succeeded here before).
    func rollback(to digest: String?) async throws(DeployError) -> RolloutRecord {
        guard let current = serving else { throw .nothingToRollBack(service: name, reason: "nothing is serving") }
        let succeeded = history.records().filter { $0.state == .succeeded }
        let target: RolloutRecord?
        if let digest {
            target = succeeded.last { $0.image.digest.description == digest || $0.image.digest.hex == digest }
            guard target != nil else {
                throw .nothingToRollBack(service: name, reason: "\(digest) never served \(name); `imgdeploy history \(name)` lists the releases that did")
            }
        } else {
            target = succeeded.last { $0.image.digest != current.image.digest }
            guard target != nil else { throw .nothingToRollBack(service: name, reason: "no earlier release has served it") }
        }
        var spec = current
        spec.image = target!.image
        return try await apply(spec, kind: "rollback")
    }

    /// Stops the front and every instance; the history stays. With `forget`, the service is not re-adopted
    /// when the deployer starts again.
    func down(forget: Bool = true) async {
        let ids = Array(instances.keys)
        for id in ids { instances[id]?.wanted = false }
        await balancer.stop(timeout: .seconds(10))
        await retire(ids)
        listening = nil
        serving = nil
        if forget { history.clearCurrent() }
    }

    func status() async -> ServiceStatus {
        var list: [InstanceStatus] = []
        for managed in instances.values.sorted(by: { $0.id < $1.id }) {
            list.append(InstanceStatus(id: managed.id, image: managed.release.image, port: managed.port,
                                       pid: managed.lastExit == nil ? await managed.instance.hostPID() : nil,
                                       serving: managed.inPool, restarts: managed.restarts, lastExit: managed.lastExit))
        }
        let counts = balancer.metrics.snapshot
        return ServiceStatus(service: name, listen: listening?.description ?? "-", current: serving?.image, instances: list,
                             lastRollout: lastRollout, requests: counts.requests, failedRequests: counts.failed, retriedRequests: counts.retried)
    }
}

/// The runners, made when first needed (so a missing runtime fails only the rollouts that use it).
final class RunnerSet: Sendable {
    let paths: DeployPaths

    init(paths: DeployPaths) {
        self.paths = paths
    }

    func runner(_ kind: ReleaseSpec.RunnerKind) throws(RuntimeError) -> any InstanceRunner {
        switch kind {
        case .runc: return try RuncRunner(stateRoot: paths.runcState)
        case .bwrap: return try BwrapRunner()
        }
    }

    /// Removes containers and mounts a killed deployer left behind.
    func removeLeftovers() async {
        if let runc = try? RuncRunner(stateRoot: paths.runcState) { await runc.removeLeftovers(instancesFolder: paths.instances) }
        InstanceRootfs.unmountAll(below: paths.instances)
        try? FileManager.default.removeItem(atPath: paths.instances)
    }
}
