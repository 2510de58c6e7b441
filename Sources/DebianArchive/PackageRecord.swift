/// One package of a `Packages` index: what the resolver needs to pick it and what the lock pins.
public struct PackageRecord: Sendable, Equatable {
    public var name: String
    public var version: DebianVersion
    public var architecture: String
    public var preDepends: [[Relation]]
    public var depends: [[Relation]]
    public var provides: [Relation]
    public var conflicts: [[Relation]]
    public var breaks: [[Relation]]
    public var essential: Bool
    /// `same`, `foreign`, `allowed`, or empty (`no`).
    public var multiArch: String
    /// `required`, `important`, `standard`, `optional`, `extra`, or empty.
    public var priority: String
    /// The `.deb`'s path relative to the archive's root (`pool/main/b/busybox/…deb`).
    public var filename: String
    public var size: Int64
    /// 64 lowercase hex digits.
    public var sha256: String

    public static func == (a: PackageRecord, b: PackageRecord) -> Bool {
        a.name == b.name && a.version.description == b.version.description && a.architecture == b.architecture && a.filename == b.filename
            && a.sha256 == b.sha256 && a.size == b.size
    }

    /// Why an index could not be read: the paragraph's line and the reason.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "line \(line): \(reason)" }
    }

    static let fields = ["Package", "Version", "Architecture", "Pre-Depends", "Depends", "Provides", "Conflicts", "Breaks",
                         "Essential", "Priority", "Filename", "Size", "SHA256", "Multi-Arch"]

    /// Every package of a `Packages` index (uncompressed). A paragraph that lacks what a lock needs, or
    /// whose relations or version cannot be read, is an error naming its line: an index is signed data,
    /// so a damaged one is refused, not skipped.
    public static func readIndex(_ bytes: [UInt8]) throws(ParseError) -> [PackageRecord] {
        var records: [PackageRecord] = []
        for paragraph in ControlParagraphs(bytes, fields: fields) {
            let v = paragraph.values
            func fail(_ reason: String) -> ParseError { ParseError(line: paragraph.line, reason: reason) }
            guard let name = v[0], !name.isEmpty else { throw fail("a paragraph without 'Package'") }
            guard isPackageName(name) else { throw fail("'\(name)' is not a package name (lowercase letters, digits, '+', '-', '.')") }
            guard let versionText = v[1], let version = DebianVersion(versionText) else {
                throw fail("the package \(name) has no valid 'Version' ('\(v[1] ?? "")')")
            }
            guard let architecture = v[2], !architecture.isEmpty else { throw fail("the package \(name) has no 'Architecture'") }
            guard let filename = v[10], isArchiveFilename(filename) else {
                throw fail("the package \(name) has no 'Filename' of a .deb inside the archive ('\(v[10] ?? "")')")
            }
            guard let sizeText = v[11], let size = Int64(sizeText), size >= 0 else { throw fail("the package \(name) has no valid 'Size'") }
            guard let sha = v[12], isSHA256Hex(sha) else {
                throw fail("the package \(name) has no SHA256 (64 lowercase hex digits): the lock pins every package by its SHA-256")
            }
            func relations(_ index: Int, _ field: String) throws(ParseError) -> [[Relation]] {
                guard let text = v[index] else { return [] }
                do { return try Relation.parseField(text) } catch { throw fail("the \(field) of \(name): \(error.description)") }
            }
            let provides = try relations(5, "Provides")
            guard provides.allSatisfy({ $0.count == 1 }) else { throw fail("the Provides of \(name) has alternatives ('|')") }
            records.append(PackageRecord(
                name: name, version: version, architecture: architecture, preDepends: try relations(3, "Pre-Depends"),
                depends: try relations(4, "Depends"), provides: provides.map { $0[0] }, conflicts: try relations(6, "Conflicts"),
                breaks: try relations(7, "Breaks"), essential: v[8]?.lowercased() == "yes", multiArch: v[13] ?? "", priority: v[9] ?? "",
                filename: filename, size: size, sha256: sha))
        }
        return records
    }
}

/// 64 lowercase hex digits.
public func isSHA256Hex(_ text: String) -> Bool {
    text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
}

/// A package name as Debian Policy §5.6.1 has it: lowercase letters, digits, `+`, `-`, `.`, starting
/// with a letter or digit.
public func isPackageName(_ text: String) -> Bool {
    guard let first = text.utf8.first, (first >= 0x61 && first <= 0x7A) || (first >= 0x30 && first <= 0x39) else { return false }
    return text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E }
}

/// A `.deb`'s path relative to an archive's root that stays inside it and is safe to append to its URL:
/// no `..`, no leading `/`, no spaces, `?`, `#` or `%`-escapes, no control characters.
public func isArchiveFilename(_ text: String) -> Bool {
    !text.isEmpty && !text.hasPrefix("/") && text.hasSuffix(".deb") && !text.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == ".." || $0 == "." || $0.isEmpty }
        && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x3F && $0 != 0x23 && $0 != 0x25 && $0 != 0x5C }
}

/// Debian's architecture names for image platforms (`linux/arm/v7` is `armhf`).
public enum DebianArchitecture {
    /// Nil when Debian has no port for the platform.
    public static func forImage(os: String, architecture: String, variant: String?) -> String? {
        guard os == "linux" else { return nil }
        switch (architecture, variant) {
        case ("amd64", _): return "amd64"
        case ("arm64", _): return "arm64"
        case ("arm", "v7"), ("arm", nil): return "armhf"
        case ("arm", "v5"), ("arm", "v6"): return "armel"
        case ("386", _): return "i386"
        case ("ppc64le", _): return "ppc64el"
        case ("s390x", _): return "s390x"
        case ("riscv64", _): return "riscv64"
        case ("mips64le", _): return "mips64el"
        case ("loong64", _): return "loong64"
        default: return nil
        }
    }
}
