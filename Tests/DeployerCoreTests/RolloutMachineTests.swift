import Foundation
import ReleaseSpec
@testable import DeployerCore
import Testing
import TestScheduling

/// A world the rollout machine's actions act on, in memory: instances start (or fail to, by start
/// number), pass their health checks (or not, by id), take traffic and stop.
struct ScriptedWorld {
    /// Start numbers (1-based, counting every start) that fail.
    var failingStarts: Set<Int> = []
    /// Instances that never pass their health checks.
    var unhealthy: Set<String> = []
    /// What each canary step (by index) comes to; a step not named passes, a pause is promoted.
    var stepOutcomes: [Int: RolloutMachine.Outcome] = [:]
    /// The canary steps observed or held, in order: (index, percent; nil for a pause).
    private(set) var steps: [(step: Int, percent: Int?)] = []
    private(set) var starts = 0
    private(set) var running: Set<String>
    private(set) var serving: Set<String>
    /// The fewest instances that served at once after the first moment anything served.
    private(set) var fewestServing = Int.max
    private(set) var states: [RolloutState] = []
    private(set) var ending: (state: RolloutState, reason: String?)?

    init(serving old: [String]) {
        running = Set(old)
        serving = Set(old)
        if !old.isEmpty { fewestServing = old.count }
    }

    /// Runs the machine to its end; returns every action in order.
    @discardableResult
    mutating func run(_ machine: inout RolloutMachine) -> [RolloutMachine.Action] {
        var done: [RolloutMachine.Action] = []
        var outcome = RolloutMachine.Outcome.done
        var rounds = 0
        while !machine.isFinished {
            rounds += 1
            precondition(rounds < 1_000, "the machine does not finish")
            for action in machine.next(outcome) {
                done.append(action)
                outcome = perform(action)
            }
        }
        return done
    }

    mutating func perform(_ action: RolloutMachine.Action) -> RolloutMachine.Outcome {
        defer { if !serving.isEmpty || fewestServing != Int.max { fewestServing = min(fewestServing, serving.count) } }
        switch action {
        case let .enter(state, _):
            states.append(state)
        case .start(let side):
            starts += 1
            guard !failingStarts.contains(starts) else { return .notStarted("start \(starts) failed") }
            let id = "\(side == .new ? "new" : "old")-\(starts)"
            running.insert(id)
            return .started(id)
        case .waitHealthy(let ids, _):
            if let sick = ids.first(where: { unhealthy.contains($0) }) { return .unhealthy("\(sick) is not healthy") }
            return .healthy
        case let .switchTraffic(to, from):
            serving.subtract(from)
            serving.formUnion(to)
        case .serve(let ids):
            serving.formUnion(ids)
        case .unserve(let ids):
            serving.subtract(ids)
        case .retire(let ids):
            serving.subtract(ids)
            running.subtract(ids)
        case let .finish(state, reason):
            ending = (state, reason)
            states.append(state)
        case let .observe(ids, step, percent):
            precondition(ids.allSatisfy { running.contains($0) }, "a canary step sends requests only to running instances")
            steps.append((step, percent))
            return stepOutcomes[step] ?? .stepPassed
        case let .hold(_, step):
            steps.append((step, nil))
            return stepOutcomes[step] ?? .promoted
        }
        return .done
    }
}

@Suite("Rollout decisions, without root or instances", .mayBlock)
struct RolloutMachineTests {
    func machine(_ strategy: ReleaseSpec.Strategy, replicas: Int, old: [String], canRestore: Bool = true,
                 steps: [CanaryPolicy.Step] = [.percent(5), .percent(25), .percent(50), .percent(100)]) -> RolloutMachine {
        RolloutMachine(strategy: strategy, replicas: replicas, old: old, image: "sha256:new", canRestore: canRestore,
                       canary: strategy == .canary ? CanaryPolicy(steps: steps) : nil)
    }

    @Test("canary: every new instance is healthy first, each step is observed in order, then all traffic moves and the old ones retire")
    func canary() {
        var rollout = machine(.canary, replicas: 2, old: ["a", "b"])
        var world = ScriptedWorld(serving: ["a", "b"])
        let actions = world.run(&rollout)
        #expect(world.ending?.state == .succeeded)
        #expect(world.steps.map(\.step) == [0, 1, 2] && world.steps.map(\.percent) == [5, 25, 50], "the last step (100) is the switch")
        #expect(world.serving == ["new-1", "new-2"] && world.running == world.serving)
        #expect(world.fewestServing == 2)
        let checkAt = actions.firstIndex(of: .waitHealthy(["new-1", "new-2"], .new))!
        let firstStep = actions.firstIndex(of: .observe(["new-1", "new-2"], step: 0, percent: 5))!
        let switchAt = actions.firstIndex(of: .switchTraffic(to: ["new-1", "new-2"], from: ["a", "b"]))!
        #expect(checkAt < firstStep && firstStep < switchAt)
    }

    @Test("canary: a step that fails its analysis retires the new instances, and the old ones serve throughout")
    func canaryStepFails() {
        var rollout = machine(.canary, replicas: 2, old: ["a", "b"])
        var world = ScriptedWorld(serving: ["a", "b"])
        world.stepOutcomes[1] = .stepFailed("maxErrorRate: 10%")
        let actions = world.run(&rollout)
        #expect(world.ending?.state == .failed && world.ending?.reason == "maxErrorRate: 10%")
        #expect(world.steps.map(\.step) == [0, 1], "no step after the failed one")
        #expect(world.serving == ["a", "b"] && world.running == ["a", "b"])
        #expect(world.fewestServing == 2)
        #expect(!actions.contains { if case .switchTraffic = $0 { true } else { false } })
        #expect(actions.contains(.retire(["new-1", "new-2"])))
    }

    @Test("canary: promote skips the remaining steps; a pause waits for it")
    func canaryPromote() {
        var rollout = machine(.canary, replicas: 1, old: ["a"], steps: [.percent(10), .pause, .percent(50), .percent(100)])
        var world = ScriptedWorld(serving: ["a"])
        world.run(&rollout)
        #expect(world.ending?.state == .succeeded)
        #expect(world.steps.count == 2 && world.steps[1].percent == nil, "the pause was held, then promoted past step 3")
        #expect(world.serving == ["new-1"])

        var aborted = machine(.canary, replicas: 1, old: ["a"], steps: [.pause, .percent(100)])
        var second = ScriptedWorld(serving: ["a"])
        second.stepOutcomes[0] = .stepFailed("aborted by `imgdeploy abort`")
        second.run(&aborted)
        #expect(second.ending?.state == .failed && second.serving == ["a"] && second.running == ["a"])
    }

    @Test("canary: a new instance that does not start or become healthy ends it before any step")
    func canaryNeverHealthy() {
        var rollout = machine(.canary, replicas: 2, old: ["a"])
        var world = ScriptedWorld(serving: ["a"])
        world.unhealthy = ["new-2"]
        world.run(&rollout)
        #expect(world.ending?.state == .failed && world.steps.isEmpty)
        #expect(world.serving == ["a"] && world.running == ["a"])
    }

    @Test("blue-green: every new instance is healthy before traffic moves, all at once; then the old ones retire")
    func blueGreen() {
        var rollout = machine(.blueGreen, replicas: 3, old: ["a", "b", "c"])
        var world = ScriptedWorld(serving: ["a", "b", "c"])
        let actions = world.run(&rollout)
        #expect(world.ending?.state == .succeeded)
        #expect(world.serving == ["new-1", "new-2", "new-3"] && world.running == world.serving)
        #expect(world.states == [.provisioning, .healthChecking, .shifting, .scaleDownDelay, .succeeded])
        #expect(world.fewestServing == 3, "traffic never rests on fewer instances than asked for")
        let switchAt = actions.firstIndex(of: .switchTraffic(to: ["new-1", "new-2", "new-3"], from: ["a", "b", "c"]))
        let checkAt = actions.firstIndex(of: .waitHealthy(["new-1", "new-2", "new-3"], .new))
        #expect(checkAt != nil && switchAt != nil && checkAt! < switchAt!)
    }

    @Test("rolling: each new instance serves before an old one retires, one at a time")
    func rolling() {
        var rollout = machine(.rolling, replicas: 3, old: ["a", "b", "c"])
        var world = ScriptedWorld(serving: ["a", "b", "c"])
        let actions = world.run(&rollout)
        #expect(world.ending?.state == .succeeded)
        #expect(world.serving == ["new-1", "new-2", "new-3"] && world.running == world.serving)
        #expect(world.fewestServing == 3)
        #expect(actions.filter { if case .retire = $0 { true } else { false } } == [.retire(["a"]), .retire(["b"]), .retire(["c"])])
        let firstServe = actions.firstIndex(of: .serve(["new-1"]))!
        let firstRetire = actions.firstIndex(of: .retire(["a"]))!
        #expect(firstServe < firstRetire)
    }

    @Test("rolling to fewer or more replicas than serve now", arguments: [(1, 3), (3, 1), (2, 0)])
    func rollingResize(replicas: Int, oldCount: Int) {
        let old = (0..<oldCount).map { "old\($0)" }
        var rollout = machine(.rolling, replicas: replicas, old: old)
        var world = ScriptedWorld(serving: old)
        world.run(&rollout)
        #expect(world.ending?.state == .succeeded)
        #expect(world.serving == Set((1...replicas).map { "new-\($0)" }))
        #expect(world.running == world.serving)
        if !old.isEmpty { #expect(world.fewestServing >= 1, "never without an instance") }
    }

    @Test("blue-green that fails: the new instances retire, the old ones never stopped serving")
    func blueGreenAbort() {
        for breakage in ["second start fails", "third instance unhealthy"] {
            var rollout = machine(.blueGreen, replicas: 3, old: ["a", "b"])
            var world = ScriptedWorld(serving: ["a", "b"])
            if breakage == "second start fails" { world.failingStarts = [2] } else { world.unhealthy = ["new-3"] }
            world.run(&rollout)
            #expect(world.ending?.state == .failed, "\(breakage)")
            #expect(world.serving == ["a", "b"] && world.running == ["a", "b"], "\(breakage): \(world.running)")
            #expect(world.states.contains(.aborting) && !world.states.contains(.shifting), "\(breakage)")
            #expect(world.ending?.reason?.contains(breakage == "second start fails" ? "start 2 failed" : "new-3 is not healthy") == true)
        }
    }

    @Test("rolling that fails half way: the old instances it retired start again, the new ones retire")
    func rollingAbortRestores() {
        var rollout = machine(.rolling, replicas: 3, old: ["a", "b", "c"])
        var world = ScriptedWorld(serving: ["a", "b", "c"])
        world.unhealthy = ["new-2"]
        let actions = world.run(&rollout)
        #expect(world.ending?.state == .failed)
        // a was retired at step 1; one instance of the previous release replaces it (the third start).
        #expect(actions.contains(.start(.previous)))
        #expect(world.serving == ["b", "c", "old-3"], "\(world.serving)")
        #expect(world.running == world.serving, "nothing left running that does not serve")
        #expect(world.fewestServing >= 2)
    }

    @Test("when restoring fails too, both reasons are told and nothing started is left running", arguments: ["start", "health"])
    func restoreFails(how: String) {
        var rollout = machine(.rolling, replicas: 2, old: ["a", "b"])
        var world = ScriptedWorld(serving: ["a", "b"])
        world.unhealthy = ["new-2"]
        if how == "start" { world.failingStarts = [3] } else { world.unhealthy.insert("old-3") }
        world.run(&rollout)
        #expect(world.ending?.state == .failed)
        #expect(world.ending?.reason?.contains("new-2 is not healthy; restoring the previous version also failed") == true, "\(world.ending?.reason ?? "")")
        #expect(world.serving == ["b"] && world.running == ["b"], "\(world.running)")
    }

    @Test("without the previous release to start, an abort retires the new instances and restores nothing")
    func cannotRestore() {
        var rollout = machine(.rolling, replicas: 2, old: ["a", "b"], canRestore: false)
        var world = ScriptedWorld(serving: ["a", "b"])
        world.unhealthy = ["new-2"]
        let actions = world.run(&rollout)
        #expect(!actions.contains(.start(.previous)))
        #expect(world.serving == ["b"] && world.running == ["b"])
    }

    /// Every strategy, size and failure point: the machine ends, and leaves exactly what serves running.
    @Test("every failure point of every small rollout ends cleanly", arguments: ReleaseSpec.Strategy.allCases)
    func everyFailurePoint(strategy: ReleaseSpec.Strategy) {
        for replicas in 1...3 {
            for oldCount in 0...3 {
                let old = (0..<oldCount).map { "old\($0)" }
                // No failure, each start failing, and each instance (new or restored) unhealthy.
                var worlds = [ScriptedWorld(serving: old)]
                for start in 1...(replicas + oldCount + 1) {
                    var failing = ScriptedWorld(serving: old)
                    failing.failingStarts = [start]
                    worlds.append(failing)
                    var sick = ScriptedWorld(serving: old)
                    sick.unhealthy = ["new-\(start)", "old-\(start)"]
                    worlds.append(sick)
                }
                // A canary failing at each of its steps.
                if strategy == .canary {
                    for step in 0..<3 {
                        var failing = ScriptedWorld(serving: old)
                        failing.stepOutcomes[step] = .stepFailed("step \(step) failed")
                        worlds.append(failing)
                    }
                }
                for var world in worlds {
                    var rollout = machine(strategy, replicas: replicas, old: old)
                    world.run(&rollout)
                    let label = "\(strategy) \(replicas) over \(oldCount), failing starts \(world.failingStarts), unhealthy \(world.unhealthy)"
                    #expect(world.ending != nil, "\(label)")
                    #expect(world.running == world.serving, "\(label): running \(world.running), serving \(world.serving)")
                    if world.ending?.state == .succeeded {
                        #expect(world.serving == Set(rollout.fresh) && world.serving.count == replicas, "\(label)")
                    } else {
                        #expect(world.serving.isDisjoint(with: rollout.fresh), "\(label)")
                        if !old.isEmpty { #expect(!world.serving.isEmpty, "\(label): a failed rollout leaves the old version serving") }
                    }
                }
            }
        }
    }

    @Test("an instance that keeps exiting waits half a second, doubling, at most 30 seconds")
    func restartBackoff() {
        #expect(RestartBackoff.delay(afterRestarts: 0) == .milliseconds(500))
        #expect(RestartBackoff.delay(afterRestarts: 1) == .seconds(1))
        #expect(RestartBackoff.delay(afterRestarts: 5) == .seconds(16))
        #expect(RestartBackoff.delay(afterRestarts: 6) == .seconds(30))
        #expect(RestartBackoff.delay(afterRestarts: 1_000) == .seconds(30))
    }
}
