import Foundation
import FuzzSupport
import OCI
import ReleaseSpec

/// Release specs (YAML), as `imgdeploy apply` reads them and its daemon keeps them.
///
/// Invariants: a parsed spec pins its image by digest; its durations can be printed; it survives the JSON
/// the daemon stores it as (`current.json`) unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReleaseSpec(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = fuzzText(fuzzBytes(data, size))
    // A relative store `source` or `verify.key` is taken from this folder, which is empty.
    guard let spec = try? ReleaseSpec.parse(text, path: "release.yaml", folder: Scratch.folder) else { return 0 }
    fuzzCheck(ReleaseSpec.isValidServiceName(spec.service), "service '\(spec.service)' accepted")
    fuzzCheck((try? PinnedImage(parsing: spec.image.description)) == spec.image, "image \(spec.image) does not round-trip")
    fuzzCheck((1...65535).contains(spec.port) && (1...65535).contains(spec.listen.port), "a port out of range was accepted")
    for duration in [spec.stopTimeout, spec.health.interval, spec.health.timeout, spec.health.deadline] {
        fuzzCheck(duration >= .zero, "a negative duration was accepted")
        _ = DurationText.format(duration)
        _ = duration.milliseconds
    }
    fuzzCheck(spec.capabilities.allSatisfy(ReleaseSpec.capabilityNames.contains), "an unknown capability was accepted: \(spec.capabilities)")
    fuzzCheck(spec.capabilities == ReleaseSpec.capabilityNames.filter(spec.capabilities.contains), "capabilities not unique and in number order: \(spec.capabilities)")
    let encoded: Data
    do { encoded = try JSONEncoder().encode(spec) } catch {
        fuzzCheck(false, "a parsed release spec cannot be encoded: \(error)")
        return 0
    }
    let decoded = try? JSONDecoder().decode(ReleaseSpec.self, from: encoded)
    fuzzCheck(decoded == spec, "a release spec changed through JSON: \(String(decoding: encoded, as: UTF8.self))")
    return 0
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzReleaseSpec`.
@_cdecl("FuzzReleaseSpec_main")
public func fuzzReleaseSpecMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzReleaseSpec)
}
