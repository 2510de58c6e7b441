import CommandLineTesting
import Foundation
@testable import DeployerCore
import LoadBalancer
import LogFiles
import OCI
import ReleaseSpec
import Testing
import TestScheduling

/// The controller itself, acting on stand-ins for the front, the runtime and the health probe (see
/// `ServiceStandIns.swift`), with real releases fetched, verified and unpacked from a store, and time
/// running 200 times faster: no root, no instance, no network.
@Suite("A service's controller, on stand-ins", .mayBlock)
struct ServiceControllerTests {
    @Test("blue-green: the new version takes all traffic once healthy, the old one retires, and the pool is never empty")
    func blueGreen() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B")
        let controller = fixture.controller()
        let first = try await controller.apply(fixture.spec(a))
        #expect(first.state == .succeeded, "\(first.reason ?? "")")
        #expect(fixture.front.active == fixture.runtime.running(a) && fixture.front.active.count == 2)

        let second = try await controller.apply(fixture.spec(b))
        #expect(second.state == .succeeded, "\(second.reason ?? "")")
        #expect(second.transitions.map(\.state) == [.pending, .verifying, .provisioning, .healthChecking, .shifting, .scaleDownDelay, .succeeded])
        #expect(fixture.front.active == fixture.runtime.running(b) && fixture.front.active.count == 2)
        #expect(fixture.runtime.running(a).isEmpty)
        let pools = fixture.front.pools
        let firstServed = try #require(pools.firstIndex { !$0.isEmpty })
        #expect(pools[firstServed...].allSatisfy { !$0.isEmpty }, "\(pools)")
        await controller.down()
        #expect(fixture.runtime.running.isEmpty)
    }

    @Test("a new version that never becomes healthy is aborted: its instances stop, traffic never left the old one")
    func unhealthy() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B")
        let controller = fixture.controller()
        _ = try await controller.apply(fixture.spec(a))
        let serving = fixture.front.active
        fixture.runtime.failHealth(of: b)
        let record = try await controller.apply(fixture.spec(b))
        #expect(record.state == .failed)
        #expect(record.reason?.contains("answered 500") == true, "\(record.reason ?? "")")
        #expect(fixture.front.active == serving)
        #expect(fixture.front.pools.allSatisfy { Set($0).isSubset(of: Set(serving)) || $0.isEmpty }, "B never took traffic")
        #expect(fixture.runtime.running(b).isEmpty)
        #expect(await controller.status().current == a)
        await controller.down()
    }

    @Test("a rolling rollout that fails half way restores the old instances it had retired")
    func rollingRestore() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B")
        let controller = fixture.controller()
        _ = try await controller.apply(fixture.spec(a, replicas: 3, strategy: .rolling))
        #expect(fixture.runtime.running(a).count == 3)
        // A's instances were starts 1 to 3; B's first is start 4 and serves, its second (start 5) never answers.
        fixture.runtime.failHealth(ofStart: 5)
        let record = try await controller.apply(fixture.spec(b, replicas: 3, strategy: .rolling))
        #expect(record.state == .failed)
        #expect(record.transitions.contains { $0.state == .aborting })
        #expect(fixture.runtime.running(b).isEmpty)
        #expect(fixture.runtime.running(a).count == 3, "the retired A instance was replaced")
        #expect(fixture.front.active == fixture.runtime.running(a))
        await controller.down()
    }

    @Test("an instance that exits is taken out of the pool, started again after its backoff, and serves again once healthy")
    func restart() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A")
        let controller = fixture.controller()
        _ = try await controller.apply(fixture.spec(a))
        let victim = try #require(fixture.runtime.running.first)
        victim.exit(1)
        #expect(await eventually { fixture.front.active.count == 1 && !fixture.front.active.contains(victim.id) } || fixture.front.active.count == 2,
                "out of the pool, or already back")
        #expect(await eventually { fixture.front.active.count == 2 && fixture.runtime.running(a).contains(victim.id) })
        let status = await controller.status()
        #expect(status.instances.first { $0.id == victim.id }?.restarts == 1)
        #expect(fixture.front.pools.contains { !$0.contains(victim.id) && !$0.isEmpty }, "it left the pool while it was down")
        await controller.down()
    }

    @Test("a front that dies is started again on the listening socket the controller kept: a connection made while no front ran waits in its queue for the new one; down lets the socket go")
    func deadFrontKeepsItsSocket() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let controller = fixture.controller()
        _ = try await controller.apply(fixture.spec(try fixture.image("A")))
        let port = try #require(fixture.front.heldPort())
        // The front dies: its copy of the socket goes with it; a client connects before a new front runs.
        try await fixture.front.stop()
        let client = try #require(connectLoopback(port), "the connection was refused while no front ran")
        defer { close(client) }
        #expect(await eventually { fixture.front.starts == 2 }, "the front was started again")
        let inodes = fixture.front.socketInodes
        #expect(inodes.count == 2 && inodes[0] == inodes[1], "the new front got the same socket: \(inodes)")
        // The connection queued while no front ran is there for the new front to accept.
        let served = try #require(fixture.front.heldSocket())
        var ready = pollfd(fd: served, events: Int16(POLLIN), revents: 0)
        #expect(poll(&ready, 1, 5000) == 1)
        let accepted = accept(served, nil, nil)
        #expect(accepted >= 0)
        if accepted >= 0 { close(accepted) }
        close(served)

        await controller.down()
        #expect(connectLoopback(port) == nil, "after down nothing holds the socket: connections are refused")
    }

    @Test("fronts that keep exiting as they start are started again after a growing backoff, status says so, and connections are refused until one stays up")
    func crashLoopingFront() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let controller = fixture.controller()
        _ = try await controller.apply(fixture.spec(try fixture.image("A")))
        let port = try #require(fixture.front.heldPort())
        #expect(await controller.status().frontRestarts == FrontRestartStatus(restarts: 0, quickExits: 0, refusingConnections: false, crashLoop: false, nextStartIn: nil))

        fixture.front.exitAtStart(true)
        try await fixture.front.stop()
        // Read while the backoff holds (not in the instant a front is being started).
        var seen: FrontRestartStatus?
        #expect(await eventually {
            seen = await controller.status().frontRestarts
            return seen?.crashLoop == true && seen?.nextStartIn != nil
        }, "status says the front is in a crash loop")
        let looping = try #require(seen)
        // The front that apply started may have been young enough for its exit to count as the first quick one.
        #expect(looping.quickExits >= FrontRestarts.crashLoopAfter && looping.restarts >= FrontRestarts.crashLoopAfter - 1 && looping.refusingConnections,
                "\(looping)")
        #expect(connectLoopback(port) == nil, "in a crash loop the kept socket is let go: connections are refused")
        // The backoff grows to 8 s between starts (40 ms here, with time 200 times faster): a lower bound,
        // which a busy machine only lengthens.
        #expect(await eventually { fixture.front.starts >= 7 })
        let times = fixture.front.startTimes
        let lastGap = (times[times.count - 1] - times[times.count - 2]) * 200
        #expect(lastGap >= .seconds(7), "the last two starts were \(lastGap) apart in the controller's time")

        fixture.front.exitAtStart(false)
        #expect(await eventually { fixture.front.isRunning }, "a front that stays up is started")
        // Once it has run for 10 s (50 ms here), the loop is over.
        #expect(await eventually { await controller.status().frontRestarts?.quickExits == 0 })
        let recovered = try #require(await controller.status().frontRestarts)
        #expect(!recovered.crashLoop && recovered.nextStartIn == nil)
        let newPort = try #require(fixture.front.heldPort())
        let client = try #require(connectLoopback(newPort), "the new front's socket takes connections")
        close(client)
        await controller.down()
    }

    @Test("a front that dies while a rollout waits (for an old instance's drain) is started again at once, and again after its backoff, without waiting for the rollout")
    func frontDiesDuringRollout() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (controller, b, apply) = try await rolloutHeldAtItsFirstDrain(fixture)
        // Killed three times as it starts: the last start waits for a backoff, still within the rollout.
        for kill in 1...3 {
            try await fixture.front.stop()
            #expect(await eventually { fixture.front.isRunning }, "kill \(kill): the front was started again while the rollout waited")
        }
        #expect(fixture.front.starts == 4)
        #expect(fixture.front.drains.waiting == 1, "the rollout still waits")
        fixture.front.drains.release()
        let record = try await apply.value
        #expect(record.state == .succeeded, "\(record.transitions.map(\.state))")
        #expect(fixture.front.active == fixture.runtime.running(b), "the front started last has the rollout's pool")
        await controller.down()
    }

    @Test("the watchdog keeps the front's and the instances' logs to their limit: a larger one is copied to .1 and emptied")
    func logsKeptToTheirLimit() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let controller = fixture.controller()
        let image = try fixture.image("A")
        _ = try await controller.apply(fixture.spec(image))
        let instance = try #require(fixture.runtime.running(image).first)
        let logs = [fixture.paths.frontLog("web"), fixture.paths.instances + "/" + instance + "/output.log"]
        let content = Data(repeating: UInt8(ascii: "x"), count: LogFile.defaultLimit) + Data("the last line\n".utf8)
        for log in logs {
            try FileManager.default.createDirectory(atPath: (log as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(to: URL(fileURLWithPath: log))
        }
        for log in logs {
            #expect(await eventually { ((try? FileManager.default.attributesOfItem(atPath: log)[.size] as? Int) ?? -1) == 0 }, "\(log) was emptied")
            let kept = try Data(contentsOf: URL(fileURLWithPath: log + ".1"))
            #expect(kept == content.suffix(LogFile.defaultLimit), "\(log).1 holds its last \(LogFile.defaultLimit) bytes, not \(kept.count)")
        }
        await controller.down()
    }

    @Test("a front whose control socket is gone while its process still runs is not given the kept socket: the front started in its place listens on a socket of its own")
    func liveFrontKeepsItsSocketToItself() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        // The front reports a process that runs (this one) from its start.
        fixture.front.report(pid: getpid())
        let controller = fixture.controller()
        _ = try await controller.apply(fixture.spec(try fixture.image("A")))
        try await fixture.front.stop()
        #expect(await eventually { fixture.front.starts == 2 }, "a front was started")
        let inodes = fixture.front.socketInodes
        #expect(inodes.count == 2 && inodes[0] != inodes[1], "the new front got a socket of its own: \(inodes)")
        await controller.down()
    }

    @Test("a daemon that starts again adopts the running instances and front, restarts nothing, and aborts the rollout it interrupted")
    func readoption() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B")
        let first = fixture.controller()
        _ = try await first.apply(fixture.spec(a))
        let serving = fixture.front.active
        let started = fixture.runtime.instances.count
        // The daemon dies while a rollout of B is shifting traffic.
        var interrupted = RolloutRecord(service: "web", image: b, strategy: .blueGreen, kind: "deploy")
        interrupted.enter(.shifting)
        ServiceState(paths: fixture.paths, service: "web").saveRollout(interrupted)

        let next = fixture.controller()
        #expect(Set(await next.adoptInstances()) == Set(serving))
        let record = await next.beginReattach(fixture.spec(a)).value
        #expect(record.state == .succeeded && record.kind == "readopt", "\(record.reason ?? "")")
        #expect(fixture.runtime.instances.count == started, "nothing was started again")
        #expect(fixture.front.active == serving && fixture.front.starts == 1)
        let aborted = try #require(ReleaseHistory(paths: fixture.paths, service: "web").records().last { $0.image == b })
        #expect(aborted.state == .failed && aborted.reason?.contains("interrupted") == true)
        await next.down()
    }
}

@Suite("A service's controller against operations that meet a re-adoption", .mayBlock)
struct ReadoptionRaceTests {
    @Test("an apply that waited for a re-adoption, when the service is taken down meanwhile, is refused and leaves nothing running")
    func downWhileWaiting() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A")
        try ReleaseHistory(paths: fixture.paths, service: "web").saveCurrent(fixture.spec(a))
        // Nothing of A runs, so the re-adoption rolls it out afresh; its instances never answer, so it
        // lasts until the health deadline.
        fixture.runtime.failHealth(of: a)
        let controller = fixture.controller()
        let readoption = await controller.beginReattach(fixture.spec(a))
        let apply = Task { () async throws(DeployError) -> RolloutRecord in try await controller.apply(fixture.spec(a)) }
        await controller.down()
        _ = await readoption.value
        let applied = await apply.result
        guard case .failure(DeployError.takenDown) = applied else {
            Issue.record("the apply ran on a service taken down: \(applied)")
            return
        }
        #expect(fixture.runtime.running.isEmpty, "\(fixture.runtime.running.map(\.id))")
        #expect(ReleaseHistory(paths: fixture.paths, service: "web").current() == nil, "down is not undone at the next start")
    }

    @Test("a front that runs an older executable is replaced by the re-adoption, even when an apply is waiting for it")
    func outdatedFrontReplaced() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A"), b = try fixture.image("B")
        _ = try await fixture.controller().apply(fixture.spec(a))
        fixture.front.install("stand-in 2")
        let next = fixture.controller()
        _ = await next.adoptInstances()
        let readoption = await next.beginReattach(fixture.spec(a))
        let record = try await next.apply(fixture.spec(b))
        #expect(record.state == .succeeded, "\(record.reason ?? "")")
        #expect(await readoption.value.state == .succeeded)
        #expect(fixture.front.replacements == 1)
        #expect(try await fixture.front.state().executable == "stand-in 2")
        await next.down()
    }

    @Test("a down while a rolling rollout drains an old instance ends the rollout as failed, starts nothing more, and leaves nothing running")
    func downDuringApply() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let (controller, _, apply) = try await rolloutHeldAtItsFirstDrain(fixture)
        let down = Task { await controller.down() }
        #expect(await eventually { await controller.takenDown })
        fixture.front.drains.release()
        await down.value
        let record = try await apply.value
        #expect(record.state == .failed, "\(record.transitions.map(\.state))")
        #expect(fixture.runtime.running.isEmpty, "\(fixture.runtime.running.map(\.id))")
        #expect(fixture.runtime.instances.count == 3, "no instance started after the down: \(fixture.runtime.instances.map(\.id))")
        #expect(ReleaseHistory(paths: fixture.paths, service: "web").current() == nil)
        #expect(ServiceState(paths: fixture.paths, service: "web").instances().isEmpty)
    }

    @Test("a down while a rollout fetches its release from a registry that never answers returns promptly; the rollout fails")
    func downDuringFetch() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A")
        // A registry that accepts connections (into its backlog) and never answers.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(silent) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(silent, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(silent, $0, &length) } }
        #expect(listen(silent, 16) == 0)
        var spec = fixture.spec(a)
        spec.source = .registry(base: "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))")
        let controller = fixture.controller()
        let apply = Task { () async throws(DeployError) -> RolloutRecord in try await controller.apply(spec) }
        #expect(await eventually { await controller.status().lastRollout?.state == .verifying })
        // Bounded by the test, not by the registry client's minutes of timeouts and retries.
        let downEnded = await withTaskGroup(of: Bool.self) { group in
            group.addTask { await controller.down(); return true }
            group.addTask { try? await Task.sleep(for: .seconds(60)); return false }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        #expect(downEnded, "down waited for the fetch")
        let record = try await apply.value
        #expect(record.state == .failed)
        #expect(fixture.runtime.instances.isEmpty)
    }

    @Test("a down during a re-adoption that starts missing instances stops starting them; the re-adoption is recorded failed")
    func downDuringReadoptionStarts() async throws {
        let fixture = ServiceFixture()
        defer { fixture.remove() }
        let a = try fixture.image("A")
        _ = try await fixture.controller().apply(fixture.spec(a, replicas: 1))
        // The daemon starts again with a spec that wants five: four are missing.
        let next = fixture.controller()
        _ = await next.adoptInstances()
        fixture.runtime.checks.hold()
        let readoption = await next.beginReattach(fixture.spec(a, replicas: 5))
        #expect(await eventually { fixture.runtime.checks.waiting == 1 }, "the first missing instance waits for its check")
        let down = Task { await next.down() }
        #expect(await eventually { await next.takenDown })
        fixture.runtime.checks.release()
        await down.value
        let record = await readoption.value
        #expect(record.state == .failed, "\(record.transitions.map(\.state))")
        #expect(fixture.runtime.instances.count == 2, "no missing instance started after the down: \(fixture.runtime.instances.map(\.id))")
        #expect(fixture.runtime.running.isEmpty)
    }
}

/// A service serving A (two instances), and a rolling rollout of B held at its first step: B's first
/// instance serves, and A's first drains, held there by the front's drain gate.
private func rolloutHeldAtItsFirstDrain(_ fixture: ServiceFixture) async throws
    -> (ServiceController, PinnedImage, Task<RolloutRecord, any Error>) {
    let a = try fixture.image("A"), b = try fixture.image("B")
    let controller = fixture.controller()
    _ = try await controller.apply(fixture.spec(a, replicas: 2, strategy: .rolling))
    fixture.front.drains.hold()
    let apply = Task { () async throws(DeployError) -> RolloutRecord in
        try await controller.apply(fixture.spec(b, replicas: 2, strategy: .rolling))
    }
    #expect(await eventually { fixture.front.drains.waiting == 1 }, "an old instance drains")
    return (controller, b, apply)
}
