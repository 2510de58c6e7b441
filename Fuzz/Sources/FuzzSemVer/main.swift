import FuzzSupport
import SemVer

/// SemVer versions and npm-style ranges.
///
/// Invariants: a parsed version's description parses again to an equal version with equal precedence;
/// a parsed range can be asked about versions (its own bounds included) without trapping.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSemVer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = fuzzText(fuzzBytes(data, size))
    let probes = ["0.0.0", "0.0.1-0", "1.2.3", "1.2.3-rc.1", "18446744073709551615.18446744073709551615.18446744073709551615"]
        .map { try! Version(parsing: $0) }
    if let version = try? Version(parsing: text) {
        fuzzCheck(version.description == text, "'\(text)' parsed to \(version), which prints differently")
        let again: Version
        do { again = try Version(parsing: version.description) } catch {
            fuzzCheck(false, "'\(version)' (from '\(text)') does not parse again: \(error)")
            return 0
        }
        fuzzCheck(again == version && again.comparePrecedence(to: version) == 0, "'\(text)' round-trips to '\(again)'")
        fuzzCheck(!(version < version), "\(version) < itself")
        for probe in probes {
            let order = version.comparePrecedence(to: probe)
            fuzzCheck(order == -probe.comparePrecedence(to: version), "precedence of \(version) and \(probe) is not antisymmetric")
        }
        fuzzCheck(version.withoutBuild.comparePrecedence(to: version) == 0, "dropping build metadata of \(version) changes precedence")
    }
    if let range = try? VersionRange(parsing: text) {
        var candidates = probes
        if let version = try? Version(parsing: text) { candidates.append(version) }
        for candidate in candidates {
            let plain = range.contains(candidate)
            let loose = range.contains(candidate, includePrerelease: true)
            fuzzCheck(!plain || loose, "\(candidate) is in '\(text)' but not when pre-releases are included")
        }
        _ = range.highest(in: candidates)
        _ = range.highest(in: candidates, includePrerelease: true)
    }
    return 0
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzSemVer`.
@_cdecl("FuzzSemVer_main")
public func fuzzSemVerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzSemVer)
}
