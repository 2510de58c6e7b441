import LoadBalancer
import ReleaseSpec

/// What an operator asks of a canary in its steps.
enum CanaryCommand: Sendable, Equatable {
    /// Skip the remaining steps: every request to the new version.
    case promote
    /// Stop: the new version's instances retire, the old version serves on.
    case abort
}

extension ServiceController {
    /// How often a step reads the front's figures.
    static func canaryPollInterval(_ policy: CanaryPolicy) -> Duration {
        min(.seconds(1), max(.milliseconds(50), policy.stepDuration / 10))
    }

    /// Observes a canary step: its window runs for the step's duration and until the new version has
    /// answered `minRequests`, and it fails as soon as, with that many, a rule is broken. The step and its
    /// figures are recorded in the rollout.
    func observe(step: Int, percent: Int, policy: CanaryPolicy, _ record: inout RolloutRecord) async -> RolloutMachine.Outcome {
        let started = clock.now()
        let starvedAt = started + policy.stepDuration * CanaryPolicy.starvedAfterDurations
        let window = canary?.window
        var figures = TrafficWindow(window: window ?? 0, seconds: 0, stable: TrafficFigures(), canary: TrafficFigures())
        func ended(_ outcome: CanaryStepRecord.Outcome, _ reason: String?) {
            let seconds = Double((clock.now() - started).milliseconds) / 1000
            record.canarySteps = (record.canarySteps ?? []) + [CanaryStepRecord(step: step + 1, percent: percent, seconds: seconds,
                                                                               old: figures.stable, new: figures.canary, outcome: outcome, reason: reason)]
            lastRollout = record
            state.saveRollout(record)
        }
        while true {
            if takenDown {
                ended(.aborted, "the service is being taken down")
                return .stepFailed("the service was taken down during canary step \(step + 1)")
            }
            switch takeCanaryCommand() {
            case .abort?:
                ended(.aborted, "aborted by `imgdeploy abort`")
                return .stepFailed("aborted by `imgdeploy abort` at step \(step + 1) (\(percent)%)")
            case .promote?:
                ended(.promoted, "promoted by `imgdeploy promote`")
                return .promoted
            case nil: break
            }
            await clock.sleep(Self.canaryPollInterval(policy))
            // Figures of another window belong to a front that took over meanwhile, whose window is this
            // step's but began later: they are read as they are (a replaced front's figures are not carried).
            if let state = try? await front.state(), let current = state.window, current.window == window {
                figures = current
            }
            let enough = figures.canary.requests >= policy.minRequests
            if enough, let broken = CanaryAnalysis.brokenRule(figures, policy.analysis) {
                ended(.failed, broken)
                return .stepFailed("canary step \(step + 1) (\(percent)%) failed its analysis: \(broken)")
            }
            let now = clock.now()
            if enough, now - started >= policy.stepDuration {
                ended(.passed, nil)
                return .stepPassed
            }
            if now >= starvedAt {
                let reason = "the new version answered \(figures.canary.requests) requests in \(DurationText.format(now - started)), "
                    + "fewer than minRequests (\(policy.minRequests)): too little traffic to judge it (lower minRequests, or send traffic)"
                ended(.failed, reason)
                return .stepFailed("canary step \(step + 1) (\(percent)%) starved: \(reason)")
            }
        }
    }

    /// A `pause` step: the split stays as the step before left it until `promote` or `abort`.
    func hold(step: Int, _ record: inout RolloutRecord) async -> RolloutMachine.Outcome {
        let percent = canary?.percent ?? 0
        let started = clock.now()
        while true {
            let outcome: (CanaryStepRecord.Outcome, String, RolloutMachine.Outcome)?
            if takenDown {
                outcome = (.aborted, "the service is being taken down", .stepFailed("the service was taken down while paused at step \(step + 1)"))
            } else {
                switch takeCanaryCommand() {
                case .abort?: outcome = (.aborted, "aborted by `imgdeploy abort`", .stepFailed("aborted by `imgdeploy abort` while paused at step \(step + 1)"))
                case .promote?: outcome = (.promoted, "promoted by `imgdeploy promote`", .promoted)
                case nil: outcome = nil
                }
            }
            if let (kind, reason, result) = outcome {
                let figures = (try? await front.state())?.window
                let seconds = Double((clock.now() - started).milliseconds) / 1000
                record.canarySteps = (record.canarySteps ?? []) + [CanaryStepRecord(step: step + 1, percent: percent, seconds: seconds,
                                                                                   old: figures?.stable ?? TrafficFigures(),
                                                                                   new: figures?.canary ?? TrafficFigures(), outcome: kind, reason: reason)]
                lastRollout = record
                state.saveRollout(record)
                return result
            }
            await clock.sleep(.milliseconds(100))
        }
    }

    private func takeCanaryCommand() -> CanaryCommand? {
        defer { canaryCommand = nil }
        return canaryCommand
    }

    /// Asks the canary in its steps to skip the rest (`promote`) or to stop (`abort`); throws when no canary
    /// of this service is in its steps.
    func command(_ command: CanaryCommand) throws(DeployError) {
        guard canaryRunning, !takenDown else {
            throw .noCanaryInProgress(service: name, lastState: lastRollout?.state)
        }
        canaryCommand = command
    }
}
