/// Durations as release specs write them: `500ms`, `1s`, `1.5s`, `2m`, `1h`.
public enum DurationText {
    /// The duration `text` denotes, or nil when it is not one.
    public static func parse(_ text: String) -> Duration? {
        let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for unit in units where text.hasSuffix(unit.suffix) {
            let number = text.dropLast(unit.suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isNumber || $0 == "." }), let value = Double(number), value >= 0 else {
                continue
            }
            // Beyond a hundred years no duration means anything here, and beyond Int64 it cannot be held.
            let milliseconds = (value * unit.milliseconds).rounded()
            guard milliseconds.isFinite, milliseconds <= 100 * 365 * 86_400_000 else { continue }
            return .milliseconds(Int64(milliseconds))
        }
        return nil
    }

    /// `1500ms` as `1.5s`, the way a spec would write it.
    public static func format(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
