/// How a canary rollout (`strategy: canary`) shifts requests to the new version and judges it.
///
/// ```yaml
/// canary:
///   steps: [5, 25, pause, 50, 100]   # percent of requests to the new version; pause waits for `imgdeploy promote`
///   stepDuration: 30s                # each step is observed this long, and until it has minRequests
///   minRequests: 100                 # requests the new version answered in the step
///   analysis:
///     maxErrorRate: 1%               # 5xx answers and failed connections of the new version
///     maxErrorRateIncrease: 0.5%     # over the old version's, in the same window
///     maxP99: 500ms
///     maxP99Ratio: 1.5               # new p99 ÷ old p99, in the same window
///   sticky: cookie                   # a client stays on the side it first got
/// ```
public struct CanaryPolicy: Sendable, Codable, Equatable {
    /// One step of the rollout.
    public enum Step: Sendable, Equatable, Codable, CustomStringConvertible {
        /// This percent of new requests goes to the new version, for a step's duration.
        case percent(Int)
        /// The weight stays where the step before left it until `imgdeploy promote` (or `abort`).
        case pause

        public var description: String {
            switch self {
            case .percent(let value): return "\(value)%"
            case .pause: return "pause"
            }
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int.self) { self = .percent(value); return }
            let text = try container.decode(String.self)
            guard text == "pause" else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "a canary step is a percent or 'pause', not '\(text)'")
            }
            self = .pause
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .percent(let value): try container.encode(value)
            case .pause: try container.encode("pause")
            }
        }
    }

    /// What a step's window must show for the rollout to go on. Rates are fractions (1% is 0.01); a rule
    /// left out is not checked.
    public struct Analysis: Sendable, Codable, Equatable {
        public var maxErrorRate: Double?
        public var maxErrorRateIncrease: Double?
        public var maxP99: Duration?
        public var maxP99Ratio: Double?

        public init(maxErrorRate: Double? = 0.01, maxErrorRateIncrease: Double? = nil, maxP99: Duration? = nil, maxP99Ratio: Double? = nil) {
            self.maxErrorRate = maxErrorRate
            self.maxErrorRateIncrease = maxErrorRateIncrease
            self.maxP99 = maxP99
            self.maxP99Ratio = maxP99Ratio
        }
    }

    /// How a client is kept on one side.
    public enum Sticky: String, Sendable, Codable, Equatable, CaseIterable {
        /// The front sets a cookie naming the side a client got; a request that carries it goes to that side.
        case cookie
    }

    public var steps: [Step]
    public var stepDuration: Duration
    public var minRequests: Int
    public var analysis: Analysis
    public var sticky: Sticky?

    public init(steps: [Step] = [.percent(10), .percent(50), .percent(100)], stepDuration: Duration = .seconds(30), minRequests: Int = 100,
                analysis: Analysis = Analysis(), sticky: Sticky? = nil) {
        self.steps = steps
        self.stepDuration = stepDuration
        self.minRequests = minRequests
        self.analysis = analysis
        self.sticky = sticky
    }

    /// A step that waits this many step durations without reaching `minRequests` aborts the rollout: a
    /// verdict needs traffic, and a rollout that never gets any must not hang (or pass unjudged).
    public static let starvedAfterDurations = 10

    /// What is wrong with the policy; empty when it is valid.
    public var problems: [String] {
        var problems: [String] = []
        let percents = steps.compactMap { step -> Int? in if case .percent(let value) = step { return value } else { return nil } }
        if percents.isEmpty || percents.last != 100 || steps.last != .percent(100) {
            problems.append("'canary.steps' must end with 100 (every request on the new version), e.g. [5, 25, 50, 100]")
        }
        if let bad = percents.first(where: { !(1...100).contains($0) }) {
            problems.append("a canary step is a percent from 1 to 100, not \(bad)")
        } else if zip(percents, percents.dropFirst()).contains(where: { $0 >= $1 }) {
            problems.append("'canary.steps' must grow from step to step, not \(steps.map(\.description).joined(separator: ", "))")
        }
        if steps.count > 100 { problems.append("'canary.steps' may hold at most 100 steps") }
        if stepDuration <= .zero || stepDuration > .seconds(86_400) { problems.append("'canary.stepDuration' must be longer than zero and at most a day") }
        if !(1...10_000_000).contains(minRequests) { problems.append("'canary.minRequests' must be from 1 to 10000000, not \(minRequests)") }
        for (name, rate) in [("maxErrorRate", analysis.maxErrorRate), ("maxErrorRateIncrease", analysis.maxErrorRateIncrease)] {
            if let rate, !(rate >= 0 && rate <= 1) { problems.append("'canary.analysis.\(name)' must be from 0% to 100%") }
        }
        if let p99 = analysis.maxP99, p99 < .milliseconds(1) || p99 > .seconds(3600) { problems.append("'canary.analysis.maxP99' must be from 1ms to an hour") }
        if let ratio = analysis.maxP99Ratio, !(ratio >= 1 && ratio <= 1000) { problems.append("'canary.analysis.maxP99Ratio' must be from 1 to 1000") }
        if analysis == Analysis(maxErrorRate: nil) {
            problems.append("'canary.analysis' names no rule: a step would pass unjudged; give maxErrorRate, maxErrorRateIncrease, maxP99 and/or maxP99Ratio")
        }
        return problems
    }
}
