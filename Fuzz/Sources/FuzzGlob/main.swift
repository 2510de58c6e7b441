import FuzzSupport
import Glob

/// `exclude` patterns of an Imagefile. The first line is the pattern, every further line a path to match.
///
/// Invariants: a pattern is usable or refused, never a trap; matching ends (libFuzzer's -timeout
/// reports a pattern whose matching blows up).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGlob(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = fuzzText(fuzzBytes(data, size))
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    guard let first = lines.first, let glob = try? Glob(first) else { return 0 }
    fuzzCheck(!glob.pattern.isEmpty, "an empty pattern was accepted")
    for path in lines.dropFirst().prefix(64) { _ = glob.matches(path) }
    _ = glob.matches("a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p")
    return 0
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzGlob`.
@_cdecl("FuzzGlob_main")
public func fuzzGlobMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzGlob)
}
