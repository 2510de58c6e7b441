@testable import DeployerCore
import Testing
import TestScheduling

@Suite("When a front that is gone is started again", .mayBlock)
struct FrontRestartsTests {
    @Test("a front that dies once, or after running a while, is started again at once, and the port stays open")
    func oneDeathIsRestartedAtOnce() {
        var restarts = FrontRestarts()
        restarts.started(at: .seconds(0))
        #expect(restarts.gone(at: .seconds(3)) == .seconds(3))
        #expect(restarts.quickExits == 1 && !restarts.inCrashLoop)
        restarts.started(at: .seconds(4))
        // This one ran longer than stableAfter: the quick exit before it no longer counts.
        #expect(restarts.gone(at: .seconds(60)) == .seconds(60))
        #expect(restarts.quickExits == 0 && !restarts.inCrashLoop)
    }

    @Test("a front adopted at the daemon's start is of unknown age: its exit is not counted as quick")
    func adoptedFrontIsNotQuick() {
        var restarts = FrontRestarts()
        #expect(restarts.gone(at: .seconds(1)) == .seconds(1))
        #expect(restarts.quickExits == 0)
    }

    @Test("a front that came back without being started here (one that took the service back) is timed from when it first answered: 10 s later the crash loop is over")
    func frontNotStartedHereEndsTheLoop() {
        var restarts = FrontRestarts()
        for second in 0..<3 { restarts.failedToStart(at: .seconds(Int64(second))) }
        #expect(restarts.inCrashLoop)
        restarts.answered(at: .seconds(5))
        restarts.answered(at: .seconds(14))
        #expect(restarts.inCrashLoop)
        restarts.answered(at: .seconds(15))
        #expect(!restarts.inCrashLoop && restarts.quickExits == 0)
    }

    @Test("fronts that keep dying as they start wait 1, 2, 4 and then 8 s, and from the third in a row the service is down")
    func crashLoopBacksOff() {
        var restarts = FrontRestarts()
        var now = Duration.seconds(0)
        var waits: [Duration] = []
        var crashLoop: [Bool] = []
        for _ in 0..<7 {
            restarts.started(at: now)
            now += .milliseconds(500)
            let next = restarts.gone(at: now)
            // Asked again before the backoff has passed (the watchdog, each second): the same time.
            #expect(restarts.gone(at: now + .milliseconds(100)) == next)
            waits.append(next - now)
            crashLoop.append(restarts.inCrashLoop)
            now = next
        }
        #expect(waits == [.zero, .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(8), .seconds(8)])
        #expect(crashLoop == [false, false, true, true, true, true, true])
        #expect(restarts.status(at: now - .seconds(3), frontGone: true, refusing: true) == FrontRestartStatus(restarts: 0, quickExits: 7, refusingConnections: true, crashLoop: true, nextStartIn: 3))
    }

    @Test("starts that fail count as quick exits; a front that then stays up for 10 s ends the crash loop")
    func failedStartsCountAndStableFrontResets() {
        var restarts = FrontRestarts()
        for second in 0..<3 { restarts.failedToStart(at: .seconds(Int64(second * 10))) }
        #expect(restarts.quickExits == 3 && restarts.inCrashLoop)
        #expect(restarts.nextStart == .seconds(22))
        restarts.started(at: .seconds(22))
        // Up, but young: still counted as in the loop, though nothing waits and the port is open.
        restarts.answered(at: .seconds(25))
        #expect(restarts.quickExits == 3)
        #expect(restarts.status(at: .seconds(25), frontGone: false, refusing: false) == FrontRestartStatus(restarts: 0, quickExits: 3, refusingConnections: false, crashLoop: false, nextStartIn: nil))
        restarts.answered(at: .seconds(32))
        #expect(restarts.quickExits == 0 && !restarts.inCrashLoop)
    }

    @Test("a front that answers again (one that took the service back) ends the wait for a start")
    func answeringFrontEndsTheWait() {
        var restarts = FrontRestarts()
        restarts.started(at: .seconds(0))
        _ = restarts.gone(at: .seconds(1))
        restarts.started(at: .seconds(1))
        #expect(restarts.gone(at: .seconds(2)) == .seconds(3))
        restarts.answered(at: .seconds(2.5))
        #expect(restarts.nextStart == nil)
        #expect(restarts.status(at: .seconds(2.5), frontGone: false, refusing: false).nextStartIn == nil)
    }
}
