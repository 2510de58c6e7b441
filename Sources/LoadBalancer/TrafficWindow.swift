import Histogram

/// A share of new requests sent to a second set of backends (a canary's), beside the active ones.
public struct CanarySplit: Hashable, Sendable, Codable {
    /// The new version's backends.
    public var backends: [Backend]
    /// The percent of new requests they get, 0 to 100.
    public var percent: Int
    /// The window the two sides' figures are counted in: they start again from zero whenever a split with
    /// another window is applied (a canary's next step).
    public var window: UInt64
    /// Clients are kept on the side they first got with a cookie (``CanarySplit/cookieName``).
    public var sticky: Bool
    /// The rollout the split belongs to, the same through all its steps: a sticky client's cookie names
    /// it, so a cookie from an earlier rollout does not choose a side in this one.
    public var rollout: UInt64

    public init(backends: [Backend], percent: Int, window: UInt64, sticky: Bool = false, rollout: UInt64 = 1) {
        self.backends = backends
        self.percent = min(100, max(0, percent))
        self.window = window
        self.sticky = sticky
        self.rollout = rollout
    }

    /// The cookie that keeps a client on its side: `imgdeploy-canary=new.ROLLOUT` or `=old.ROLLOUT`.
    public static let cookieName = "imgdeploy-canary"

    enum CodingKeys: String, CodingKey { case backends, percent, window, sticky, rollout }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(backends: try container.decode([Backend].self, forKey: .backends), percent: try container.decode(Int.self, forKey: .percent),
                  window: try container.decode(UInt64.self, forKey: .window), sticky: try container.decodeIfPresent(Bool.self, forKey: .sticky) ?? false,
                  rollout: try container.decodeIfPresent(UInt64.self, forKey: .rollout) ?? 1)
    }
}

/// What the front saw of one side (the active backends, or the canary's) in a window.
public struct TrafficFigures: Sendable, Codable, Equatable {
    /// Answers relayed, and attempts that failed before an answer (refused or broken connections, answers
    /// that were not HTTP, timeouts): each attempt counts, a retried request once per backend it tried.
    public var requests: Int
    /// Answers with a 5xx status, and the failed attempts.
    public var errors: Int
    /// Latency from the request's head to the answer's last byte, in microseconds (nil with no answer).
    public var p50Microseconds: UInt64?
    public var p99Microseconds: UInt64?

    public init(requests: Int = 0, errors: Int = 0, p50Microseconds: UInt64? = nil, p99Microseconds: UInt64? = nil) {
        self.requests = requests
        self.errors = errors
        self.p50Microseconds = p50Microseconds
        self.p99Microseconds = p99Microseconds
    }

    /// Errors per request, 0 with no request.
    public var errorRate: Double { requests == 0 ? 0 : Double(errors) / Double(requests) }
}

/// Both sides' figures over one window.
public struct TrafficWindow: Sendable, Codable, Equatable {
    /// The split's window these figures belong to (0: no canary has been applied).
    public var window: UInt64
    /// How long the window has run.
    public var seconds: Double
    /// The active backends (the old version during a canary).
    public var stable: TrafficFigures
    /// The canary's backends.
    public var canary: TrafficFigures

    public init(window: UInt64, seconds: Double, stable: TrafficFigures, canary: TrafficFigures) {
        self.window = window
        self.seconds = seconds
        self.stable = stable
        self.canary = canary
    }
}

/// One side's counts while a window runs: the latency histogram is HdrHistogram's, with two significant
/// digits (values within 1 %) from a microsecond to an hour.
struct SideCounts {
    var requests = 0
    var errors = 0
    var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .two)

    mutating func record(status: Int?, microseconds: UInt64) {
        requests += 1
        guard let status else {
            errors += 1
            return
        }
        if status >= 500 { errors += 1 }
        _ = latency.record(min(max(microseconds, 1), 3_600_000_000))
    }

    var figures: TrafficFigures {
        let answered = latency.totalCount > 0
        return TrafficFigures(requests: requests, errors: errors, p50Microseconds: answered ? latency.valueAtPercentile(50) : nil,
                              p99Microseconds: answered ? latency.valueAtPercentile(99) : nil)
    }
}
