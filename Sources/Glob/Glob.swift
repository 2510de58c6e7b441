#if canImport(Glibc)
import Glibc
#endif

/// A path pattern for `exclude`: `*` and `?` and `[…]` match within one path component, `**` matches any
/// number of components. Patterns are anchored at the copy's source folder, as in `.dockerignore`:
/// `*.tmp` matches top-level files only, `**/*.tmp` matches at any depth.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    private let components: [String]

    public var description: String { pattern }

    /// Why a pattern is not usable.
    public struct InvalidPattern: Error, CustomStringConvertible {
        public let pattern: String
        public let reason: String
        public var description: String { "exclude pattern '\(pattern)' is invalid: \(reason)" }
    }

    public init(_ pattern: String) throws(InvalidPattern) {
        var trimmed = pattern
        while trimmed.hasPrefix("./") { trimmed.removeFirst(2) }
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard !trimmed.isEmpty else { throw InvalidPattern(pattern: pattern, reason: "it is empty") }
        guard !trimmed.hasPrefix("/") else {
            throw InvalidPattern(pattern: pattern, reason: "it must be relative to the copied folder (no leading '/')")
        }
        let parts = trimmed.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !parts.contains("..") else { throw InvalidPattern(pattern: pattern, reason: "'..' is not allowed") }
        self.pattern = pattern
        self.components = parts
    }

    /// Whether the relative path (components joined by `/`) matches.
    public func matches(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        return Glob.match(components[...], parts[...])
    }

    private static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let head = pattern.first else { return path.isEmpty }
        if head == "**" {
            let rest = pattern.dropFirst()
            var candidate = path
            while true {
                if match(rest, candidate) { return true }
                guard !candidate.isEmpty else { return false }
                candidate = candidate.dropFirst()
            }
        }
        guard let name = path.first, fnmatch(head, name, 0) == 0 else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }
}
