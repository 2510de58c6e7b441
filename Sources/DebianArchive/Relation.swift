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
    /// trailing comma) are skipped, as dpkg skips them.
    public static func parseField(_ text: String) throws(ParseError) -> [[Relation]] {
        var groups: [[Relation]] = []
        for group in text.split(separator: ",", omittingEmptySubsequences: false) {
            if group.allSatisfy(\.isWhitespace) { continue }
            var alternatives: [Relation] = []
            for alternative in group.split(separator: "|", omittingEmptySubsequences: false) {
                alternatives.append(try parse(alternative))
            }
            groups.append(alternatives)
        }
        return groups
    }

    /// One relation: `name[:arch] [(op version)] [arch list] [<profiles>]`.
    public static func parse<S: StringProtocol>(_ text: S) throws(ParseError) -> Relation {
        var rest = Substring(text).drop(while: \.isWhitespace)
        let nameEnd = rest.firstIndex { !isNameCharacter($0) && $0 != ":" } ?? rest.endIndex
        let fullName = rest[..<nameEnd]
        rest = rest[nameEnd...].drop(while: \.isWhitespace)
        var name = Substring(fullName)
        var qualifier: String?
        if let colon = fullName.firstIndex(of: ":") {
            name = fullName[..<colon]
            let arch = fullName[fullName.index(after: colon)...]
            guard !arch.isEmpty, arch.allSatisfy({ isNameCharacter($0) }) else {
                throw ParseError(description: "'\(text.trimmingWhitespace)': the architecture after ':' is not a name")
            }
            qualifier = String(arch)
        }
        guard let first = name.first, first.isASCII, first.isLetter || first.isNumber else {
            throw ParseError(description: "'\(text.trimmingWhitespace)' does not start with a package name")
        }
        var constraint: VersionConstraint?
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else {
                throw ParseError(description: "'\(text.trimmingWhitespace)': the version relation has no ')'")
            }
            var inside = rest[rest.index(after: rest.startIndex)..<close].drop(while: \.isWhitespace)
            rest = rest[rest.index(after: close)...].drop(while: \.isWhitespace)
            let opText = inside.prefix { "<>=".contains($0) }
            inside = inside.dropFirst(opText.count)
            let op: VersionConstraint.Operator
            switch opText {
            case "<<": op = .earlier
            case "<=", "<": op = .earlierOrEqual  // '<' and '>' are dpkg's obsolete spellings of '<=' and '>='
            case "=": op = .equal
            case ">=", ">": op = .laterOrEqual
            case ">>": op = .later
            default: throw ParseError(description: "'\(text.trimmingWhitespace)': '\(opText)' is not a version relation (<<, <=, =, >=, >>)")
            }
            let versionText = inside.trimmingWhitespace
            guard let version = DebianVersion(versionText), !versionText.contains(where: \.isWhitespace) else {
                throw ParseError(description: "'\(text.trimmingWhitespace)': '\(versionText)' is not a Debian version")
            }
            constraint = VersionConstraint(op: op, version: version)
        }
        // Architecture restrictions and build profiles: source packages only.
        while let open = rest.first, open == "[" || open == "<" {
            guard let close = rest.firstIndex(of: open == "[" ? "]" : ">") else {
                throw ParseError(description: "'\(text.trimmingWhitespace)': '\(open)' is not closed")
            }
            rest = rest[rest.index(after: close)...].drop(while: \.isWhitespace)
        }
        guard rest.allSatisfy(\.isWhitespace) else {
            throw ParseError(description: "'\(text.trimmingWhitespace)': unexpected '\(rest.trimmingWhitespace)' after the package name")
        }
        return Relation(name: String(name), architectureQualifier: qualifier, constraint: constraint)
    }

    /// Debian Policy §5.6.1: lowercase letters, digits, `+`, `-` and `.`.
    public static func isNameCharacter(_ c: Character) -> Bool {
        guard c.isASCII else { return false }
        return c.isLowercase || c.isNumber || c == "+" || c == "-" || c == "." || (c.isLetter && c.isUppercase)
    }
}

extension StringProtocol {
    var trimmingWhitespace: String {
        let start = firstIndex { !$0.isWhitespace } ?? endIndex
        let end = lastIndex { !$0.isWhitespace }.map { index(after: $0) } ?? start
        return start < end ? String(self[start..<end]) : ""
    }
}
