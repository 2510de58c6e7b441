/// A set of versions, in the range syntax npm uses:
///
/// - exact `1.2.3` (or `=1.2.3`), comparators `>1.2.3`, `>=1.2.0 <2.0.0` (space means "and"),
/// - `^1.2.3` (same major; for 0.x the same minor; for 0.0.x the same patch), `~1.2.3` (same minor),
/// - x-ranges `1.x`, `1.2.*`, `1`, `*`, hyphen ranges `1.2.3 - 2.3.4`,
/// - alternatives joined by `||`.
///
/// Pre-releases are excluded unless asked for: a pre-release version matches only if a comparator of the
/// same alternative names a pre-release of the same `major.minor.patch` (as npm does), or if
/// `includePrerelease` is set.
public struct VersionRange: Sendable, CustomStringConvertible {
    /// Alternatives (`||`); each is a conjunction of comparators.
    let alternatives: [[Comparator]]
    public let text: String

    public var description: String { text }

    struct Comparator: Sendable, Equatable {
        enum Operation: Sendable { case less, lessOrEqual, greater, greaterOrEqual, equal }
        var operation: Operation
        var version: Version

        func matches(_ candidate: Version) -> Bool {
            let order = candidate.comparePrecedence(to: version)
            switch operation {
            case .less: return order < 0
            case .lessOrEqual: return order <= 0
            case .greater: return order > 0
            case .greaterOrEqual: return order >= 0
            case .equal: return order == 0
            }
        }
    }

    /// Why a string is not a range.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let input: String
        public let reason: String
        public var description: String {
            "'\(input)' is not a version range (e.g. 1.4.0, ^1.2.0, ~1.2.3, 1.x, '>=1.2.0 <2.0.0'): \(reason)"
        }
    }

    public init(parsing input: String) throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError(input: input, reason: reason) }
        var alternatives: [[Comparator]] = []
        let parts = VersionRange.split(input, on: "||")
        for part in parts {
            let tokens = VersionRange.tokens(part)
            var comparators: [Comparator] = []
            if let hyphen = tokens.firstIndex(of: "-") {
                guard tokens.count == 3, hyphen == 1 else { throw fail("a hyphen range is 'LOW - HIGH'") }
                let low = try PartialVersion(tokens[0], input: input)
                let high = try PartialVersion(tokens[2], input: input)
                comparators.append(Comparator(operation: .greaterOrEqual, version: low.lowest))
                comparators += high.isComplete ? [Comparator(operation: .lessOrEqual, version: high.lowest)] : high.upperExclusive.map { [Comparator(operation: .less, version: $0)] } ?? []
            } else {
                guard !tokens.isEmpty else {
                    throw fail(parts.count == 1 ? "it is empty (write * for any release)" : "an alternative between '||' is empty")
                }
                for token in tokens {
                    comparators += try VersionRange.comparators(token, input: input)
                }
            }
            alternatives.append(comparators)
        }
        self.alternatives = alternatives
        self.text = input
    }

    /// Whether `version` is in the range.
    public func contains(_ version: Version, includePrerelease: Bool = false) -> Bool {
        alternatives.contains { comparators in
            guard comparators.allSatisfy({ $0.matches(version) }) else { return false }
            if !version.isPrerelease || includePrerelease { return true }
            return comparators.contains {
                $0.version.isPrerelease && $0.version.major == version.major && $0.version.minor == version.minor && $0.version.patch == version.patch
            }
        }
    }

    /// The highest version of `versions` in the range, by precedence.
    public func highest(in versions: [Version], includePrerelease: Bool = false) -> Version? {
        versions.filter { contains($0, includePrerelease: includePrerelease) }.max()
    }

    // MARK: Parsing

    static func split(_ text: String, on separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(text)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }

    /// Splits on white space, keeping an operator attached to the version after it (`>= 1.2` → `>=1.2`).
    static func tokens(_ text: String) -> [String] {
        var raw = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        var result: [String] = []
        while !raw.isEmpty {
            let token = raw.removeFirst()
            if ["<", "<=", ">", ">=", "=", "^", "~"].contains(token), !raw.isEmpty {
                result.append(token + raw.removeFirst())
            } else {
                result.append(token)
            }
        }
        return result
    }

    static func comparators(_ token: String, input: String) throws(ParseError) -> [Comparator] {
        var rest = Substring(token)
        var operation = ""
        while let first = rest.first, "<>=^~".contains(first) {
            operation.append(first)
            rest = rest.dropFirst()
        }
        if rest.hasPrefix("v") {
            throw ParseError(input: input, reason: "drop the leading 'v' in '\(token)'")
        }
        let partial = try PartialVersion(String(rest), input: input)
        let lowest = partial.lowest
        switch operation {
        case "", "=":
            if partial.isComplete { return [Comparator(operation: .equal, version: lowest)] }
            return bounded(lowest, partial.upperExclusive)
        case "^":
            return bounded(lowest, partial.caretUpper)
        case "~", "~>":
            return bounded(lowest, partial.tildeUpper)
        case ">=":
            return [Comparator(operation: .greaterOrEqual, version: lowest)]
        case ">":
            if partial.isComplete { return [Comparator(operation: .greater, version: lowest)] }
            guard let above = partial.upperExclusive else { return [Comparator(operation: .less, version: Version(major: 0, minor: 0, patch: 0, prerelease: [.numeric(0)]))] }
            return [Comparator(operation: .greaterOrEqual, version: above)]
        case "<":
            return [Comparator(operation: .less, version: partial.isComplete ? lowest : lowest.floorPrerelease)]
        case "<=":
            if partial.isComplete { return [Comparator(operation: .lessOrEqual, version: lowest)] }
            return partial.upperExclusive.map { [Comparator(operation: .less, version: $0)] } ?? []
        default:
            throw ParseError(input: input, reason: "unknown operator '\(operation)' in '\(token)'")
        }
    }

    static func bounded(_ lowest: Version, _ upper: Version?) -> [Comparator] {
        [Comparator(operation: .greaterOrEqual, version: lowest)] + (upper.map { [Comparator(operation: .less, version: $0)] } ?? [])
    }
}

/// A version whose minor or patch may be missing or a wildcard (`1`, `1.2`, `1.x`, `*`).
struct PartialVersion {
    var major: UInt64?
    var minor: UInt64?
    var patch: UInt64?
    var prerelease: [Version.Identifier] = []

    init(_ text: String, input: String) throws(VersionRange.ParseError) {
        if let full = try? Version(parsing: text) {
            major = full.major; minor = full.minor; patch = full.patch; prerelease = full.prerelease
            return
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count) else {
            throw VersionRange.ParseError(input: input, reason: "'\(text)' is not a version or x-range")
        }
        var numbers: [UInt64?] = []
        var wildcard = false
        for part in parts {
            if ["x", "X", "*"].contains(part) {
                wildcard = true
                numbers.append(nil)
                continue
            }
            guard !wildcard, !part.isEmpty, part.allSatisfy(\.isNumber), part == "0" || part.first != "0", let n = UInt64(part) else {
                throw VersionRange.ParseError(input: input, reason: "'\(text)' is not a version or x-range")
            }
            numbers.append(n)
        }
        major = numbers[0]
        minor = numbers.count > 1 ? numbers[1] : nil
        patch = numbers.count > 2 ? numbers[2] : nil
        if major == nil { minor = nil }
        if minor == nil { patch = nil }
    }

    var isComplete: Bool { patch != nil }
    var lowest: Version { Version(major: major ?? 0, minor: minor ?? 0, patch: patch ?? 0, prerelease: prerelease) }

    /// The first version above everything this partial version names (`1.2` → `1.3.0-0`); nil when no
    /// version is above it (`*`, or a part that is already the largest number).
    var upperExclusive: Version? {
        guard let major else { return nil }
        guard let minor else { return Self.floor(next(major), 0, 0) }
        guard let patch else { return Self.floor(major, next(minor), 0) }
        return Self.floor(major, minor, next(patch))
    }

    /// Upper bound of `^`: the next change of the leftmost non-zero part.
    var caretUpper: Version? {
        guard let major else { return nil }
        if major > 0 || minor == nil { return Self.floor(next(major), 0, 0) }
        if minor! > 0 || patch == nil { return Self.floor(0, next(minor!), 0) }
        return Self.floor(0, 0, next(patch!))
    }

    /// Upper bound of `~`: the next minor (or the next major for `~1`).
    var tildeUpper: Version? {
        guard let major else { return nil }
        guard let minor else { return Self.floor(next(major), 0, 0) }
        return Self.floor(major, next(minor), 0)
    }

    /// `part + 1`, or nil when `part` is the largest number (no version is above it).
    private func next(_ part: UInt64) -> UInt64? {
        let (sum, overflow) = part.addingReportingOverflow(1)
        return overflow ? nil : sum
    }

    private static func floor(_ major: UInt64?, _ minor: UInt64?, _ patch: UInt64?) -> Version? {
        guard let major, let minor, let patch else { return nil }
        return Version(major: major, minor: minor, patch: patch).floorPrerelease
    }
}

extension Version {
    /// The lowest version with this core: `X.Y.Z-0`, below every pre-release of X.Y.Z.
    var floorPrerelease: Version { Version(major: major, minor: minor, patch: patch, prerelease: [.numeric(0)]) }
}
