import Foundation
import Front
import Layers
import LoadBalancer
import LogFiles
import OCI
import ProcessLimits
import ReleaseSpec
import UnpackedReleases
import Runtime

/// One service: its front, its instances, and the rollouts that replace them.
///
/// A rollout goes Pending → Verifying → Provisioning → HealthChecking → Shifting → ScaleDownDelay →
/// Succeeded, or → Aborting → Failed when the new version cannot be fetched, started or made healthy
/// before its deadline, in which case traffic stays on (or returns to) the old version. What to do at
/// each step is decided by ``RolloutMachine``; this actor does it. Instances that exit while serving are
/// restarted with exponential backoff (``RestartBackoff``) and take traffic again once healthy.
///
/// The front is a process of its own (``FrontProcess``) and the instances outlive the daemon too: this
/// controller tells the front where to send requests, and records its instances and the rollout in
/// flight, so that the next daemon adopts both and carries on (``reattach(_:)``).
actor ServiceController {
    let name: String
    let paths: DeployPaths
    let releases: ReleaseCache
    let probe: any HealthChecking
    let runners: any InstanceRunners
    let history: ReleaseHistory
    let state: ServiceState
    let front: any FrontControl
    let launcher: any FrontStarter
    let keeper: ReleaseKeeper
    let clock: ControllerClock

    /// The spec whose release serves, once one has succeeded.
    private(set) var serving: ReleaseSpec?
    private var listening: ReleaseSpec.ListenAddress?
    /// A copy of the front's listening socket, held here so that the socket outlives a front that dies:
    /// connections wait in its queue for the front started again on it, rather than being refused.
    private var keptSocket: (address: ReleaseSpec.ListenAddress, descriptor: Int32)?
    /// The front last seen serving (pid and start time): while it runs, the kept socket is given to no other.
    private var frontProcess: ProcessIdentity?
    /// The start of a front under way, which a second caller (the watchdog, an instance's exit) waits for
    /// rather than start a second front on the kept socket.
    private var relaunching: Task<DeployError?, Never>?
    /// Fronts this controller replaced by an upgrade (pid and start time) that may still run. One of them
    /// takes the service back if its successor dies before it retires, so while one runs a front is not
    /// started on the kept socket before the control socket has been asked again.
    private var replacedFronts: [ProcessIdentity] = []
    /// How often the front was started again, and the backoff of a crash loop.
    private var frontRestarts = FrontRestarts()
    /// Starts the front once a crash loop's backoff has passed, even while a rollout holds the watchdog back.
    private var frontStartTimer: Task<Void, Never>?
    /// The front last asked for a copy of its listening socket (one older than that request is asked once).
    private var socketAskedOf: Int32?
    var instances: [String: ManagedInstance] = [:]
    /// The backends the front sends new requests to, as this controller wants them.
    private var active: [Backend] = []
    /// The share of new requests a canary's instances get beside `active`, during a canary's steps.
    var canary: CanarySplit?
    /// `promote` or `abort`, asked for while a canary's step runs; taken by that step.
    var canaryCommand: CanaryCommand?
    /// A canary rollout is in its steps (where `promote` and `abort` apply).
    var canaryRunning = false
    /// The canary rollout in progress, named in its sticky clients' cookies.
    var canaryRollout: UInt64 = 0
    /// The version of the last pool sent to the front: a nanosecond clock reading, so that it grows across
    /// restarts of the daemon too, and never less than one more than the front has applied.
    private var activeVersion: UInt64 = 0
    var lastRollout: RolloutRecord?
    /// A rollout, rollback, re-adoption or front upgrade is running; set before the first suspension, so two
    /// cannot both start.
    private var busy = false
    /// The re-adoption after the daemon started again, while it runs: a rollout asked for meanwhile waits for it.
    private var readoption: Task<RolloutRecord, Never>?
    private var counter = 0
    private var frontWatch: Task<Void, Never>?
    /// Keeps the logs to their limit, every second while the front is watched.
    private var logWatch: Task<Void, Never>?
    /// `down` has begun: the front is never started again, even by a check that was already under way.
    private(set) var takenDown = false
    /// The release a rollout is fetching, for `down` to cancel.
    private var fetching: Task<Release, any Error>?
    /// Callers waiting for the operation that holds `busy` to end (`down`).
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    deinit {
        if let kept = keptSocket { close(kept.descriptor) }
    }

    struct ManagedInstance {
        var id: String
        var release: Release
        var spec: ReleaseSpec
        var port: Int
        var instance: any Instance
        /// The release tree's digest, checked just before this run of the instance started.
        var tree: Digest?
        /// Bumped at each restart, so the watcher of an earlier run is ignored.
        var generation = 0
        /// Part of the serving set: restarted when it exits, and in the pool while healthy.
        var wanted = false
        var inPool = false
        var stopping = false
        var restarts = 0
        var lastExit: Int32?
        /// Health checks failed in a row while serving, and passed in a row since it was taken out for them.
        var failedChecks = 0
        var passedChecks = 0
        /// Out of the pool for failing its health checks while running (a hung or stalled instance).
        var suspended = false
    }

    /// Failed checks in a row that take a running instance out of the pool.
    static let failuresBeforeSuspension = 3

    /// A controller of the service `name`; the front is reached at its control socket in `paths` unless
    /// `front` is given.
    init(name: String, paths: DeployPaths, releases: ReleaseCache, probe: any HealthChecking, runners: any InstanceRunners,
         launcher: any FrontStarter, keeper: ReleaseKeeper, front: (any FrontControl)? = nil, clock: ControllerClock = .real) {
        self.name = name
        self.paths = paths
        self.releases = releases
        self.probe = probe
        self.runners = runners
        self.history = ReleaseHistory(paths: paths, service: name)
        self.state = ServiceState(paths: paths, service: name)
        self.front = front ?? FrontClient(controlPath: paths.frontControl(name))
        self.launcher = launcher
        self.keeper = keeper
        self.clock = clock
    }

    // MARK: Rollouts

    /// Rolls out `spec`; returns the finished record (Succeeded or Failed). Throws only for requests refused outright.
    func apply(_ spec: ReleaseSpec, kind: String = "deploy") async throws(DeployError) -> RolloutRecord {
        if let readoption { _ = await readoption.value }
        // Taken down while this waited: the controller is nobody's any more.
        guard !takenDown else { throw .takenDown(service: name) }
        // From here to `busy = true` nothing suspends: of two callers, the second sees the first's.
        if busy { throw .rolloutInProgress(service: name, image: lastRollout?.image ?? spec.image, state: lastRollout?.state ?? .pending) }
        if let listening, listening != spec.listen {
            throw .listenChanged(service: name, from: listening.description, to: spec.listen.description)
        }
        busy = true
        defer { becomeIdle() }
        if listening == nil { try await startFront(spec.listen) }
        return await rolloutRecorded(spec, kind: kind)
    }

    /// Runs a rollout and records how it ended; the caller holds `busy`. Once it has succeeded, the releases
    /// outside every service's rollback window that nothing runs from are removed.
    private func rolloutRecorded(_ spec: ReleaseSpec, kind: String) async -> RolloutRecord {
        var record = RolloutRecord(service: name, image: spec.image, strategy: spec.strategy, kind: kind)
        lastRollout = record
        state.saveRollout(record)
        // Kept from before it is looked for until it serves (or the rollout failed): a collection meanwhile leaves it.
        await keeper.claim(spec.image.digest)
        await rollout(spec, &record)
        if takenDown, record.state == .succeeded {
            record.reason = "the service was taken down while this rollout ran"
            record.enter(.failed, note: record.reason)
        }
        lastRollout = record
        if record.state == .succeeded, !takenDown {
            serving = spec
            try? history.saveCurrent(spec)
        }
        // Recorded before anything is removed, so a crash during the removal loses no history.
        try? history.append(record)
        state.saveRollout(record)
        if record.state == .succeeded {
            // What the removal did is told to whoever asked for the rollout (and `status`), not recorded.
            do { record.removed = try await keeper.collect(dryRun: false) } catch {
                record.cleanupProblem = "the releases outside the rollback window could not be removed: \(error.description)"
            }
            lastRollout = record
        }
        await keeper.unclaim(spec.image.digest)
        return record
    }

    func enter(_ state: RolloutState, _ record: inout RolloutRecord, note: String? = nil) {
        record.enter(state, note: note)
        lastRollout = record
        self.state.saveRollout(record)
    }

    private func rollout(_ spec: ReleaseSpec, _ record: inout RolloutRecord) async {
        // A release that served before but is no longer here fell outside the rollback window: it is
        // fetched again, and verified like any new release.
        let refetched = record.kind == "rollback" && releases.existing(spec.image) == nil
        let notKept = "\(spec.image.digest) is no longer kept here (outside the rollback window of keep: \(spec.keep) releases, or removed while the service was down)"
        enter(.verifying, &record, note: refetched ? notKept + ": fetching it again from \(spec.source) and verifying it like a new release" : nil)
        let release: Release
        // In a task of its own, which `down` cancels: a source that answers slowly (or never) does not
        // hold the service up.
        let releases = self.releases, image = spec.image, source = spec.source, policy = Self.policy(spec), verify = spec.verify
        let preparing = Task { () async throws -> Release in
            try await releases.prepare(image, from: source, policy: policy, verify: verify)
        }
        fetching = preparing
        let prepared = await preparing.result
        fetching = nil
        do {
            guard !takenDown else { throw ReleaseError.fetchFailed(image: "\(image)", source: "\(source)", reason: "the service was taken down") }
            release = try prepared.get()
        } catch {
            record.reason = (refetched ? notKept + ", and fetching it again failed: " : "") + "\(error)"
            enter(.failed, &record, note: record.reason)
            return
        }
        if refetched { record.refetched = true }
        let old = instances.values.filter(\.wanted).sorted { $0.id < $1.id }.map(\.id)
        // What an abort starts again when a rolling rollout had retired old instances already.
        let previous = serving.flatMap { previous in releases.existing(previous.image).map { (spec: previous, release: $0) } }
        // A canary compares the new version with the one serving. With none serving (a first deploy, or a
        // re-adoption that found nothing running) there is nothing to compare, and a rollback or re-adoption
        // must not wait on traffic: those go blue-green.
        var strategy = spec.strategy
        if strategy == .canary, old.isEmpty || record.kind != "deploy" {
            strategy = .blueGreen
            enter(.provisioning, &record, note: old.isEmpty ? "no instance serves \(name) yet, so there is nothing to compare a canary with: its steps are skipped (blue-green)"
                  : "a \(record.kind) does not wait on a canary's steps: blue-green")
        }
        var machine = RolloutMachine(strategy: strategy, replicas: spec.replicas, old: old, image: spec.image.digest.description,
                                     canRestore: previous != nil, canary: spec.canary)
        canaryCommand = nil
        canaryRunning = strategy == .canary
        canaryRollout = nextActiveVersion()
        defer { canaryRunning = false; canaryCommand = nil }
        var outcome = RolloutMachine.Outcome.done
        while !machine.isFinished {
            for action in machine.next(outcome) {
                outcome = await perform(action, new: (spec, release), previous: previous, &record)
            }
        }
    }

    /// Does one action of a rollout and says what came of it.
    private func perform(_ action: RolloutMachine.Action, new: (spec: ReleaseSpec, release: Release),
                         previous: (spec: ReleaseSpec, release: Release)?, _ record: inout RolloutRecord) async -> RolloutMachine.Outcome {
        func side(_ side: RolloutMachine.Side) -> (spec: ReleaseSpec, release: Release) {
            switch side {
            case .new: return new
            case .previous:
                guard let previous else { preconditionFailure("the rollout machine restores only when told it can") }
                return previous
            }
        }
        switch action {
        case let .enter(state, note):
            enter(state, &record, note: note)
        case .start(let which):
            if takenDown { return .notStarted("the service is being taken down") }
            let (spec, release) = side(which)
            do { return .started(try await startInstance(release, spec)) } catch { return .notStarted(error.description) }
        case let .waitHealthy(ids, which):
            if let problem = await waitHealthy(ids, side(which).spec) { return .unhealthy(problem) }
            return .healthy
        case let .switchTraffic(to, from):
            for id in to { instances[id]?.wanted = true; instances[id]?.inPool = true }
            for id in from { instances[id]?.wanted = false; instances[id]?.inPool = false }
            // Past the steps: promote and abort no longer apply.
            canaryRunning = false
            canary = nil
            await setActive(to.compactMap { backend($0) })
        case let .observe(ids, step, percent):
            return canaryStepEnded(await observe(ids, step: step, percent: percent, policy: new.spec.canary ?? CanaryPolicy(), &record))
        case let .hold(ids, step):
            return canaryStepEnded(await hold(ids, step: step, &record))
        case .serve(let ids):
            for id in ids {
                instances[id]?.wanted = true
                instances[id]?.inPool = true
                await addActive(id)
            }
        case .unserve(let ids):
            for id in ids { instances[id]?.wanted = false; instances[id]?.inPool = false }
        case .retire(let ids):
            await retire(ids)
        case let .finish(state, reason):
            // A rollout whose last steps ran while the service was taken down did not succeed.
            let (state, reason) = state == .succeeded && takenDown ? (.failed, "the service was taken down while this rollout ran") : (state, reason)
            if let reason { record.reason = reason }
            enter(state, &record, note: reason)
        }
        return .done
    }

    // MARK: Instances

    func backend(_ id: String) -> Backend? {
        instances[id].map { Backend(id: $0.id, host: "127.0.0.1", port: $0.port, namespace: $0.instance.network?.path, release: $0.release.image.digest.description) }
    }

    private func startInstance(_ release: Release, _ spec: ReleaseSpec) async throws(RuntimeError) -> String {
        counter += 1
        let id = "\(name)-\(counter)"
        // In a network of its own the instance listens on the spec's port; on the host's, on a free one.
        var port = spec.port
        if spec.network == .host {
            do { port = try freeLoopbackPort() } catch {
                throw .setupFailed(instance: id, reason: "no free port on 127.0.0.1: \(error)")
            }
        }
        let (instance, tree) = try await launch(id: id, release: release, spec: spec, port: port)
        instances[id] = ManagedInstance(id: id, release: release, spec: spec, port: port, instance: instance, tree: tree)
        saveInstances()
        watch(id, generation: 0, instance)
        return id
    }

    /// Starts an instance of `release`, after checking that its files are still the ones unpacked and verified.
    private func launch(id: String, release: Release, spec: ReleaseSpec, port: Int) async throws(RuntimeError) -> (any Instance, Digest) {
        // Hashing a release reads all of it: on a thread of its own, not the controller's.
        let releases = self.releases
        let checked: Result<Digest, ReleaseError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do throws(ReleaseError) { continuation.resume(returning: .success(try releases.verifyTree(release, policy: Self.policy(spec)))) } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        let tree: Digest
        switch checked {
        case .success(let digest): tree = digest
        case .failure(let error): throw .setupFailed(instance: id, reason: error.description)
        }
        let request = InstanceRequest(id: id, releaseRootfs: release.rootfs, config: release.config, image: "\(release.image)",
                                      directory: paths.instances + "/" + id, host: "127.0.0.1", port: port,
                                      memoryBytes: spec.limits.memoryBytes, pids: spec.limits.pids, privateNetwork: spec.network == .private,
                                      capabilities: spec.capabilities, writableRoot: spec.writableRoot)
        return (try await runners.runner(spec.runner).start(request), tree)
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
        await removeActive(id)
        guard managed.wanted else { return }
        await clock.sleep(RestartBackoff.delay(afterRestarts: managed.restarts))
        await restart(id, generation: generation)
    }

    private func restart(_ id: String, generation: Int) async {
        guard var managed = instances[id], managed.generation == generation, managed.wanted, !managed.stopping else { return }
        await managed.instance.stop(timeout: .zero)
        managed.generation += 1
        managed.restarts += 1
        do {
            (managed.instance, managed.tree) = try await launch(id: id, release: managed.release, spec: managed.spec, port: managed.port)
        } catch {
            guard let current = instances[id], current.generation == managed.generation - 1, !current.stopping else { return }
            instances[id] = managed
            // Try again later, with a longer backoff.
            Task { [weak self] in await self?.exited(id, generation: managed.generation, status: -1) }
            return
        }
        // Retired or taken down while it started: this run is nobody's, so it stops (its release may be
        // removed once the instance is no longer recorded).
        guard let current = instances[id], current.generation == managed.generation - 1, !current.stopping, current.wanted else {
            await managed.instance.stop(timeout: managed.spec.stopTimeout)
            return
        }
        managed.lastExit = nil
        instances[id] = managed
        saveInstances()
        watch(id, generation: managed.generation, managed.instance)
        let problem = await waitHealthy([id], managed.spec)
        guard let current = instances[id], current.generation == managed.generation, current.wanted, !current.stopping else { return }
        if problem == nil {
            instances[id]?.inPool = true
            instances[id]?.suspended = false
            await addActive(id)
        } else if current.lastExit == nil {
            // Running but never healthy: start it afresh after a longer backoff.
            await exited(id, generation: managed.generation, status: -1)
        }
    }

    /// Waits until each instance has passed `healthyAfter` checks in a row; the reason when one cannot before the deadline.
    private func waitHealthy(_ ids: [String], _ spec: ReleaseSpec) async -> String? {
        let check = spec.health
        let deadline = clock.now() + check.deadline
        var passes = Dictionary(uniqueKeysWithValues: ids.map { ($0, 0) })
        var lastProblem: [String: String] = [:]
        while true {
            for id in ids where passes[id, default: 0] < check.healthyAfter {
                if takenDown { return "the service is being taken down" }
                guard let managed = instances[id], !managed.stopping else { return "instance \(id) is gone" }
                if let status = managed.lastExit {
                    return "instance \(id) exited with status \(status) before it became healthy; its last output: \(logTail(id))"
                }
                if let problem = await probe.check(host: "127.0.0.1", port: managed.port, namespace: managed.instance.network,
                                                   path: check.path, timeout: check.timeout) {
                    passes[id] = 0
                    lastProblem[id] = problem
                } else {
                    passes[id, default: 0] += 1
                }
            }
            if passes.values.allSatisfy({ $0 >= check.healthyAfter }) { return nil }
            if clock.now() + check.interval > deadline {
                let failing = ids.filter { passes[$0, default: 0] < check.healthyAfter }
                let details = failing.map { "\($0): \(lastProblem[$0] ?? "not yet checked")" }.joined(separator: "; ")
                return "not healthy within the \(DurationText.format(check.deadline)) deadline (\(check.path.map { "GET \($0)" } ?? "TCP connect"), \(check.healthyAfter) passes in a row needed): \(details)"
            }
            await clock.sleep(check.interval)
        }
    }

    private func logTail(_ id: String) -> String {
        // Read from its end: an instance's log may be as large as its limit (and from its .1, just emptied).
        let text = LogFile.tail(of: instanceLog(id), bytes: 400).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "(none)" : text
    }

    private func instanceLog(_ id: String) -> String { paths.instances + "/" + id + "/output.log" }

    /// Keeps the front's and the instances' logs to their limit (``LogFile``), off the controller's thread.
    /// Not those of instances that stop: their folders are about to be removed.
    private func keepLogs() async {
        let logs = [paths.frontLog(name)] + instances.values.filter { !$0.stopping }.map(\.id).sorted().map(instanceLog)
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                for log in logs { LogFile.keep(log) }
                continuation.resume()
            }
        }
    }

    /// Drains the instances' requests in flight, then stops them, once no front that was replaced still
    /// finishes its connections (it may send their next requests to these instances).
    private func retire(_ ids: [String]) async {
        for id in ids { instances[id]?.stopping = true }
        if var split = canary {
            split.backends.removeAll { ids.contains($0.id) }
            canary = split.backends.isEmpty ? nil : split
        }
        await setActive(active.filter { !ids.contains($0.id) })
        let front = self.front
        await withTaskGroup(of: Void.self) { group in
            for id in ids {
                group.addTask { _ = await front.drain(id, timeout: .seconds(30)) }
            }
        }
        await waitForReplacedFronts()
        await withTaskGroup(of: Void.self) { group in
            for id in ids {
                guard let managed = instances[id] else { continue }
                group.addTask { await managed.instance.stop(timeout: managed.spec.stopTimeout) }
            }
        }
        for id in ids { instances[id] = nil }
        saveInstances()
    }

    // MARK: Rollback, down, status

    /// The rollout records, oldest first.
    func records() -> [RolloutRecord] { history.records() }

    /// Re-deploys the release before the current one, or `digest` if given (which must have succeeded here before).
    func rollback(to digest: String?) async throws(DeployError) -> RolloutRecord {
        // What serves is known once a re-adoption has ended.
        if let readoption { _ = await readoption.value }
        guard !takenDown else { throw .takenDown(service: name) }
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

    /// Stops the front and every instance; the history stays, and the service is not re-adopted when the
    /// deployer starts again.
    func down() async {
        takenDown = true
        // Forgotten first, so that a daemon that dies during the rest does not bring the service back.
        history.clearCurrent()
        fetching?.cancel()
        // A rollout, re-adoption or front upgrade under way ends first: once taken down, it starts no
        // instance and waits for no health check, so it ends soon, as a failure; then all it left stops.
        while busy { await withCheckedContinuation { idleWaiters.append($0) } }
        // A front being started (by the watchdog) is up, or has failed, before it is stopped below.
        if let relaunching { _ = await relaunching.value }
        frontWatch?.cancel()
        frontWatch = nil
        logWatch?.cancel()
        logWatch = nil
        frontStartTimer?.cancel()
        frontStartTimer = nil
        let ids = Array(instances.keys)
        for id in ids { instances[id]?.wanted = false }
        // The front lets its requests in flight finish before it exits; the instances stop after it.
        let pid = (try? await front.state())?.pid
        try? await front.stop()
        // Nothing accepts on the socket any more: connections are refused again rather than queued for nobody.
        dropKeptSocket()
        if let pid { await waitForExit(pid, timeout: .seconds(15)) }
        // No front to tell, nor to start again, while the instances stop.
        listening = nil
        active = []
        await retire(ids)
        serving = nil
        history.clearCurrent()
        state.clear()
    }

    /// Checks every release the instances run from against what its pinned digest implies
    /// (``ReleaseCache/verifyDeeply(_:policy:)``), off the controller's thread: it unpacks each again.
    func verifyReleases() async -> [ReleaseCheck] {
        let byRelease = Dictionary(grouping: instances.values, by: { $0.release.folder })
        let groups = byRelease.keys.sorted().map { folder in byRelease[folder]!.sorted { $0.id < $1.id } }
            .map { (release: $0[0].release, policy: Self.policy($0[0].spec), ids: $0.map(\.id)) }
        // Kept while they are checked: an instance retired meanwhile must not let a collection remove
        // the folder under the check (which would look like tampering).
        for group in groups { await keeper.claim(group.release.image.digest) }
        defer { Task { [keeper] in for group in groups { await keeper.unclaim(group.release.image.digest) } } }
        // Those whose instances were all retired while the claims waited are no longer run from.
        let running = groups.filter { $0.ids.contains { self.instances[$0] != nil } }
        let releases = self.releases
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: running.map { group in
                    var check = ReleaseCheck(image: group.release.image, instances: group.ids, tree: group.release.tree)
                    do throws(ReleaseError) { check.tree = try releases.verifyDeeply(group.release, policy: group.policy) } catch {
                        check.problem = error.description
                    }
                    return check
                })
            }
        }
    }

    /// How the spec lets its image be unpacked.
    static func policy(_ spec: ReleaseSpec) -> UnpackPolicy {
        UnpackPolicy(allowSetuid: spec.unpack.allowSetuid, maxBytes: spec.unpack.maxBytes)
    }

    func status() async -> ServiceStatus {
        // One moment's state: what follows awaits (pids, the front), and a rollout may move meanwhile.
        let (lastRollout, busy, serving, listening) = (self.lastRollout, self.busy, self.serving, self.listening)
        var list: [InstanceStatus] = []
        for managed in instances.values.sorted(by: { $0.id < $1.id }) {
            list.append(InstanceStatus(id: managed.id, image: managed.release.image, manifest: managed.release.manifestDigest, tree: managed.tree,
                                       admission: managed.release.admission, port: managed.port,
                                       pid: managed.lastExit == nil ? await managed.instance.hostPID() : nil,
                                       serving: managed.inPool, restarts: managed.restarts, lastExit: managed.lastExit))
        }
        var frontGone = false
        let frontState: FrontState?
        do { frontState = try await front.state() } catch { (frontState, frontGone) = (nil, error.frontGone) }
        let counts = frontState?.counts ?? ProxyMetrics.Counts()
        // Measuring a release folder reads all of it the first time: off the controller's thread.
        let window = ReleaseKeeper.window(current: serving, history: history.records())
        let releases = self.releases
        let kept = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: window.map { KeptRelease(image: $0, bytes: releases.bytesOnDisk($0.digest)) })
            }
        }
        return ServiceStatus(service: name, listen: listening?.description ?? "-", current: serving?.image, instances: list,
                             lastRollout: lastRollout, requests: counts.requests, failedRequests: counts.failed, retriedRequests: counts.retried,
                             frontPID: frontState?.pid, rolloutRunning: busy, releases: kept,
                             frontRestarts: frontRestarts.status(at: clock.now(), frontGone: frontGone,
                                                                  refusing: frontGone && keptSocket == nil && listening != nil && !lastFrontRuns))
    }
}

extension ServiceController {
    // MARK: The front

    /// Sends new requests to `backends`, all at once.
    private func setActive(_ backends: [Backend]) async {
        active = backends
        await publish()
    }

    private func addActive(_ id: String) async {
        guard let backend = backend(id), !active.contains(backend) else { return }
        active.append(backend)
        await publish()
    }

    private func removeActive(_ id: String) async {
        let inCanary = canary?.backends.contains { $0.id == id } == true
        guard active.contains(where: { $0.id == id }) || inCanary else { return }
        active.removeAll { $0.id == id }
        if inCanary { canary?.backends.removeAll { $0.id == id } }
        await publish()
    }

    /// Tells the front the backends as they are now, and records the instances for the next daemon.
    /// A front that is gone is started again on the same address (it died or was killed); one that is
    /// only slow to answer is told again by the watchdog (``checkFront()``), since each pool carries a
    /// version and a late one is never applied over a newer one.
    func publish() async {
        saveInstances()
        guard listening != nil else { return }
        do {
            var state = try await front.setActive(active, canary: canary, version: nextActiveVersion())
            if let applied = state.activeVersion, applied > activeVersion {
                // The front has applied a later pool than this daemon sent (another daemon's, or a clock that
                // went back): this one's goes after it.
                activeVersion = applied
                state = try await front.setActive(active, canary: canary, version: nextActiveVersion())
            }
        } catch {
            if error.frontGone, let listen = listening { await restartGoneFront(listen) }
        }
    }

    func nextActiveVersion() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        activeVersion = max(min(activeVersion, 1 << 62) + 1, UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec))
        return activeVersion
    }

    /// Starts the service's front on `listen`, or adopts the one already serving there.
    private func startFront(_ listen: ReleaseSpec.ListenAddress) async throws(DeployError) {
        if let running = try? await front.state(), running.port == listen.port {
            listening = listen
            sawFront(running.pid)
            await keepListeningSocket(at: listen)
        } else {
            try await relaunchFront(listen)
        }
        watchFront()
    }

    /// Starts a front on `listen`, or waits for the start under way; `restarting`: it replaces one that is
    /// gone (counted in `status`).
    private func relaunchFront(_ listen: ReleaseSpec.ListenAddress, restarting: Bool = false) async throws(DeployError) {
        if let relaunching {
            if let error = await relaunching.value { throw error }
            return
        }
        let starting = Task { await self.launchFront(listen, restarting: restarting) }
        relaunching = starting
        let error = await starting.value
        relaunching = nil
        if let error { throw error }
    }

    /// Starts a front on `listen` and tells it the pool; only ever one at a time (``relaunchFront(_:)``).
    private func launchFront(_ listen: ReleaseSpec.ListenAddress, restarting: Bool) async -> DeployError? {
        guard !takenDown else { return nil }
        let failed = { (error: any Error) in DeployError.cannotListen(service: self.name, address: listen.description, reason: "\(error)") }
        // A front this one replaced may have taken the service back (its successor died before it retired):
        // after the moment it has to decide, whoever answers on the control socket is the front.
        replacedFronts.removeAll { !$0.isRunning }
        if !replacedFronts.isEmpty {
            await clock.sleep(.seconds(3))
            if let running = try? await front.state(), !running.retiring {
                sawFront(running.pid)
                frontRestarts.answered(at: clock.now())
                if !takenDown { listening = listen }
                return nil
            }
            guard !takenDown else { return nil }
        }
        let socket: Int32
        do {
            try FileManager.default.createDirectory(atPath: paths.fronts, withIntermediateDirectories: true)
            chmod(paths.fronts, 0o700)
            socket = try socketForFront(at: listen)
        } catch {
            // The port taken by another process, say: tried again after a backoff, like a front that exits.
            // (A first start that fails is the caller's error, not a restart's.)
            if restarting { frontRestarts.failedToStart(at: clock.now()) }
            return failed(error)
        }
        if restarting { frontRestarts.restarting() }
        do {
            sawFront(try await launcher.start(socket: socket, controlPath: paths.frontControl(name), logPath: paths.frontLog(name)).pid)
            frontRestarts.started(at: clock.now())
        } catch {
            if restarting { frontRestarts.failedToStart(at: clock.now()) }
            // The kept socket goes too: a front that answers too late to be known here may still come up on
            // it, and the next start binds the port afresh, which fails while that front holds it, rather
            // than give it the same socket.
            dropKeptSocket()
            return failed(error)
        }
        // Taken down while it started (the watchdog found the old front gone as `down` stopped it): stop it again.
        if takenDown {
            try? await front.stop()
            dropKeptSocket()
            return nil
        }
        do {
            _ = try await front.setActive(active, canary: canary, version: nextActiveVersion())
        } catch {
            // Gone before it took the pool: it exited as it started.
            if error.frontGone, restarting {
                frontRestarts.failedToStart(at: clock.now())
                if frontRestarts.inCrashLoop { dropKeptSocket() }
            }
            return failed(error)
        }
        if !takenDown { listening = listen }
        return nil
    }

    /// The front is gone (killed, crashed, or it never came up): starts it again now, or once the backoff
    /// of a crash loop has passed. In a crash loop the kept socket is let go (``FrontRestarts``).
    private func restartGoneFront(_ listen: ReleaseSpec.ListenAddress) async {
        // A start under way (another caller's) is waited for; then the front is asked again, twice (a front
        // being replaced is unreachable for an instant), since what was seen before may be stale.
        if let relaunching { _ = await relaunching.value }
        let attempts = frontRestarts.attempts
        for attempt in 0..<2 {
            if attempt > 0 { await clock.sleep(.milliseconds(200)) }
            do {
                _ = try await front.state()
                frontRestarts.answered(at: clock.now())
                return
            } catch where !error.frontGone {
                return
            } catch {}
        }
        guard !takenDown, relaunching == nil, frontRestarts.attempts == attempts else { return }
        let now = clock.now()
        let due = frontRestarts.gone(at: now)
        if frontRestarts.inCrashLoop { dropKeptSocket() }
        if now >= due { try? await relaunchFront(listen, restarting: true) }
        // Not due yet, or the start failed: tried again when the backoff has passed.
        if let next = frontRestarts.nextStart { startFront(listen, at: next) }
    }

    /// Calls ``restartGoneFront(_:)`` at `due` (the watchdog may call it sooner; whichever comes second
    /// finds the front there).
    private func startFront(_ listen: ReleaseSpec.ListenAddress, at due: Duration) {
        guard frontStartTimer == nil, !takenDown else { return }
        frontStartTimer = Task { [weak self, clock] in
            await clock.sleep(due - clock.now())
            await self?.frontStartDue(listen)
        }
    }

    private func frontStartDue(_ listen: ReleaseSpec.ListenAddress) async {
        frontStartTimer = nil
        guard !takenDown, listening == listen else { return }
        await restartGoneFront(listen)
    }

    /// Checks the front every second and starts it again if it is gone (killed, or crashed), and keeps the
    /// logs to their limit.
    private func watchFront() {
        guard frontWatch == nil else { return }
        frontWatch = Task { [weak self, clock] in
            while !Task.isCancelled {
                await clock.sleep(.seconds(1))
                guard let self else { return }
                await self.checkFront()
            }
        }
        // Apart, so that copying a large log never holds up a front's restart.
        logWatch = Task { [weak self, clock] in
            while !Task.isCancelled {
                await clock.sleep(.seconds(1))
                guard let self else { return }
                await self.keepLogs()
            }
        }
    }

    /// Between rollouts, checks each serving instance as its spec says: one that fails
    /// ``failuresBeforeSuspension`` checks in a row while running (hung, stalled, out of memory) leaves the
    /// pool (unless it is the last one there), and comes back after `healthyAfter` passing ones. An
    /// instance that exits is restarted instead.
    private func checkServing() async {
        guard !busy else { return }
        let candidates = instances.values.filter { $0.wanted && !$0.stopping && $0.lastExit == nil && ($0.inPool || $0.suspended) }
        for managed in candidates {
            let problem = await probe.check(host: "127.0.0.1", port: managed.port, namespace: managed.instance.network,
                                            path: managed.spec.health.path, timeout: managed.spec.health.timeout)
            // A rollout, a restart or an exit may have happened meanwhile: only this run's state is touched.
            guard !busy, var current = instances[managed.id], current.generation == managed.generation, current.wanted,
                  !current.stopping, current.lastExit == nil else { continue }
            if problem != nil {
                current.failedChecks += 1
                current.passedChecks = 0
                // The last instance in the pool stays: a slow answer is better than none.
                if current.inPool, current.failedChecks >= Self.failuresBeforeSuspension, active.count > 1 {
                    current.inPool = false
                    current.suspended = true
                    instances[managed.id] = current
                    await removeActive(managed.id)
                    continue
                }
            } else {
                current.failedChecks = 0
                current.passedChecks += 1
                if current.suspended, current.passedChecks >= current.spec.health.healthyAfter {
                    current.suspended = false
                    current.inPool = true
                    instances[managed.id] = current
                    await addActive(managed.id)
                    continue
                }
            }
            instances[managed.id] = current
        }
    }

    /// Starts the front again if it is gone, and tells it the pool again if what it has is not the pool
    /// (a `set-active` that timed out, or that a slow front answered too late).
    private func checkFront() async {
        await checkServing()
        guard let listen = listening else { return }
        let rolling = busy
        do {
            let state = try await front.state()
            frontRestarts.answered(at: clock.now())
            // During a rollout or an upgrade only a front that is gone is acted on (an upgrade's old front
            // may still answer, and the rollout tells the front its pools itself).
            guard !rolling, !busy else { return }
            sawFront(state.pid)
            // A front adopted without a copy of its socket (it came up after its start was given up on) is asked once.
            if keptSocket == nil, socketAskedOf != state.pid {
                socketAskedOf = state.pid
                await keepListeningSocket(at: listen)
            }
            if state.active != active || state.canary != canary, !busy { await publish() }
            return
        } catch where !error.frontGone {
            return
        } catch {}
        await restartGoneFront(listen)
    }

    /// Replaces the front with one started from the daemon's executable as it is on disk now: the new
    /// front takes the listening socket over, the old one finishes every connection it holds and exits.
    func upgradeFront() async throws(DeployError) -> FrontUpgrade {
        if let readoption { _ = await readoption.value }
        guard !takenDown else { throw .takenDown(service: name) }
        guard listening != nil else { throw .unknownService(name) }
        if busy { throw .rolloutInProgress(service: name, image: lastRollout?.image ?? serving!.image, state: lastRollout?.state ?? .pending) }
        busy = true
        defer { becomeIdle() }
        return try await replaceFront()
    }

    /// Replaces the front; the caller holds `busy`.
    private func replaceFront(waitingForOld: Bool = true) async throws(DeployError) -> FrontUpgrade {
        let old: FrontState
        let new: FrontState
        do {
            old = try await front.state()
            if let replaced = ProcessIdentity(running: old.pid) { replacedFronts.append(replaced) }
            new = try await launcher.replace(controlPath: paths.frontControl(name), logPath: paths.frontLog(name))
            sawFront(new.pid)
            frontRestarts.started(at: clock.now())
        } catch {
            throw .frontUpgradeFailed(service: name, reason: "\(error)")
        }
        // Anything that changed while the new front took over is told to it now.
        await publish()
        // An old front adopted at the daemon's start gave no copy of its socket; the new one does.
        if let listen = listening { await keepListeningSocket(at: listen) }
        // A `down` meanwhile does not wait for the old front: it drains on its own. Nor does a new front that
        // dies: the upgrade ends, and the watchdog, which waits for it, starts a front again on the kept socket
        // (connections wait in its queue meanwhile) rather than after the old front's drain.
        if waitingForOld {
            await waitForExit(old.pid, timeout: .seconds(Int64(launcher.drainTimeout) + 5), untilTakenDown: true, orUntilEnds: frontProcess)
        }
        return FrontUpgrade(service: name, oldPID: old.pid, newPID: new.pid, oldExited: ProcessStart.of(old.pid) == nil)
    }

    /// Waits until no front that the serving one replaced still runs (each ends within its drain timeout,
    /// and a few seconds more are allowed for it to exit), the serving front is gone, or the service is
    /// taken down. A front that is slow to answer is asked again.
    private func waitForReplacedFronts() async {
        let deadline = clock.now() + .seconds(Int64(launcher.drainTimeout) + 5)
        while clock.now() < deadline, !takenDown {
            do {
                if (try await front.state().predecessors ?? []).isEmpty { return }
            } catch where error.frontGone {
                return
            } catch {}
            await clock.sleep(.milliseconds(50))
        }
    }

    /// Whether the front runs an older executable than the daemon would start now.
    func frontIsOutdated() async -> Bool {
        guard let running = try? await front.state() else { return false }
        let current = launcher.executableIdentity
        return !current.isEmpty && running.executable != current
    }

    /// Waits until the process `pid` has exited, `timeout` has passed, (`untilTakenDown`) a `down` began,
    /// or the process `other` has ended.
    func waitForExit(_ pid: Int32, timeout: Duration, untilTakenDown: Bool = false, orUntilEnds other: ProcessIdentity? = nil) async {
        let deadline = clock.now() + timeout
        while ProcessStart.of(pid) != nil, clock.now() < deadline, !(untilTakenDown && takenDown), other?.isRunning ?? true {
            await clock.sleep(.milliseconds(50))
        }
    }

    // MARK: A daemon's restart

    private func saveInstances() {
        state.saveInstances(instances.values.sorted { $0.id < $1.id }.map {
            ServiceState.SavedInstance(record: $0.instance.record, image: $0.release.image, spec: $0.spec, port: $0.port,
                                       tree: $0.tree, admission: $0.release.admission, wanted: $0.wanted, restarts: $0.restarts)
        })
    }

    /// Takes over the instances a stopped daemon recorded whose processes still run; returns their ids
    /// (everything else below the instances folder is cleaned up).
    func adoptInstances() -> [String] {
        for saved in state.instances() {
            guard let runner = try? runners.runner(saved.spec.runner), let instance = runner.adopt(saved.record),
                  var release = releases.existing(saved.image) else { continue }
            release.admission = saved.admission
            instances[saved.record.id] = ManagedInstance(id: saved.record.id, release: release, spec: saved.spec, port: saved.port,
                                                         instance: instance, tree: saved.tree ?? release.tree, wanted: saved.wanted, restarts: saved.restarts)
            if let number = saved.record.id.split(separator: "-").last.flatMap({ Int($0) }) { counter = max(counter, number) }
        }
        return Array(instances.keys)
    }

    /// Begins carrying on serving `spec` (the release that last succeeded) after the daemon restarted, and
    /// holds the controller until that is done: from the moment this returns, a rollout asked for waits for
    /// the re-adoption instead of running beside it. The re-adoption re-attaches to the running front and
    /// adopted instances without restarting them, aborts a rollout that was in flight (traffic stays on,
    /// or returns to, `spec`'s release), and starts only what is missing.
    func beginReattach(_ spec: ReleaseSpec) -> Task<RolloutRecord, Never> {
        busy = true
        let task = Task {
            let record = await self.reattach(spec)
            // A front that runs an older executable than this daemon's is replaced before anything
            // else may run, so that a rollout asked for meanwhile cannot make the upgrade be skipped.
            await self.replaceFrontIfOutdated()
            self.endReadoption()
            return record
        }
        readoption = task
        return task
    }

    private func replaceFrontIfOutdated() async {
        guard !takenDown, listening != nil, await frontIsOutdated() else { return }
        // The old front finishes its connections on its own: nothing waits for that here.
        _ = try? await replaceFront(waitingForOld: false)
    }

    private func endReadoption() {
        readoption = nil
        becomeIdle()
    }

    /// Ends the operation that held `busy`, and wakes whoever waits for that.
    private func becomeIdle() {
        busy = false
        let waiting = idleWaiters
        idleWaiters = []
        for waiter in waiting { waiter.resume() }
    }

    /// The re-adoption itself; `busy` is held already.
    private func reattach(_ spec: ReleaseSpec) async -> RolloutRecord {
        serving = spec
        var record = RolloutRecord(service: name, image: spec.image, strategy: spec.strategy, kind: "readopt")
        lastRollout = record
        if var interrupted = state.interruptedRollout() {
            interrupted.reason = "interrupted: the daemon stopped while this rollout was \(interrupted.state.rawValue); "
                + "aborted when it started again, so traffic stays on (or returns to) \(spec.image)"
            interrupted.enter(.failed, note: interrupted.reason)
            try? history.append(interrupted)
            state.saveRollout(interrupted)
            record.enter(.aborting, note: "the \(interrupted.kind) of \(interrupted.image) was interrupted; " + interrupted.reason!)
            lastRollout = record
        }
        let running = try? await front.state()
        if let running, running.port == spec.listen.port {
            listening = spec.listen
            sawFront(running.pid)
            await keepListeningSocket(at: spec.listen)
            watchFront()
        } else {
            do { try await startFront(spec.listen) } catch {
                record.reason = error.description
                record.enter(.failed, note: error.description)
                lastRollout = record
                try? history.append(record)
                return record
            }
        }
        // Until told otherwise the front goes on with the adopted instances it was sending requests to.
        active = (running?.active ?? []).filter { instances[$0.id] != nil }
        let plan = ReadoptionPlan(instances: instances.values.map { ($0.id, $0.release.image, $0.lastExit == nil) },
                                  inFront: Set(running?.active.map(\.id) ?? []), serving: spec.image, replicas: spec.replicas)
        let keepers = plan.keep
        guard !keepers.isEmpty else {
            // Nothing of it runs: roll it out afresh; whatever else runs is retired once it serves.
            for id in instances.keys { instances[id]?.wanted = true }
            return await rolloutRecorded(spec, kind: "readopt")
        }
        record.enter(.healthChecking, note: "adopted \(keepers.joined(separator: ", ")), still running")
        lastRollout = record
        let others = plan.retire
        for id in keepers {
            instances[id]?.wanted = true
            instances[id]?.inPool = true
            watch(id, generation: instances[id]!.generation, instances[id]!.instance)
        }
        for id in others { instances[id]?.wanted = false }
        await setActive(keepers.compactMap { backend($0) })
        if !others.isEmpty {
            record.enter(.scaleDownDelay, note: "draining \(others.joined(separator: ", ")) (not of the release that serves)")
            await retire(others)
        }
        if plan.missing > 0, let release = releases.existing(spec.image) {
            record.enter(.provisioning, note: "starting \(plan.missing) missing instance(s)")
            for _ in 0..<plan.missing where !takenDown {
                guard let id = try? await startInstance(release, spec) else { continue }
                if await waitHealthy([id], spec) == nil {
                    instances[id]?.wanted = true
                    instances[id]?.inPool = true
                    await addActive(id)
                } else {
                    await retire([id])
                }
            }
        }
        if takenDown {
            record.reason = "the service was taken down while it was re-adopted"
            record.enter(.failed, note: record.reason)
        } else {
            record.enter(.succeeded)
        }
        lastRollout = record
        try? history.append(record)
        return record
    }
}

/// How a front upgrade went.
/// What `imgdeploy verify` found for one release that instances run from.
public struct ReleaseCheck: Sendable, Codable, Equatable {
    public var image: PinnedImage
    public var instances: [String]
    /// The tree digest recorded when the release was unpacked.
    public var tree: Digest?
    /// Nil when the release's files are as unpacked; else what changed.
    public var problem: String?
}

public struct FrontUpgrade: Sendable, Codable, Equatable {
    public var service: String
    public var oldPID: Int32
    public var newPID: Int32
    /// The old front finished its connections and exited within its drain timeout.
    public var oldExited: Bool
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

    /// Removes containers, mounts and folders a stopped deployer left behind, except those of the
    /// instances named in `keeping` (adopted, still running).
    func removeLeftovers(keeping: Set<String>) async {
        if let runc = try? RuncRunner(stateRoot: paths.runcState) { await runc.removeLeftovers(instancesFolder: paths.instances, keeping: keeping) }
        InstanceRootfs.unmountAll(below: paths.instances, keeping: keeping)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: paths.instances)) ?? [] where !keeping.contains(name) {
            try? FileManager.default.removeItem(atPath: paths.instances + "/" + name)
        }
    }
}

// MARK: The listening socket kept beside the front

extension ServiceController {
    /// The listening socket for a front to be started at `listen`: the one kept here when the front that
    /// served it is gone (connections queued on it meanwhile are served by the new front), or a new one,
    /// of which a copy is kept.
    private func socketForFront(at listen: ReleaseSpec.ListenAddress) throws(ListeningSocket.Failure) -> Int32 {
        if let kept = keptSocket, kept.address == listen, !lastFrontRuns {
            let copy = fcntl(kept.descriptor, F_DUPFD_CLOEXEC, 0)
            if copy >= 0 { return copy }
        }
        // A front last seen here still runs (its control socket gone, or not answering): the socket it accepts
        // on is not shared with a second one, which would accept beside one nobody controls. The port is then
        // held (by that front, and the copy kept here), so the bind below fails, as it did before copies were
        // kept, and the watchdog tries again a second later.
        let socket = try ListeningSocket.bind(host: listen.host, port: listen.port)
        dropKeptSocket()
        let copy = fcntl(socket, F_DUPFD_CLOEXEC, 0)
        if copy >= 0 { keptSocket = (listen, copy) }
        return socket
    }

    /// Remembers `pid` as the serving front, with its start time (a recycled pid is not taken for it).
    private func sawFront(_ pid: Int32) {
        frontProcess = ProcessIdentity(running: pid)
    }

    /// Whether the front last seen serving still runs.
    private var lastFrontRuns: Bool { frontProcess?.isRunning ?? false }

    /// Keeps a copy of the running front's listening socket (after the daemon started again, or an upgrade
    /// of a front adopted then), if it gives one (a front older than `listening-socket` does not) and it is
    /// the socket of `listen`.
    private func keepListeningSocket(at listen: ReleaseSpec.ListenAddress) async {
        guard keptSocket?.address != listen else { return }
        guard let socket = try? await front.listeningSocket() else { return }
        guard listen.port == 0 || ListeningSocket.port(of: socket) == listen.port, !takenDown, keptSocket?.address != listen else {
            close(socket)
            return
        }
        dropKeptSocket()
        keptSocket = (listen, socket)
    }

    private func dropKeptSocket() {
        if let kept = keptSocket { close(kept.descriptor) }
        keptSocket = nil
    }
}
