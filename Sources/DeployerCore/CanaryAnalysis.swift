import LoadBalancer
import ReleaseSpec

/// Judges a canary step from what the front saw of both versions in the step's window.
enum CanaryAnalysis {
    /// The first rule of `rules` that `window` breaks, told with the figures that break it; nil when
    /// every rule holds. Rules that compare with the old version are skipped while it answered nothing.
    static func brokenRule(_ window: TrafficWindow, _ rules: CanaryPolicy.Analysis) -> String? {
        let new = window.canary, old = window.stable
        if let limit = rules.maxErrorRate, new.errorRate > limit {
            return "maxErrorRate: the new version's error rate was \(percent(new.errorRate)) (\(new.errors) of \(new.requests)), above \(percent(limit))"
        }
        if let limit = rules.maxErrorRateIncrease, old.requests > 0, new.errorRate - old.errorRate > limit {
            return "maxErrorRateIncrease: the new version's error rate was \(percent(new.errorRate)) against the old one's \(percent(old.errorRate)), "
                + "\(percent(new.errorRate - old.errorRate)) more, above \(percent(limit))"
        }
        if rules.maxP99 != nil || rules.maxP99Ratio != nil, new.requests > 0, new.p99Microseconds == nil {
            return "\(rules.maxP99 != nil ? "maxP99" : "maxP99Ratio"): the new version answered none of its \(new.requests) requests, so it has no latency to judge"
        }
        if let limit = rules.maxP99, let p99 = new.p99Microseconds, p99 > UInt64(max(0, limit.milliseconds)) * 1000 {
            return "maxP99: the new version's p99 was \(milliseconds(p99)), above \(DurationText.format(limit))"
        }
        if let limit = rules.maxP99Ratio, let p99 = new.p99Microseconds, let oldP99 = old.p99Microseconds, oldP99 > 0,
           Double(p99) / Double(oldP99) > limit {
            return "maxP99Ratio: the new version's p99 was \(milliseconds(p99)), \(ratio(Double(p99) / Double(oldP99)))× the old one's "
                + "\(milliseconds(oldP99)), above \(ratio(limit))×"
        }
        return nil
    }

    static func percent(_ fraction: Double) -> String {
        let value = (fraction * 1000).rounded() / 10
        return value == value.rounded() ? "\(Int(value))%" : "\(value)%"
    }

    static func milliseconds(_ microseconds: UInt64) -> String {
        let value = (Double(microseconds) / 100).rounded() / 10
        return "\(value) ms"
    }

    static func ratio(_ value: Double) -> String { "\((value * 100).rounded() / 100)" }
}
