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

    /// Observes a canary step: `percent` of new requests go to `ids`, and the step's window runs for the
    /// step's duration and until the new version has answered `minRequests`; it fails as soon as, with that
    /// many, a rule is broken, or when one of the new instances exits. The step and its figures are recorded
    /// in the rollout.
    func observe(_ ids: [String], step: Int, percent: Int, policy: CanaryPolicy, _ record: inout RolloutRecord) async -> RolloutMachine.Outcome {
        let started = clock.now()
        var figures = TrafficWindow(window: 0, seconds: 0, stable: TrafficFigures(), canary: TrafficFigures())
        func ended(_ outcome: CanaryStepRecord.Outcome, _ reason: String?) {
            let seconds = Double((clock.now() - started).milliseconds) / 1000
            record.canarySteps = (record.canarySteps ?? []) + [CanaryStepRecord(step: step + 1, percent: percent, seconds: seconds,
                                                                               old: figures.stable, new: figures.canary, outcome: outcome, reason: reason)]
            lastRollout = record
            state.saveRollout(record)
        }
        // Asked for before the step began (during provisioning, or the step before): acted on before any
        // request goes to the new version at this share.
        if let early = stepInterrupted(ids, step: step, percent: percent) {
            ended(early.kind, early.reason)
            return early.outcome
        }
        canary = CanarySplit(backends: ids.compactMap { backend($0) }, percent: percent, window: nextActiveVersion(),
                             sticky: policy.sticky == .cookie, rollout: canaryRollout)
        let window = canary?.window
        await publish()
        let starvedAt = started + policy.stepDuration * CanaryPolicy.starvedAfterDurations
        while true {
            if let interruption = stepInterrupted(ids, step: step, percent: percent) {
                ended(interruption.kind, interruption.reason)
                return interruption.outcome
            }
            await clock.sleep(Self.canaryPollInterval(policy))
            // Judged only on figures read now from the front that applies this step's split: a front that is
            // gone is started again (and told the split), one that lost the split is told it again.
            var current = false
            do {
                let state = try await front.state()
                guard state.features?.contains("canary") == true else {
                    let reason = "the front (pid \(state.pid)) is older than canary rollouts and ignores their splits: `imgdeploy upgrade-front \(name)`, then apply again"
                    ended(.failed, reason)
                    return .stepFailed(reason)
                }
                if state.canary != canary {
                    await publish()
                } else if let read = state.window, read.window == window {
                    figures = read
                    current = true
                }
            } catch {
                if error.frontGone { await publish() }
            }
            let now = clock.now()
            if now >= starvedAt, !current || figures.canary.requests < policy.minRequests {
                // Also when the front's figures could not be read at all (it hangs, or cannot be started again):
                // a step never waits for ever.
                let reason = current || figures.window != 0
                    ? "the new version answered \(figures.canary.requests) requests in \(DurationText.format(now - started)), "
                        + "fewer than minRequests (\(policy.minRequests)): too little traffic to judge it (lower minRequests, or send traffic)"
                    : "the front's figures could not be read for \(DurationText.format(now - started)): the step cannot be judged"
                ended(.failed, reason)
                return .stepFailed("canary step \(step + 1) (\(percent)%) starved: \(reason)")
            }
            guard current else { continue }
            let enough = figures.canary.requests >= policy.minRequests
            if enough, let broken = CanaryAnalysis.brokenRule(figures, policy.analysis) {
                ended(.failed, broken)
                return .stepFailed("canary step \(step + 1) (\(percent)%) failed its analysis: \(broken)")
            }
            if enough, now - started >= policy.stepDuration {
                ended(.passed, nil)
                return .stepPassed
            }
        }
    }

    /// A `pause` step: the split to `ids` stays as the step before left it until `promote` or `abort` (or
    /// a new instance exits). Its figures are those of the window the step before opened.
    func hold(_ ids: [String], step: Int, _ record: inout RolloutRecord) async -> RolloutMachine.Outcome {
        let percent = canary?.percent ?? 0
        let started = clock.now()
        while true {
            if let interruption = stepInterrupted(ids, step: step, percent: percent) {
                let figures = (try? await front.state())?.window
                let seconds = Double((clock.now() - started).milliseconds) / 1000
                record.canarySteps = (record.canarySteps ?? []) + [CanaryStepRecord(step: step + 1, percent: percent, seconds: seconds,
                                                                                   old: figures?.stable ?? TrafficFigures(),
                                                                                   new: figures?.canary ?? TrafficFigures(),
                                                                                   outcome: interruption.kind, reason: interruption.reason)]
                lastRollout = record
                state.saveRollout(record)
                return interruption.outcome
            }
            // The front is looked after here: the watchdog leaves a service alone while a rollout runs.
            do { _ = try await front.state() } catch { if error.frontGone { await publish() } }
            await clock.sleep(.milliseconds(200))
        }
    }

    /// What ends a step before its verdict: the service taken down, a new instance that exited, `abort` or
    /// `promote` (which needs every new instance running).
    private func stepInterrupted(_ ids: [String], step: Int, percent: Int) -> (kind: CanaryStepRecord.Outcome, reason: String, outcome: RolloutMachine.Outcome)? {
        if takenDown {
            return (.aborted, "the service is being taken down", .stepFailed("the service was taken down during canary step \(step + 1)"))
        }
        for id in ids {
            guard let managed = instances[id], !managed.stopping else {
                return (.failed, "instance \(id) of the new version is gone", .stepFailed("instance \(id) of the new version is gone (canary step \(step + 1))"))
            }
            if let status = managed.lastExit {
                let reason = "instance \(id) of the new version exited with status \(status)"
                return (.failed, reason, .stepFailed("\(reason) during canary step \(step + 1) (\(percent)%)"))
            }
        }
        switch takeCanaryCommand() {
        case .abort?:
            return (.aborted, "aborted by `imgdeploy abort`", .stepFailed("aborted by `imgdeploy abort` at canary step \(step + 1) (\(percent)%)"))
        case .promote?:
            return (.promoted, "promoted by `imgdeploy promote`", .promoted)
        case nil:
            return nil
        }
    }

    /// A failed step ends the steps: `promote` and `abort` are refused from here on, not taken and ignored.
    func canaryStepEnded(_ outcome: RolloutMachine.Outcome) -> RolloutMachine.Outcome {
        if case .stepFailed = outcome { canaryRunning = false }
        return outcome
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
