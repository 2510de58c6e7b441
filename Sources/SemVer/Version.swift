/// A version as Semantic Versioning 2.0.0 defines it: `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`.
///
/// Parsing is strict: no leading zeros in numeric parts, no empty identifiers, no leading `v`.
/// Ordering is SemVer precedence; build metadata does not take part in it, but it does take part in
/// equality, since `1.0.0+a` and `1.0.0+b` are different tags.
public struct Version: Hashable, Sendable, CustomStringConvertible {
    public let major: UInt64
    public let minor: UInt64
    public let patch: UInt64
    /// Dot-separated pre-release identifiers; empty for a release.
    public let prerelease: [Identifier]
    /// Dot-separated build metadata identifiers.
    public let build: [String]

    /// One pre-release identifier: numeric identifiers compare numerically and below alphanumeric ones.
    public enum Identifier: Hashable, Sendable, Comparable, CustomStringConvertible {
        case numeric(UInt64)
        case alphanumeric(String)

        public var description: String {
            switch self {
            case .numeric(let n): return String(n)
            case .alphanumeric(let s): return s
            }
        }

        public static func < (lhs: Identifier, rhs: Identifier) -> Bool {
            switch (lhs, rhs) {
            case let (.numeric(a), .numeric(b)): return a < b
            case (.numeric, .alphanumeric): return true
            case (.alphanumeric, .numeric): return false
            case let (.alphanumeric(a), .alphanumeric(b)): return Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8))
            }
        }
    }

    /// Why a string is not a SemVer 2.0.0 version.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let input: String
        public let reason: String
        public var description: String {
            "'\(input)' is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.4.0): \(reason)"
        }
    }

    public init(major: UInt64, minor: UInt64, patch: UInt64, prerelease: [Identifier] = [], build: [String] = []) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
        self.build = build
    }

    /// Parses a version strictly.
    public init(parsing input: String) throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError(input: input, reason: reason) }
        if input.hasPrefix("v") || input.hasPrefix("V") {
            throw fail("drop the leading 'v' (write \(input.dropFirst()))")
        }
        var rest = Substring(input)
        var buildPart: Substring?
        if let plus = rest.firstIndex(of: "+") {
            buildPart = rest[rest.index(after: plus)...]
            rest = rest[..<plus]
        }
        var prePart: Substring?
        if let dash = rest.firstIndex(of: "-") {
            prePart = rest[rest.index(after: dash)...]
            rest = rest[..<dash]
        }
        let core = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard core.count == 3 else { throw fail("expected three numbers separated by dots") }
        var numbers: [UInt64] = []
        for (name, part) in zip(["major", "minor", "patch"], core) {
            guard !part.isEmpty, part.utf8.allSatisfy(Version.isDigit) else {
                throw fail("the \(name) version '\(part)' is not a number")
            }
            guard part == "0" || part.first != "0" else { throw fail("the \(name) version '\(part)' has a leading zero") }
            guard let n = UInt64(part) else { throw fail("the \(name) version '\(part)' is too large") }
            numbers.append(n)
        }
        var prerelease: [Identifier] = []
        if let prePart {
            for id in prePart.split(separator: ".", omittingEmptySubsequences: false) {
                guard !id.isEmpty else { throw fail("a pre-release identifier is empty") }
                guard id.utf8.allSatisfy(Version.isIdentifierByte) else {
                    throw fail("the pre-release identifier '\(id)' may hold only [0-9A-Za-z-]")
                }
                if id.utf8.allSatisfy(Version.isDigit) {
                    guard id == "0" || id.first != "0" else {
                        throw fail("the numeric pre-release identifier '\(id)' has a leading zero")
                    }
                    guard let n = UInt64(id) else { throw fail("the pre-release identifier '\(id)' is too large") }
                    prerelease.append(.numeric(n))
                } else {
                    prerelease.append(.alphanumeric(String(id)))
                }
            }
        }
        var build: [String] = []
        if let buildPart {
            for id in buildPart.split(separator: ".", omittingEmptySubsequences: false) {
                guard !id.isEmpty else { throw fail("a build metadata identifier is empty") }
                guard id.utf8.allSatisfy(Version.isIdentifierByte) else {
                    throw fail("the build metadata identifier '\(id)' may hold only [0-9A-Za-z-]")
                }
                build.append(String(id))
            }
        }
        self.init(major: numbers[0], minor: numbers[1], patch: numbers[2], prerelease: prerelease, build: build)
    }

    public var description: String {
        var text = "\(major).\(minor).\(patch)"
        if !prerelease.isEmpty { text += "-" + prerelease.map(\.description).joined(separator: ".") }
        if !build.isEmpty { text += "+" + build.joined(separator: ".") }
        return text
    }

    /// Whether this is a pre-release (has pre-release identifiers).
    public var isPrerelease: Bool { !prerelease.isEmpty }

    /// The version without build metadata.
    public var withoutBuild: Version { Version(major: major, minor: minor, patch: patch, prerelease: prerelease) }

    static func isDigit(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) }
    static func isIdentifierByte(_ b: UInt8) -> Bool {
        isDigit(b) || (0x41...0x5a).contains(b) || (0x61...0x7a).contains(b) || b == 0x2d
    }
}

extension Version: Comparable {
    /// SemVer precedence. Versions that differ only in build metadata have equal precedence; this
    /// ordering then falls back to comparing build metadata so that sorting is total and stable.
    public static func < (lhs: Version, rhs: Version) -> Bool {
        let order = lhs.comparePrecedence(to: rhs)
        if order != 0 { return order < 0 }
        return lhs.build.joined(separator: ".").utf8.lexicographicallyPrecedes(rhs.build.joined(separator: ".").utf8)
    }

    /// Compares by SemVer precedence alone: negative, zero or positive.
    public func comparePrecedence(to other: Version) -> Int {
        if major != other.major { return major < other.major ? -1 : 1 }
        if minor != other.minor { return minor < other.minor ? -1 : 1 }
        if patch != other.patch { return patch < other.patch ? -1 : 1 }
        switch (prerelease.isEmpty, other.prerelease.isEmpty) {
        case (true, true): return 0
        case (true, false): return 1
        case (false, true): return -1
        case (false, false): break
        }
        for (a, b) in zip(prerelease, other.prerelease) where a != b {
            return a < b ? -1 : 1
        }
        if prerelease.count == other.prerelease.count { return 0 }
        return prerelease.count < other.prerelease.count ? -1 : 1
    }
}
