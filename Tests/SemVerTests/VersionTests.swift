import SemVer
import Testing
import TestScheduling

@Suite("SemVer 2.0.0 versions", .mayBlock)
struct VersionTests {
    @Test("the precedence example of the SemVer text")
    func specExample() throws {
        let ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                       "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"].map { try! Version(parsing: $0) }
        for (lower, higher) in zip(ordered, ordered.dropFirst()) {
            #expect(lower < higher, "\(lower) < \(higher)")
            #expect(lower.comparePrecedence(to: higher) < 0)
        }
        #expect(ordered.shuffled().sorted() == ordered)
        let core = ["1.0.0", "2.0.0", "2.1.0", "2.1.1"].map { try! Version(parsing: $0) }
        #expect(core == core.sorted())
        let minors = ["1.9.0", "1.10.0", "1.11.0"].map { try! Version(parsing: $0) }
        #expect(minors.reversed().sorted() == minors)
        #expect(try Version(parsing: "1.0.0-alpha") < Version(parsing: "1.0.0"))
    }

    @Test("build metadata is ignored for precedence but kept in the text")
    func buildMetadata() throws {
        let a = try Version(parsing: "1.0.0+20130313144700")
        let b = try Version(parsing: "1.0.0+exp.sha.5114f85")
        #expect(a.comparePrecedence(to: b) == 0)
        #expect(a != b)
        #expect(b.description == "1.0.0+exp.sha.5114f85")
        #expect(try Version(parsing: "1.0.0-beta+exp.sha.5114f85").prerelease == [.alphanumeric("beta")])
    }

    @Test("valid versions round-trip", arguments: [
        "0.0.4", "1.2.3", "10.20.30", "1.1.2-prerelease+meta", "1.1.2+meta", "1.1.2+meta-valid", "1.0.0-alpha",
        "1.0.0-beta", "1.0.0-alpha.beta", "1.0.0-alpha.beta.1", "1.0.0-alpha.1", "1.0.0-alpha0.valid",
        "1.0.0-alpha.0valid", "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay", "1.0.0-rc.1+build.1",
        "2.0.0-rc.1+build.123", "1.2.3-beta", "10.2.3-DEV-SNAPSHOT", "1.2.3-SNAPSHOT-123", "2.0.0+build.1848",
        "2.0.1-alpha.1227", "1.0.0-0A.is.legal", "99999999999999999.999999999999.99999999",
        // The examples in the SemVer 2.0.0 text.
        "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-x-y-z.--", "1.0.0-alpha+001", "1.0.0+21AF26D3----117B344092BD",
    ])
    func valid(text: String) throws {
        #expect(try Version(parsing: text).description == text)
    }

    @Test("invalid versions are refused", arguments: [
        "1", "1.2", "1.2.3-0123", "1.2.3-0123.0123", "1.1.2+.123", "+invalid", "-invalid", "-invalid+invalid",
        "-invalid.01", "alpha", "alpha.beta", "alpha.beta.1", "alpha.1", "alpha+beta", "alpha_beta", "alpha.",
        "alpha..", "beta", "1.0.0-alpha_beta", "-alpha.", "1.0.0-alpha..", "1.0.0-alpha..1", "1.0.0-alpha...1",
        "01.1.1", "1.01.1", "1.1.01", "1.2.3.DEV", "1.2-SNAPSHOT", "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788",
        "1.2-RC-SNAPSHOT", "-1.0.3-gamma+b7718", "+justmeta", "9.8.7+meta+meta", "9.8.7-whatever+meta+meta",
        "v1.2.3", "1.2.3-", "1.2.3+", " 1.2.3", "1.2.3 ", "latest", "1.2.3-ü",
        "99999999999999999999999.999999999999999999.99999999999999999",
    ])
    func invalid(text: String) {
        #expect(throws: Version.ParseError.self) { try Version(parsing: text) }
    }

    @Test("a leading v gets a hint")
    func leadingV() {
        do { _ = try Version(parsing: "v1.2.3"); Issue.record("accepted") } catch {
            #expect(error.description.contains("drop the leading 'v' (write 1.2.3)"))
        }
    }
}
