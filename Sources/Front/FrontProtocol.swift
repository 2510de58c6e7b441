import LoadBalancer
import ProcessLimits

/// A request to a front, one JSON line on its control socket.
///
/// | op | what the front does | answer |
/// |---|---|---|
/// | `state` | nothing | its state |
/// | `metrics` | nothing | its metrics in the Prometheus text format |
/// | `set-active` | sends new requests to `backends`, all at once, and a share to a `canary`'s if given, unless it has applied a later `version`; a front the daemon started begins accepting at the first (or 5 s after it started, if none came) | its state |
/// | `handover` | nothing yet | its state, with its listening socket attached (SCM_RIGHTS) |
/// | `listening-socket` | nothing | its state, with a copy of its listening socket attached: the daemon keeps one, so that a front that dies leaves the socket open (connections wait in its queue) for the one started in its place |
/// | `pause` | stops accepting (its successor is about to start), until `retire`, or resumes if the successor goes | `ok` |
/// | `retire` | stops accepting, finishes every connection's requests, exits | `ok` |
/// | `stop` | stops accepting, lets requests in flight finish, exits | `ok` |
///
/// `handover`, `pause` (if the state lists it in `features`) and `retire` come from the front that
/// replaces this one, on one connection.
public struct FrontRequest: Codable, Sendable {
    public enum Operation: String, Codable, Sendable {
        case state, metrics
        case setActive = "set-active"
        case handover, pause, retire, stop
        case listeningSocket = "listening-socket"
    }

    public var op: Operation
    public var backends: [Backend]?
    /// A `set-active`'s share of new requests for a canary's backends; absent: none.
    public var canary: CanarySplit?
    /// A `set-active`'s place in the order the daemon made them: one that arrives after a later one
    /// (its connection was slow, or timed out and was sent again) is not applied. Absent: always applied.
    public var version: UInt64?

    public init(_ op: Operation, backends: [Backend]? = nil, canary: CanarySplit? = nil, version: UInt64? = nil) {
        self.op = op
        self.backends = backends
        self.canary = canary
        self.version = version
    }
}

/// A front's answer.
public struct FrontReply: Codable, Sendable {
    public var ok: Bool
    public var error: String?
    public var state: FrontState?
    /// The answer to `metrics`.
    public var metrics: String?

    public init(ok: Bool, error: String? = nil, state: FrontState? = nil, metrics: String? = nil) {
        self.ok = ok
        self.error = error
        self.state = state
        self.metrics = metrics
    }
}

/// What a front is doing: who it is, what it listens on, where it sends requests, what it has counted.
public struct FrontState: Codable, Sendable, Equatable {
    public var pid: Int32
    /// The port of its listening socket.
    public var port: Int
    /// The executable it runs (device, inode, size and modification time), so a daemon whose binary is
    /// newer can tell that the front should be replaced.
    public var executable: String
    public var active: [Backend]
    /// The canary split in force beside `active`, if any (absent from fronts older than canaries).
    public var canary: CanarySplit?
    /// Each side's answers, errors and latencies since the split's window began (absent from older fronts).
    public var window: TrafficWindow?
    /// The version of the `set-active` that made `active` (absent from fronts older than versions).
    public var activeVersion: UInt64?
    /// Requests in flight, by backend name.
    public var inFlight: [String: Int]
    /// Counts since the first front of this line started (carried over each handover).
    public var counts: ProxyMetrics.Counts
    public var connections: Int
    public var retiring: Bool
    /// What this front understands beyond the first version: `pause` (an operation), `canary` (splits
    /// and their windows); absent in older fronts.
    public var features: [String]?
    /// Fronts this one replaced (directly, or before that) that still finish their connections. Each
    /// sends its connections' next requests to the instances it knew, so a daemon stops none of those
    /// while one runs. Absent in older fronts.
    public var predecessors: [RetiringFront]?
    /// Started by the daemon, it has not accepted yet: it waits for its first `set-active` (at most 5 s). A
    /// front that takes over from it waits too. Absent in older fronts.
    public var awaitingPool: Bool? = nil
}

/// A front that handed its socket over and is finishing its connections: its pid and start time, which
/// together name it for good (a pid alone may be reused once it exits).
public struct RetiringFront: Codable, Sendable, Equatable {
    public var pid: Int32
    public var startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// Whether it still runs.
    public var isRunning: Bool { ProcessStart.of(pid) == startTime }
}
