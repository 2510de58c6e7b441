/// A suite's `Release` file (the text `InRelease` signs): what the suite is and the SHA-256 and size of
/// every index file in it, against which each index is checked before it is read.
public struct ReleaseFile: Sendable {
    public var suite: String?
    public var codename: String?
    public var date: String?
    public var architectures: [String]
    public var components: [String]
    /// `No-Support-for-Architecture-all: Packages`: `all` packages are repeated in each architecture's
    /// index (for clients that do not read `binary-all`), so `binary-all` need not be read.
    public var architectureAllRepeated: Bool
    /// apt's default pin priority for the suite: 1 with `NotAutomatic: yes` (experimental), 100 with
    /// `ButAutomaticUpgrades: yes` too (backports), else 500. A version of a higher priority is the candidate.
    public var pinPriority: Int
    /// `Valid-Until`, as written: a Release file past it is refused, as apt refuses it (a replayed old one).
    public var validUntil: String?
    /// `Acquire-By-Hash: yes`: each index can also be fetched by its SHA-256, which no mirror update can race.
    public var acquireByHash: Bool
    /// Index files by path relative to the suite's folder (`main/binary-amd64/Packages.xz`).
    public var files: [String: IndexFile]

    public struct IndexFile: Sendable, Equatable {
        public var size: Int64
        /// 64 lowercase hex digits.
        public var sha256: String

        public init(size: Int64, sha256: String) {
            self.size = size
            self.sha256 = sha256
        }
    }

    /// Why a Release file could not be read.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(_ bytes: [UInt8]) throws(ParseError) {
        let names = ["Suite", "Codename", "Date", "Architectures", "Components", "SHA256", "No-Support-for-Architecture-all", "Acquire-By-Hash", "Valid-Until", "NotAutomatic", "ButAutomaticUpgrades"]
        guard let paragraph = ControlParagraphs(bytes, fields: names).first(where: { _ in true }) else {
            throw ParseError(description: "the Release file is empty")
        }
        let values = paragraph.values
        suite = values[0]
        codename = values[1]
        date = values[2]
        architectures = (values[3] ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        components = (values[4] ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
        architectureAllRepeated = values[6] == "Packages"
        acquireByHash = values[7]?.lowercased() == "yes"
        validUntil = values[8]
        let notAutomatic = values[9]?.lowercased() == "yes", butUpgrades = values[10]?.lowercased() == "yes"
        pinPriority = notAutomatic ? (butUpgrades ? 100 : 1) : 500
        guard let hashes = values[5] else {
            throw ParseError(description: "the Release file has no SHA256 field: its indexes cannot be checked (an archive older than 2017, or not a Debian archive)")
        }
        var files: [String: IndexFile] = [:]
        for line in hashes.split(separator: "\n") {
            let parts = line.split(whereSeparator: \.isWhitespace)
            if parts.isEmpty { continue }
            guard parts.count == 3, parts[0].count == 64, parts[0].allSatisfy({ $0.isHexDigit && !$0.isUppercase }),
                  let size = Int64(parts[1]), size >= 0 else {
                throw ParseError(description: "the Release file's SHA256 line '\(line.trimmingWhitespace)' is not 'HASH SIZE PATH'")
            }
            let path = String(parts[2])
            guard !path.hasPrefix("/"), !path.split(separator: "/").contains("..") else {
                throw ParseError(description: "the Release file names the index '\(path)', which lies outside the suite")
            }
            files[path] = IndexFile(size: size, sha256: String(parts[0]))
        }
        self.files = files
    }
}
