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
                         "Essential", "Priority", "Filename", "Size", "SHA256"]

    /// Every package of a `Packages` index (uncompressed). A paragraph that lacks what a lock needs, or
    /// whose relations or version cannot be read, is an error naming its line: an index is signed data,
    /// so a damaged one is refused, not skipped.
    public static func readIndex(_ bytes: [UInt8]) throws(ParseError) -> [PackageRecord] {
        var records: [PackageRecord] = []
        for paragraph in ControlParagraphs(bytes, fields: fields) {
            let v = paragraph.values
            func fail(_ reason: String) -> ParseError { ParseError(line: paragraph.line, reason: reason) }
            guard let name = v[0], !name.isEmpty else { throw fail("a paragraph without 'Package'") }
            guard let versionText = v[1], let version = DebianVersion(versionText) else {
                throw fail("the package \(name) has no valid 'Version' ('\(v[1] ?? "")')")
            }
            guard let architecture = v[2], !architecture.isEmpty else { throw fail("the package \(name) has no 'Architecture'") }
            guard let filename = v[10], !filename.isEmpty, !filename.hasPrefix("/"), !filename.split(separator: "/").contains("..") else {
                throw fail("the package \(name) has no 'Filename' inside the archive ('\(v[10] ?? "")')")
            }
            guard let sizeText = v[11], let size = Int64(sizeText), size >= 0 else { throw fail("the package \(name) has no valid 'Size'") }
            guard let sha = v[12], sha.count == 64, sha.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
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
                breaks: try relations(7, "Breaks"), essential: v[8]?.lowercased() == "yes", priority: v[9] ?? "",
                filename: filename, size: size, sha256: sha))
        }
        return records
    }
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
