import Foundation
@testable import DeployerCore
import LoadBalancer
import OCI
import ReleaseSpec
import Testing
import TestScheduling

/// Canary rollouts through the controller, on the stand-ins of `ServiceStandIns.swift`: the stand-in
/// front reports, for each share of requests, the figures a test gives it, as a real front counts them.
@Suite("Canary rollouts, on stand-ins", .mayBlock)
struct CanaryControllerTests {
    /// Two images in the fixture's store, and a controller serving the first (blue-green): where each canary starts.
    func servingFirstImage(_ fixture: ServiceFixture) async throws -> (a: PinnedImage, b: PinnedImage, controller: ServiceController) {
        let a = try fixture.image("A"), b = try fixture.image("B")
        let controller = fixture.controller()
        let first = try await controller.apply(fixture.spec(a))
        #expect(first.state == .succeeded, "\(first.reason ?? "")")
        return (a, b, controller)
    }

    func canarySpec(_ fixture: ServiceFixture, _ image: PinnedImage, steps: [CanaryPolicy.Step] = [.percent(5), .percent(25), .percent(100)],
                    stepDuration: Duration = .seconds(10), analysis: CanaryPolicy.Analysis = .init()) -> ReleaseSpec {
        var spec = fixture.spec(image, replicas: 2, strategy: .canary)
        spec.canary = CanaryPolicy(steps: steps, stepDuration: stepDuration, minRequests: 100, analysis: analysis)
        #expect(spec.canary?.problems.isEmpty == true, "\(spec.canary?.problems ?? [])")
        return spec
    }

    func figures(_ requests: Int, errors: Int = 0, p99: UInt64 = 2_000) -> TrafficFigures {
        TrafficFigures(requests: requests, errors: errors, p50Microseconds: p99 / 2, p99Microseconds: p99)
    }

    func window(new: TrafficFigures, old: TrafficFigures = TrafficFigures(requests: 4000, errors: 0, p50Microseconds: 1_000, p99Microseconds: 2_000)) -> TrafficWindow {
        TrafficWindow(window: 0, seconds: 1, stable: old, canary: new)
    }

    @Test("a healthy canary goes through each step at its share, then takes all traffic; each step is recorded with both versions' figures")
    func healthy() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (a, b, controller) = try await servingFirstImage(fixture)
        let old = fixture.front.active
        let poolsBefore = fixture.front.pools.count
        fixture.front.report(window(new: figures(150)), atPercent: 5)
        fixture.front.report(window(new: figures(900)), atPercent: 25)
        let record = try await controller.apply(canarySpec(fixture, b))
        #expect(record.state == .succeeded, "\(record.reason ?? "")")
        let newIDs = fixture.runtime.running(b)
        #expect(fixture.front.splits.map(\.percent) == [5, 25] && fixture.front.splits.allSatisfy { $0.backends == newIDs })
        let pools = fixture.front.pools.dropFirst(poolsBefore)
        #expect(pools.allSatisfy { $0 == old || $0 == newIDs } && pools.last == newIDs,
                "the old version took every request but the canary's share until the switch: \(pools)")
        #expect(fixture.front.active == newIDs && fixture.runtime.running(a).isEmpty)
        let steps = record.canarySteps ?? []
        #expect(steps.map(\.outcome) == [.passed, .passed] && steps.map(\.percent) == [5, 25])
        #expect(steps.first?.new.requests == 150 && steps.first?.old.requests == 4000)
        #expect(steps.allSatisfy { $0.seconds >= 10 }, "each step lasted its duration: \(steps.map(\.seconds))")
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("a canary that fails a rule at its first step is aborted there: its instances retire, the old version keeps every request")
    func errorsAbort() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (_, b, controller) = try await servingFirstImage(fixture)
        let old = fixture.front.active
        fixture.front.report(window(new: figures(200, errors: 20)), atPercent: 5)
        let record = try await controller.apply(canarySpec(fixture, b))
        #expect(record.state == .failed)
        #expect(record.reason?.contains("maxErrorRate") == true && record.reason?.contains("10%") == true, "\(record.reason ?? "")")
        #expect(fixture.front.splits.map(\.percent) == [5], "no later step")
        #expect(fixture.front.active == old && fixture.runtime.running(b).isEmpty)
        let status = await controller.status()
        #expect(status.lastRollout?.canarySteps?.first?.outcome == .failed)
        #expect(status.lastRollout?.canarySteps?.first?.new.errors == 20)
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("latency rules: a new version 4× slower than the old one fails maxP99Ratio; one under the absolute limit passes maxP99")
    func latency() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (_, b, controller) = try await servingFirstImage(fixture)
        fixture.front.report(window(new: figures(200, p99: 8_000)), atPercent: 5)
        let slow = try await controller.apply(canarySpec(fixture, b, analysis: .init(maxErrorRate: 0.01, maxP99: .milliseconds(500), maxP99Ratio: 1.5)))
        #expect(slow.state == .failed && slow.reason?.contains("maxP99Ratio") == true, "\(slow.reason ?? "")")
        let passing = try await controller.apply(canarySpec(fixture, b, steps: [.percent(5), .percent(100)],
                                                            analysis: .init(maxErrorRate: nil, maxP99: .milliseconds(500))))
        #expect(passing.state == .succeeded, "\(passing.reason ?? "")")
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("a step that never gets minRequests is aborted after ten step durations, not passed unjudged")
    func starved() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (_, b, controller) = try await servingFirstImage(fixture)
        fixture.front.report(window(new: figures(7)), atPercent: 5)
        let record = try await controller.apply(canarySpec(fixture, b))
        #expect(record.state == .failed && record.reason?.contains("starved") == true, "\(record.reason ?? "")")
        #expect(fixture.runtime.running(b).isEmpty)
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("promote skips the remaining steps (a pause waits for it); abort stops a step; neither applies without a canary in its steps")
    func commands() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B"), c = try fixture.image("C")
        let controller = fixture.controller()
        _ = try await controller.apply(fixture.spec(a))
        await #expect(throws: DeployError.self) { try await controller.command(.promote) }

        fixture.front.report(window(new: figures(150)), atPercent: 5)
        let paused = Task { try await controller.apply(canarySpec(fixture, b, steps: [.percent(5), .pause, .percent(50), .percent(100)])) }
        #expect(await eventually { await controller.status().lastRollout?.canarySteps?.count == 1 })
        try await Task.sleep(for: .milliseconds(200))
        #expect(fixture.front.splits.map(\.percent) == [5], "held at the pause")
        try await controller.command(.promote)
        let promoted = try await paused.value
        #expect(promoted.state == .succeeded)
        #expect(promoted.canarySteps?.map(\.outcome) == [.passed, .promoted])
        #expect(fixture.front.splits.map(\.percent) == [5], "step 3 (50%) was skipped")

        let running = Task { try await controller.apply(canarySpec(fixture, c, stepDuration: .seconds(3600))) }
        #expect(await eventually { fixture.front.splits.count == 2 })
        try await controller.command(.abort)
        let aborted = try await running.value
        #expect(aborted.state == .failed && aborted.reason?.contains("imgdeploy abort") == true, "\(aborted.reason ?? "")")
        #expect(aborted.canarySteps?.map(\.outcome) == [.aborted])
        #expect(fixture.runtime.running(c).isEmpty && fixture.front.active == fixture.runtime.running(b))
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("a new instance that exits during a step fails it: the canary retires, and the old version keeps every request")
    func instanceExits() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (_, b, controller) = try await servingFirstImage(fixture)
        let old = fixture.front.active
        fixture.front.report(window(new: figures(150)), atPercent: 5)
        let running = Task { try await controller.apply(canarySpec(fixture, b, stepDuration: .seconds(3600))) }
        #expect(await eventually { fixture.front.splits.count == 1 })
        let victim = try #require(fixture.runtime.running.first { fixture.runtime.running(b).contains($0.id) })
        victim.exit(9)
        let record = try await running.value
        #expect(record.state == .failed && record.reason?.contains("exited with status 9") == true, "\(record.reason ?? "")")
        #expect(record.canarySteps?.map(\.outcome) == [.failed])
        #expect(fixture.front.active == old && fixture.runtime.running(b).isEmpty)
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("with nothing serving yet, and for a rollback, a canary spec rolls out blue-green: there is nothing to compare, and a rollback must not wait")
    func nothingToCompare() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B")
        let controller = fixture.controller()
        let first = try await controller.apply(canarySpec(fixture, a))
        #expect(first.state == .succeeded && first.canarySteps == nil && fixture.front.splits.isEmpty, "\(first.reason ?? "")")
        #expect(first.transitions.contains { $0.note?.contains("nothing to compare") == true })
        fixture.front.report(window(new: figures(150)), atPercent: 5)
        fixture.front.report(window(new: figures(900)), atPercent: 25)
        let second = try await controller.apply(canarySpec(fixture, b))
        #expect(second.state == .succeeded && second.canarySteps?.count == 2)
        let splits = fixture.front.splits.count
        let back = try await controller.rollback(to: nil)
        #expect(back.state == .succeeded && back.canarySteps == nil && fixture.front.splits.count == splits, "\(back.reason ?? "")")
        #expect(fixture.front.active == fixture.runtime.running(a))
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("a front older than canaries fails the step with how to upgrade it; a latency rule with no answer to measure fails too")
    func unjudgeable() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (_, b, controller) = try await servingFirstImage(fixture)
        fixture.front.report(TrafficWindow(window: 0, seconds: 1, stable: figures(4000), canary: TrafficFigures(requests: 300, errors: 300)), atPercent: 5)
        let silent = try await controller.apply(canarySpec(fixture, b, analysis: .init(maxErrorRate: nil, maxP99: .milliseconds(500))))
        #expect(silent.state == .failed && silent.reason?.contains("answered none of its 300 requests") == true, "\(silent.reason ?? "")")

        fixture.front.makeOlderThanCanaries()
        let old = try await controller.apply(canarySpec(fixture, b))
        #expect(old.state == .failed && old.reason?.contains("imgdeploy upgrade-front web") == true, "\(old.reason ?? "")")
        #expect(fixture.runtime.running(b).isEmpty)
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }

    @Test("a daemon that starts again during a canary ends it: the front's split is cleared, and the interrupted rollout is recorded as failed")
    func readoptionClearsSplit() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B")
        let first = fixture.controller()
        _ = try await first.apply(fixture.spec(a))
        let serving = fixture.front.active
        // The daemon dies while a canary of B holds a share at the front (its backend is a stand-in here).
        let servingBackends = try await fixture.front.state().active
        _ = try await fixture.front.setActive(servingBackends, canary: CanarySplit(backends: [servingBackends[0]], percent: 25, window: 9),
                                              version: nil)
        var interrupted = RolloutRecord(service: "web", image: b, strategy: .canary, kind: "deploy")
        interrupted.enter(.shifting, note: "step 2 of 4: 25% of requests to the new version")
        ServiceState(paths: fixture.paths, service: "web").saveRollout(interrupted)

        let next = fixture.controller()
        _ = await next.adoptInstances()
        let record = await next.beginReattach(fixture.spec(a)).value
        #expect(record.state == .succeeded && record.kind == "readopt", "\(record.reason ?? "")")
        #expect(try await fixture.front.state().canary == nil, "the split is gone")
        #expect(fixture.front.active == serving)
        let aborted = try #require(ReleaseHistory(paths: fixture.paths, service: "web").records().last { $0.image == b })
        #expect(aborted.state == .failed && aborted.reason?.contains("interrupted") == true)
        await next.down()
    }

    @Test("a front whose figures cannot be read (it hangs) starves the step after ten step durations instead of holding the rollout for ever")
    func unreadableFront() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (_, b, controller) = try await servingFirstImage(fixture)
        fixture.front.makeUnreadable()
        let record = try await controller.apply(canarySpec(fixture, b))
        #expect(record.state == .failed && record.reason?.contains("could not be read") == true, "\(record.reason ?? "")")
        #expect(fixture.runtime.running(b).isEmpty)
        await #expect(throws: DeployError.self) { try await controller.command(.abort) }
        // Nothing is left running (an instance watch waits on each), as at the end of every controller test.
        await controller.down()
    }
}
