import SemVer
import Testing
import TestScheduling

@Suite("SemVer ranges (npm semantics)", .mayBlock)
struct RangeTests {
    /// (range, version, in range without asking for pre-releases)
    static let cases: [(String, String, Bool)] = [
        ("1.2.3", "1.2.3", true), ("1.2.3", "1.2.4", false), ("=1.2.3", "1.2.3", true), ("1.2.3", "1.2.3+build.5", true),
        ("^1.2.3", "1.2.3", true), ("^1.2.3", "1.9.9", true), ("^1.2.3", "2.0.0", false), ("^1.2.3", "1.2.2", false),
        ("^1.2.3", "2.0.0-alpha", false), ("^1.2.3", "1.3.0-beta", false),
        ("^0.2.3", "0.2.9", true), ("^0.2.3", "0.3.0", false), ("^0.0.3", "0.0.3", true), ("^0.0.3", "0.0.4", false),
        ("^0.x", "0.9.0", true), ("^0.x", "1.0.0", false), ("^1.x", "1.5.0", true), ("^1.x", "2.0.0", false),
        ("^1.2.3-beta.2", "1.2.3-beta.4", true), ("^1.2.3-beta.2", "1.2.3-beta.1", false), ("^1.2.3-beta.2", "1.2.4-beta.2", false),
        ("~1.2.3", "1.2.9", true), ("~1.2.3", "1.3.0", false), ("~1.2", "1.2.0", true), ("~1.2", "1.3.0", false),
        ("~1", "1.9.0", true), ("~1", "2.0.0", false), ("~0.2.3", "0.2.4", true),
        ("1.x", "1.0.0", true), ("1.x", "1.99.1", true), ("1.x", "2.0.0", false), ("1.x", "0.9.9", false),
        ("1.2.x", "1.2.7", true), ("1.2.x", "1.3.0", false), ("1.2.*", "1.2.0", true), ("1", "1.4.0", true), ("1", "2.0.0", false),
        ("*", "0.0.1", true), ("*", "99.0.0", true), ("*", "1.0.0-rc.1", false), ("x", "3.2.1", true),
        (">=1.2.0 <2.0.0", "1.2.0", true), (">=1.2.0 <2.0.0", "1.99.0", true), (">=1.2.0 <2.0.0", "2.0.0", false),
        (">=1.2.0 <2.0.0", "1.1.9", false), (">=1.2.0 <2.0.0", "2.0.0-rc.1", false), (">= 1.2.0 < 2.0.0", "1.5.0", true),
        (">1.2.3", "1.2.3", false), (">1.2.3", "1.2.4", true), (">1.2", "1.2.9", false), (">1.2", "1.3.0", true),
        ("<1.2.3", "1.2.2", true), ("<1.2.3", "1.2.3", false), ("<1.2", "1.1.9", true), ("<1.2", "1.2.0", false),
        ("<=1.2.3", "1.2.3", true), ("<=1.2", "1.2.9", true), ("<=1.2", "1.3.0", false),
        ("1.2.3 - 2.3.4", "1.2.3", true), ("1.2.3 - 2.3.4", "2.3.4", true), ("1.2.3 - 2.3.4", "2.3.5", false),
        ("1.2.3 - 2.3", "2.3.9", true), ("1.2.3 - 2.3", "2.4.0", false), ("1.2 - 2", "2.9.9", true), ("1.2 - 2", "1.1.0", false),
        ("1.x || >=2.5.0", "2.6.0", true), ("1.x || >=2.5.0", "2.4.0", false), ("1.x || >=2.5.0", "1.0.0", true),
        ("<1.0.0 || >=3.0.0", "2.0.0", false), ("<1.0.0 || >=3.0.0", "0.5.0", true),
        (">=1.0.0-rc.1 <1.0.0", "1.0.0-rc.2", true), (">=1.0.0-rc.1", "1.0.1-rc.1", false), (">=1.0.0-rc.1", "1.0.0", true),
        // A part that is already the largest number has nothing above it (these trapped on `+ 1`; found by FuzzSemVer).
        ("^18446744073709551615.0.0", "18446744073709551615.5.0", true), ("^18446744073709551615.0.0", "1.0.0", false),
        ("~1.18446744073709551615", "1.18446744073709551615.7", true), ("~1.18446744073709551615", "2.0.0", true),
        ("18446744073709551615.x", "18446744073709551615.1.1", true), ("<=0.18446744073709551615", "0.18446744073709551615.3", true),
        ("<=0.18446744073709551615", "1.0.0", true), (">18446744073709551615.x", "18446744073709551615.9.9", false),
        ("^0.0.18446744073709551615", "0.0.18446744073709551615", true), ("^0.18446744073709551615", "0.18446744073709551615.1", true),
    ]

    @Test("membership", arguments: cases)
    func membership(range: String, version: String, expected: Bool) throws {
        let parsed = try VersionRange(parsing: range)
        #expect(parsed.contains(try Version(parsing: version)) == expected, "\(version) in \(range)")
    }

    @Test("pre-releases are in a range when asked for")
    func includePrerelease() throws {
        let range = try VersionRange(parsing: "^1.2.0")
        let rc = try Version(parsing: "1.3.0-rc.1")
        #expect(!range.contains(rc))
        #expect(range.contains(rc, includePrerelease: true))
        #expect(!range.contains(try Version(parsing: "2.0.0-rc.1"), includePrerelease: true))
    }

    @Test("the highest matching version wins")
    func highest() throws {
        let versions = try ["1.0.0", "1.2.0", "1.10.0", "1.11.0-rc.1", "2.0.0", "0.9.0"].map { try Version(parsing: $0) }
        #expect(try VersionRange(parsing: "^1.0.0").highest(in: versions)?.description == "1.10.0")
        #expect(try VersionRange(parsing: "^1.0.0").highest(in: versions, includePrerelease: true)?.description == "1.11.0-rc.1")
        #expect(try VersionRange(parsing: "~1.2").highest(in: versions)?.description == "1.2.0")
        #expect(try VersionRange(parsing: "^3").highest(in: versions) == nil)
    }

    @Test("malformed ranges are refused", arguments: ["", "^", ">=", "1.2.3.4", "01.2.3", "1.x.3", "a.b.c", "1.2.3 -", "- 1.2.3",
                                                       "1 - 2 - 3", "||", "1.0.0 ||", "v1.2.3", "!1.2.3", ">>1.2.3", "latest"])
    func malformed(text: String) {
        #expect(throws: VersionRange.ParseError.self) { try VersionRange(parsing: text) }
    }
}
