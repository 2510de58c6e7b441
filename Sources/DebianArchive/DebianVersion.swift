/// A Debian package version (`[epoch:]upstream[-revision]`), ordered exactly as `dpkg --compare-versions`
/// orders versions: epochs numerically, then upstream and revision each by dpkg's rule (runs of
/// non-digits compared character by character, letters before other characters and `~` before
/// everything, even the end; runs of digits compared numerically).
public struct DebianVersion: Comparable, Sendable, CustomStringConvertible {
    public let epoch: Int
    public let upstream: String
    public let revision: String
    public let description: String

    /// Nil when the text is not a version (an epoch that is not a number, or nothing before the revision).
    public init?(_ text: String) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        var epoch = 0
        if let colon = rest.firstIndex(of: ":") {
            guard let value = Int(rest[..<colon]), value >= 0 else { return nil }
            epoch = value
            rest = rest[rest.index(after: colon)...]
        }
        var revision = ""
        if let dash = rest.lastIndex(of: "-") {
            revision = String(rest[rest.index(after: dash)...])
            // dpkg refuses an empty revision after a '-'.
            guard !revision.isEmpty else { return nil }
            rest = rest[..<dash]
        }
        guard !rest.isEmpty else { return nil }
        self.epoch = epoch
        self.upstream = String(rest)
        self.revision = revision
        self.description = text
    }

    public static func < (a: DebianVersion, b: DebianVersion) -> Bool { compare(a, b) < 0 }

    public static func == (a: DebianVersion, b: DebianVersion) -> Bool { compare(a, b) == 0 }

    /// Negative, zero or positive as `a` sorts before, with, or after `b`.
    public static func compare(_ a: DebianVersion, _ b: DebianVersion) -> Int {
        if a.epoch != b.epoch { return a.epoch < b.epoch ? -1 : 1 }
        let upstream = compareFragment(Array(a.upstream.utf8), Array(b.upstream.utf8))
        return upstream != 0 ? upstream : compareFragment(Array(a.revision.utf8), Array(b.revision.utf8))
    }

    /// dpkg's `verrevcmp`.
    static func compareFragment(_ a: [UInt8], _ b: [UInt8]) -> Int {
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        func order(_ c: UInt8?) -> Int {
            guard let c else { return 0 }
            if isDigit(c) { return 0 }
            if (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) { return Int(c) }
            if c == 0x7e { return -1 }
            return Int(c) + 256
        }
        var i = 0, j = 0
        while i < a.count || j < b.count {
            var firstDifference = 0
            while (i < a.count && !isDigit(a[i])) || (j < b.count && !isDigit(b[j])) {
                let ac = order(i < a.count ? a[i] : nil), bc = order(j < b.count ? b[j] : nil)
                if ac != bc { return ac - bc }
                i += 1
                j += 1
            }
            while i < a.count, a[i] == 0x30 { i += 1 }
            while j < b.count, b[j] == 0x30 { j += 1 }
            while i < a.count, j < b.count, isDigit(a[i]), isDigit(b[j]) {
                if firstDifference == 0 { firstDifference = Int(a[i]) - Int(b[j]) }
                i += 1
                j += 1
            }
            if i < a.count, isDigit(a[i]) { return 1 }
            if j < b.count, isDigit(b[j]) { return -1 }
            if firstDifference != 0 { return firstDifference }
        }
        return 0
    }
}
