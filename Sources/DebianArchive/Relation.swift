/// One package relation, as `Depends`, `Pre-Depends`, `Provides`, `Conflicts` and `Breaks` write them
/// (Debian Policy §7.1): `name[:arch] [(op version)]`. Architecture lists (`[amd64]`) and build profiles
/// (`<!nocheck>`), which only source packages use, are read and dropped.
public struct Relation: Hashable, Sendable, CustomStringConvertible {
    public var name: String
    /// `any`, `native` or an architecture, after a `:`.
    public var architectureQualifier: String?
    public var constraint: VersionConstraint?

    public init(name: String, architectureQualifier: String? = nil, constraint: VersionConstraint? = nil) {
        self.name = name
        self.architectureQualifier = architectureQualifier
        self.constraint = constraint
    }

    public var description: String {
        name + (architectureQualifier.map { ":" + $0 } ?? "") + (constraint.map { " (\($0))" } ?? "")
    }

    /// A version relation: `<<`, `<=`, `=`, `>=`, `>>` and a version.
    public struct VersionConstraint: Hashable, Sendable, CustomStringConvertible {
        public enum Operator: String, Sendable {
            case earlier = "<<", earlierOrEqual = "<=", equal = "=", laterOrEqual = ">=", later = ">>"
        }
        public var op: Operator
        public var version: DebianVersion

        public init(op: Operator, version: DebianVersion) {
            self.op = op
            self.version = version
        }

        public var description: String { "\(op.rawValue) \(version)" }

        /// Versions equal in dpkg's order (`1.0` and `1.00`) hash alike: only the operator and epoch are hashed.
        public func hash(into hasher: inout Hasher) {
            hasher.combine(op)
            hasher.combine(version.epoch)
        }

        /// Whether `candidate` satisfies the relation, by dpkg's version order.
        public func isSatisfied(by candidate: DebianVersion) -> Bool {
            let order = DebianVersion.compare(candidate, version)
            switch op {
            case .earlier: return order < 0
            case .earlierOrEqual: return order <= 0
            case .equal: return order == 0
            case .laterOrEqual: return order >= 0
            case .later: return order > 0
            }
        }
    }

    /// Why a relation field could not be read.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// A relation field: groups separated by `,`, the alternatives of a group by `|`. Empty groups (a
    /// trailing comma) are skipped, as dpkg skips them. Read as bytes: an index has a million of these.
    public static func parseField(_ text: String) throws(ParseError) -> [[Relation]] {
        var text = text
        let result: Result<[[Relation]], ParseError> = text.withUTF8 { bytes in Result { () throws(ParseError) in
            var groups: [[Relation]] = []
            var group: [Relation] = []
            var start = 0
            var blank = true
            for i in 0...bytes.count {
                let byte: UInt8 = i < bytes.count ? bytes[i] : 0x2C
                if byte == 0x2C || byte == 0x7C {  // ',' or '|'
                    if !(byte == 0x2C && blank && group.isEmpty) {
                        group.append(try parse(bytes, start, i))
                    }
                    if byte == 0x2C {
                        if !group.isEmpty { groups.append(group) }
                        group = []
                    }
                    start = i + 1
                    blank = true
                } else if !isSpace(byte) {
                    blank = false
                }
            }
            return groups
        } }
        return try result.get()
    }

    /// One relation: `name[:arch] [(op version)] [arch list] [<profiles>]`.
    public static func parse<S: StringProtocol>(_ text: S) throws(ParseError) -> Relation {
        var string = String(text)
        let result: Result<Relation, ParseError> = string.withUTF8 { bytes in Result { () throws(ParseError) in try parse(bytes, 0, bytes.count) } }
        return try result.get()
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    static func isNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || byte == 0x2B || byte == 0x2D || byte == 0x2E
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>, _ from: Int, _ to: Int) throws(ParseError) -> Relation {
        func text(_ a: Int, _ b: Int) -> String { String(decoding: bytes[a..<b], as: UTF8.self).trimmingWhitespace }
        func fail(_ reason: String) -> ParseError { ParseError(description: "'\(text(from, to))'\(reason)") }
        var i = from
        while i < to, isSpace(bytes[i]) { i += 1 }
        let nameStart = i
        while i < to, isNameByte(bytes[i]) { i += 1 }
        let nameEnd = i
        guard nameEnd > nameStart, bytes[nameStart] != 0x2B, bytes[nameStart] != 0x2D, bytes[nameStart] != 0x2E else {
            throw fail(" does not start with a package name")
        }
        var qualifier: String?
        if i < to, bytes[i] == 0x3A {  // ':'
            let archStart = i + 1
            i = archStart
            while i < to, isNameByte(bytes[i]) { i += 1 }
            guard i > archStart, i == to || isSpace(bytes[i]) || bytes[i] == 0x28 || bytes[i] == 0x5B || bytes[i] == 0x3C else {
                throw fail(": the architecture after ':' is not a name")
            }
            qualifier = String(decoding: bytes[archStart..<i], as: UTF8.self)
        }
        while i < to, isSpace(bytes[i]) { i += 1 }
        var constraint: VersionConstraint?
        if i < to, bytes[i] == 0x28 {  // '('
            var close = i + 1
            while close < to, bytes[close] != 0x29 { close += 1 }
            guard close < to else { throw fail(": the version relation has no ')'") }
            var j = i + 1
            while j < close, isSpace(bytes[j]) { j += 1 }
            let opStart = j
            while j < close, bytes[j] == 0x3C || bytes[j] == 0x3E || bytes[j] == 0x3D { j += 1 }
            let op: VersionConstraint.Operator
            switch Array(bytes[opStart..<j]) {
            case [0x3C, 0x3C]: op = .earlier
            case [0x3C, 0x3D], [0x3C]: op = .earlierOrEqual  // '<' and '>' are dpkg's obsolete spellings of '<=' and '>='
            case [0x3D]: op = .equal
            case [0x3E, 0x3D], [0x3E]: op = .laterOrEqual
            case [0x3E, 0x3E]: op = .later
            default: throw fail(": '\(text(opStart, j))' is not a version relation (<<, <=, =, >=, >>)")
            }
            while j < close, isSpace(bytes[j]) { j += 1 }
            var versionEnd = close
            while versionEnd > j, isSpace(bytes[versionEnd - 1]) { versionEnd -= 1 }
            let versionText = String(decoding: bytes[j..<versionEnd], as: UTF8.self)
            guard !bytes[j..<versionEnd].contains(where: isSpace), let version = DebianVersion(versionText) else {
                throw fail(": '\(versionText)' is not a Debian version")
            }
            constraint = VersionConstraint(op: op, version: version)
            i = close + 1
            while i < to, isSpace(bytes[i]) { i += 1 }
        }
        // Architecture restrictions and build profiles: source packages only.
        while i < to, bytes[i] == 0x5B || bytes[i] == 0x3C {
            let closing: UInt8 = bytes[i] == 0x5B ? 0x5D : 0x3E
            var close = i + 1
            while close < to, bytes[close] != closing { close += 1 }
            guard close < to else { throw fail(": '\(Character(UnicodeScalar(bytes[i])))' is not closed") }
            i = close + 1
            while i < to, isSpace(bytes[i]) { i += 1 }
        }
        guard i == to else { throw fail(": unexpected '\(text(i, to))' after the package name") }
        return Relation(name: String(decoding: bytes[nameStart..<nameEnd], as: UTF8.self), architectureQualifier: qualifier, constraint: constraint)
    }

}

extension StringProtocol {
    var trimmingWhitespace: String {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return start < end ? String(self[start..<end]) : ""
    }
}
