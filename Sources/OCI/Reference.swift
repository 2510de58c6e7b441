/// A repository name as the OCI distribution spec's grammar allows it:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most 255 characters.
public struct RepositoryName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let value: String
    public var description: String { value }

    /// Why a string is not a repository name.
    public struct InvalidName: Error, Equatable, CustomStringConvertible {
        public let name: String
        public var description: String {
            "'\(name)' is not a valid repository name: use lowercase letters and digits, separated by '.', '_', '__' or '-', with '/' between path components (e.g. 'team/hello'), at most 255 characters"
        }
    }

    public init(_ value: String) throws(InvalidName) {
        guard RepositoryName.isValid(value) else { throw InvalidName(name: value) }
        self.value = value
    }

    public static func < (lhs: RepositoryName, rhs: RepositoryName) -> Bool { lhs.value < rhs.value }

    /// Whether a string follows the OCI name grammar.
    public static func isValid(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 255 else { return false }
        return name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy(isValidComponent)
    }

    private static func isValidComponent(_ component: Substring) -> Bool {
        let bytes = Array(component.utf8)
        func isAlnum(_ b: UInt8) -> Bool { (0x61...0x7a).contains(b) || (0x30...0x39).contains(b) }
        guard let first = bytes.first, let last = bytes.last, isAlnum(first), isAlnum(last) else { return false }
        var i = 0
        while i < bytes.count {
            if isAlnum(bytes[i]) { i += 1; continue }
            // A separator run: ".", "_", "__", or one or more "-".
            var j = i
            while j < bytes.count, !isAlnum(bytes[j]) { j += 1 }
            let run = bytes[i..<j]
            let ok = run.elementsEqual([0x2e]) || run.elementsEqual([0x5f]) || run.elementsEqual([0x5f, 0x5f])
                || run.allSatisfy { $0 == 0x2d }
            guard ok else { return false }
            i = j
        }
        return true
    }
}

/// A reference to an image: `NAME:TAG` or `NAME@sha256:<hex>`.
public struct Reference: Hashable, Sendable, CustomStringConvertible {
    /// What a reference points at.
    public enum Target: Hashable, Sendable {
        case tag(String)
        case digest(Digest)
    }

    public var name: RepositoryName
    public var target: Target

    public init(name: RepositoryName, target: Target) {
        self.name = name
        self.target = target
    }

    public var description: String {
        switch target {
        case .tag(let tag): return "\(name):\(tag)"
        case .digest(let digest): return "\(name)@\(digest)"
        }
    }

    /// Why a string is not a reference.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingTarget(String)
        case invalidName(String, RepositoryName.InvalidName)
        case invalidDigest(String, Digest.ParseError)
        case emptyTag(String)

        public var description: String {
            switch self {
            case .missingTarget(let s):
                return "'\(s)' names no version or digest: write NAME:VERSION (e.g. hello:1.4.0) or NAME@sha256:<64 hex digits>"
            case .invalidName(let s, let e): return "in reference '\(s)': \(e)"
            case .invalidDigest(let s, let e): return "in reference '\(s)': \(e)"
            case .emptyTag(let s): return "'\(s)' has an empty version after ':'"
            }
        }
    }

    /// Parses `NAME:TAG` or `NAME@DIGEST`.
    public init(parsing string: String) throws(ParseError) {
        if let at = string.firstIndex(of: "@") {
            let nameText = String(string[..<at])
            let digestText = String(string[string.index(after: at)...])
            do { self.name = try RepositoryName(nameText) } catch { throw .invalidName(string, error) }
            do { self.target = .digest(try Digest(parsing: digestText)) } catch { throw .invalidDigest(string, error) }
            return
        }
        let lastSlash = string.lastIndex(of: "/") ?? string.startIndex
        guard let colon = string[lastSlash...].lastIndex(of: ":") else { throw .missingTarget(string) }
        let tag = String(string[string.index(after: colon)...])
        guard !tag.isEmpty else { throw .emptyTag(string) }
        do { self.name = try RepositoryName(String(string[..<colon])) } catch { throw .invalidName(string, error) }
        self.target = .tag(tag)
    }
}
