import ReleaseSpec

/// When the watchdog starts a front that is gone again, and whether the fronts are in a crash loop.
///
/// A front that dies once (killed, a crash) is started again at once, on the kept listening socket, so
/// that it costs no more than the second it takes to notice. Fronts that keep dying soon after they
/// start (a broken executable, a host out of memory) are started again after a growing backoff, as
/// Kubernetes does with a container in CrashLoopBackOff, and from the third such exit in a row the
/// service counts as down: the kept socket is let go, so that clients are refused at once (and a load
/// balancer in front of this machine sees it) rather than wait in a queue nobody may answer.
struct FrontRestarts: Sendable, Equatable {
    /// A front that ran this long before it was found gone did not exit "soon after its start".
    static let stableAfter: Duration = .seconds(10)
    /// Quick exits in a row from which the service counts as down, and the kept socket is let go.
    static let crashLoopAfter = 3
    /// The longest wait between starts: the front is the whole service, so it is tried often.
    static let longestBackoff: Duration = .seconds(8)

    /// Fronts started in place of one that was gone since this controller began (whether or not they came up).
    private(set) var restarts = 0
    /// Fronts in a row that were found gone within ``stableAfter`` of their start, or that failed to start.
    private(set) var quickExits = 0
    /// When the serving front was started here (or first answered, when it was not started here); nil for
    /// a front adopted at the daemon's start and not yet asked (its exit is not counted as quick).
    private var startedAt: Duration?
    /// The front is gone and is started again no sooner than this (set once per front found gone).
    private(set) var nextStart: Duration?
    /// Starts that have ended, in success or failure: a caller that saw the front gone before the last of
    /// them acts on news that is stale.
    private(set) var attempts = 0

    /// The wait before the next start after `quickExits` quick exits in a row: none after the first, then
    /// 1, 2, 4 and 8 s.
    static func backoff(afterQuickExits quickExits: Int) -> Duration {
        guard quickExits > 1 else { return .zero }
        return min(longestBackoff, .seconds(1 << min(quickExits - 2, 8)))
    }

    /// Three or more quick exits in a row: the service is down until a front stays up.
    var inCrashLoop: Bool { quickExits >= Self.crashLoopAfter }

    /// A front was started here at `now`.
    mutating func started(at now: Duration) {
        attempts += 1
        startedAt = now
        nextStart = nil
    }

    /// A start failed at `now` (the front did not come up, or was gone before it took the pool).
    mutating func failedToStart(at now: Duration) {
        attempts += 1
        quickExits += 1
        startedAt = nil
        nextStart = now + Self.backoff(afterQuickExits: quickExits)
    }

    /// The front answers at `now` (it is back, however it came: no backoff holds); once it has run for
    /// ``stableAfter``, the exits before it are forgotten. A front not started here (one that took the
    /// service back after an upgrade, one that came up after its start was given up on) is timed from now.
    mutating func answered(at now: Duration) {
        nextStart = nil
        guard let startedAt else {
            startedAt = now
            return
        }
        if now - startedAt >= Self.stableAfter { quickExits = 0 }
    }

    /// The front was found gone at `now`: when to start it again. A front already found gone keeps the
    /// time set then.
    mutating func gone(at now: Duration) -> Duration {
        if let nextStart { return nextStart }
        let quick = startedAt.map { now - $0 < Self.stableAfter } ?? false
        quickExits = quick ? quickExits + 1 : 0
        startedAt = nil
        let next = now + Self.backoff(afterQuickExits: quickExits)
        nextStart = next
        return next
    }

    /// A front is about to be started in place of one that is gone (counted whether or not it comes up).
    mutating func restarting() { restarts += 1 }
}

/// The front's restarts by the daemon's watchdog, as `status` shows them.
public struct FrontRestartStatus: Sendable, Codable, Equatable {
    /// Fronts started again since the daemon started (after one was killed, crashed or failed to start).
    public var restarts: Int
    /// Fronts in a row that exited within 10 s of their start, or failed to start.
    public var quickExits: Int
    /// No front answers and the daemon holds no copy of its socket: new connections are refused (in a
    /// crash loop, or after a start failed).
    public var refusingConnections: Bool
    /// Three or more quick exits in a row, and no front runs: the service is down, and new connections are
    /// refused, until a front stays up.
    public var crashLoop: Bool
    /// While the front is gone and its start waits for the backoff: seconds until the next start.
    public var nextStartIn: Double?

    public init(restarts: Int, quickExits: Int, refusingConnections: Bool, crashLoop: Bool, nextStartIn: Double?) {
        self.restarts = restarts
        self.quickExits = quickExits
        self.refusingConnections = refusingConnections
        self.crashLoop = crashLoop
        self.nextStartIn = nextStartIn
    }
}

extension FrontRestarts {
    /// What `status` shows at `now`. `frontGone`: no front answers its control socket; `refusing`: and
    /// none runs, and no copy of its socket is kept.
    func status(at now: Duration, frontGone: Bool, refusing: Bool) -> FrontRestartStatus {
        let wait = frontGone ? nextStart.map { Double(($0 - now).milliseconds) / 1000 } : nil
        return FrontRestartStatus(restarts: restarts, quickExits: quickExits, refusingConnections: refusing,
                                  crashLoop: inCrashLoop && nextStart != nil && frontGone,
                                  nextStartIn: wait.flatMap { $0 > 0 ? $0 : nil })
    }
}
