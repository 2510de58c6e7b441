import ReleaseSpec

/// The decisions of one rollout, blue-green, rolling or canary, and of its abort, kept apart from doing them.
///
/// The controller asks for the next actions, does them in order (start an instance, wait for health,
/// move traffic, retire instances), and reports what came of the last one; the machine answers with the
/// next actions, until one of them is `finish`. It does no I/O and reads no clock, so every path, each
/// failure at each step included, is tested in milliseconds and without root (`DeployerCoreTests`), as
/// AsyncHTTPClient tests its connection state machines.
///
/// A failure before the new version serves aborts: the instances it started are retired, and those of
/// the old version that a rolling rollout had retired already are started again first, so that traffic
/// stays on (or returns to) the old version. A canary starts every new instance, then goes through its
/// steps: each sends a share of requests to the new version and is observed (``Action/observe(_:step:percent:)``);
/// a step that fails its analysis, or an `abort`, retires the new instances while the old ones still serve.
struct RolloutMachine: Sendable, Equatable {
    /// Which release an instance is started from.
    enum Side: Sendable, Equatable {
        /// The release being rolled out.
        case new
        /// The release that served before it (to restore what a rolling rollout had retired).
        case previous
    }

    enum Action: Sendable, Equatable {
        /// Record that the rollout is in `state` now.
        case enter(RolloutState, note: String? = nil)
        /// Start one instance; answer ``Outcome/started(_:)`` or ``Outcome/notStarted(_:)``.
        case start(Side)
        /// Wait until each instance has passed its health checks; answer ``Outcome/healthy`` or ``Outcome/unhealthy(_:)``.
        case waitHealthy([String], Side)
        /// All new requests to `to` and none to `from` at once (blue-green's switch); `to` serve from now on.
        case switchTraffic(to: [String], from: [String])
        /// Send `percent` of new requests to these (a canary's step, `step` from 0 in the spec's list) and judge
        /// them; answer ``Outcome/stepPassed``, ``Outcome/stepFailed(_:)`` or ``Outcome/promoted``.
        case observe([String], step: Int, percent: Int)
        /// Keep the split to these as it is until `promote` or `abort`; answer ``Outcome/promoted`` or ``Outcome/stepFailed(_:)``.
        case hold([String], step: Int)
        /// These take requests beside those that do, and are restarted when they exit.
        case serve([String])
        /// These serve no more: no new requests, no restart.
        case unserve([String])
        /// Let these finish the requests they hold, then stop them.
        case retire([String])
        /// The rollout has ended, `.succeeded` or `.failed` with the reason.
        case finish(RolloutState, reason: String? = nil)
    }

    /// What came of the last action asked for.
    enum Outcome: Sendable, Equatable {
        /// An action with nothing to report, or the first call.
        case done
        case started(String)
        case notStarted(String)
        case healthy
        case unhealthy(String)
        /// A canary step held every rule for its duration.
        case stepPassed
        /// A canary step broke a rule, starved, or was aborted.
        case stepFailed(String)
        /// `promote`: the remaining steps are skipped.
        case promoted
    }

    private enum Phase: Sendable, Equatable {
        case ready
        /// Blue-green and canary: the new instances start one after another, then are checked together.
        case allStarting
        case allChecking
        /// Rolling, at a step: its new instance starts, is checked, serves; then the step's old one retires.
        case rollingStarting(step: Int)
        case rollingChecking(step: Int)
        /// Canary, once its instances are healthy: a step is observed (or held).
        case canaryStep(Int)
        /// Abort: the old instances retired so far start again, and are checked together.
        case restoring
        case restoreChecking
        case finished
    }

    let strategy: ReleaseSpec.Strategy
    let replicas: Int
    /// The instances serving before the rollout, in the order they are replaced.
    let old: [String]
    /// The image rolled out, for the notes.
    let image: String
    /// Whether the previous release can be started again (it serves, and is still kept here).
    let canRestore: Bool
    /// A canary's steps (empty for the other strategies).
    let steps: [CanaryPolicy.Step]

    private var phase = Phase.ready
    /// The new instances started so far.
    private(set) var fresh: [String] = []
    /// The old instances retired so far.
    private(set) var retired: [String] = []
    /// The old version's instances started again during an abort.
    private(set) var restored: [String] = []
    private var abortReason: String?
    private var restoreProblem: String?

    init(strategy: ReleaseSpec.Strategy, replicas: Int, old: [String], image: String, canRestore: Bool, canary: CanaryPolicy? = nil) {
        self.strategy = strategy
        // A spec is checked to ask for 1 to 64; one read back from an edited state file is not. Zero
        // would leave nothing serving (blue-green would even start instances for ever).
        self.replicas = max(1, replicas)
        self.old = old
        self.image = image
        self.canRestore = canRestore
        // A canary spec read back from an edited state file may have lost its policy: the default one.
        self.steps = strategy == .canary ? (canary ?? CanaryPolicy()).steps : []
    }

    var isFinished: Bool { phase == .finished }

    /// The actions to do next, given what came of the last one.
    mutating func next(_ outcome: Outcome) -> [Action] {
        switch (phase, outcome) {
        case (.ready, _):
            switch strategy {
            case .blueGreen:
                phase = .allStarting
                return [.enter(.provisioning, note: "starting \(replicas) instance(s) of \(image)"), .start(.new)]
            case .rolling:
                return rollingStep(0)
            case .canary:
                phase = .allStarting
                return [.enter(.provisioning, note: "starting \(replicas) instance(s) of \(image) for a canary"), .start(.new)]
            }

        case (.allStarting, .started(let id)):
            fresh.append(id)
            guard fresh.count == replicas else { return [.start(.new)] }
            phase = .allChecking
            return [.enter(.healthChecking), .waitHealthy(fresh, .new)]
        case (.allChecking, .healthy):
            // Blue-green switches now; a canary goes through its steps first.
            return strategy == .canary ? canaryStep(0) : switchAll()
        case (.canaryStep(let step), .stepPassed):
            return canaryStep(step + 1)
        case (.canaryStep, .promoted):
            return canaryStep(steps.count - 1)
        case (.canaryStep, .stepFailed(let reason)):
            return abort(reason)

        case (.rollingStarting(let step), .started(let id)):
            fresh.append(id)
            phase = .rollingChecking(step: step)
            return [.enter(.healthChecking, note: id), .waitHealthy([id], .new)]
        case (.rollingChecking(let step), .healthy):
            let id = fresh[step]
            return [.enter(.shifting, note: "\(id) takes traffic"), .serve([id])] + rollingDrain(step)

        case (.allStarting, .notStarted(let reason)), (.rollingStarting, .notStarted(let reason)),
             (.allChecking, .unhealthy(let reason)), (.rollingChecking, .unhealthy(let reason)):
            return abort(reason)

        case (.restoring, .started(let id)):
            restored.append(id)
            guard restored.count == retired.count else { return [.start(.previous)] }
            phase = .restoreChecking
            return [.waitHealthy(restored, .previous)]
        case (.restoring, .notStarted(let problem)), (.restoreChecking, .unhealthy(let problem)):
            restoreProblem = problem
            return endAbort()
        case (.restoreChecking, .healthy):
            return [.serve(restored)] + endAbort()

        case (.finished, _):
            return []
        default:
            preconditionFailure("rollout machine: \(outcome) does not answer what was asked in \(phase)")
        }
    }

    /// Every new request to the new instances at once, then the old ones drain and stop: blue-green's
    /// switch, and a canary's last step.
    private mutating func switchAll() -> [Action] {
        phase = .finished
        return [.enter(.shifting, note: "all traffic to \(fresh.joined(separator: ", "))"),
                .switchTraffic(to: fresh, from: old),
                .enter(.scaleDownDelay, note: old.isEmpty ? nil : "draining \(old.joined(separator: ", "))"),
                .retire(old),
                .finish(.succeeded)]
    }

    /// Step `step` of a canary: observed at its share, held at a pause, or, at the last (100 %), the switch
    /// of every request to the new version, as blue-green's.
    private mutating func canaryStep(_ step: Int) -> [Action] {
        guard step < steps.count - 1 else { return switchAll() }
        phase = .canaryStep(step)
        switch steps[step] {
        case .percent(let percent):
            return [.enter(.shifting, note: "step \(step + 1) of \(steps.count): \(percent)% of requests to the new version"),
                    .observe(fresh, step: step, percent: percent)]
        case .pause:
            return [.enter(.shifting, note: "step \(step + 1) of \(steps.count): paused until `imgdeploy promote` (or `abort`)"), .hold(fresh, step: step)]
        }
    }

    /// Step `step` of a rolling rollout: start its new instance, or, past `replicas`, only retire an old one.
    private mutating func rollingStep(_ step: Int) -> [Action] {
        guard step < max(replicas, old.count) else {
            phase = .finished
            return [.finish(.succeeded)]
        }
        guard step < replicas else { return rollingDrain(step) }
        phase = .rollingStarting(step: step)
        return [.enter(.provisioning, note: "instance \(step + 1) of \(replicas)"), .start(.new)]
    }

    /// The end of step `step`: its old instance, if there is one, retires; then the next step.
    private mutating func rollingDrain(_ step: Int) -> [Action] {
        guard step < old.count else { return rollingStep(step + 1) }
        let id = old[step]
        retired.append(id)
        return [.enter(.scaleDownDelay, note: "draining \(id)"), .retire([id])] + rollingStep(step + 1)
    }

    private mutating func abort(_ reason: String) -> [Action] {
        abortReason = reason
        guard !retired.isEmpty, canRestore else { return [.enter(.aborting, note: reason)] + endAbort() }
        phase = .restoring
        return [.enter(.aborting, note: reason), .start(.previous)]
    }

    /// The new instances, and old ones started again that did not become healthy, are retired; the
    /// rollout fails.
    private mutating func endAbort() -> [Action] {
        phase = .finished
        let leaving = fresh + (restoreProblem == nil ? [] : restored)
        let reason = (abortReason ?? "aborted") + (restoreProblem.map { "; restoring the previous version also failed: \($0)" } ?? "")
        return [.unserve(leaving), .retire(leaving), .finish(.failed, reason: reason)]
    }
}

/// How long an instance that exited waits before it is started again: half a second, doubled at each
/// restart, at most 30 seconds.
enum RestartBackoff {
    static func delay(afterRestarts restarts: Int) -> Duration {
        .milliseconds(min(30_000, 500 << min(max(restarts, 0), 6)))
    }
}

/// What a daemon that started again keeps of the instances the last one left running: the release that
/// serves keeps up to `replicas` of its running instances, those the front was sending requests to first;
/// every other instance retires; and what is missing is started.
struct ReadoptionPlan: Sendable, Equatable {
    /// Adopted instances that go on serving, in the order they were chosen.
    var keep: [String]
    /// Adopted instances that are drained and stopped (another release's, exited ones, or beyond `replicas`).
    var retire: [String]
    /// Instances of the serving release to start beside those kept (0 when none is kept: the release is
    /// then rolled out afresh).
    var missing: Int

    init(instances: [(id: String, image: PinnedImage, running: Bool)], inFront: Set<String>, serving: PinnedImage, replicas: Int) {
        // As in RolloutMachine: a spec read back from an edited state file may ask for less than one.
        let replicas = max(1, replicas)
        let rank = { (id: String) in (inFront.contains(id) ? 0 : 1, id) }
        keep = instances.filter { $0.image == serving && $0.running }.map(\.id)
            .sorted { rank($0) < rank($1) }
            .prefix(replicas).map { $0 }
        let kept = Set(keep)
        retire = instances.map(\.id).filter { !kept.contains($0) }.sorted()
        missing = keep.isEmpty ? 0 : replicas - keep.count
    }
}
