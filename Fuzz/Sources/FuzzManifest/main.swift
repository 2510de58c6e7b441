import Foundation
import FuzzSupport
import OCI

/// Manifest, index and image-config JSON, as registries, image layouts and pushing clients send it.
///
/// Invariants: whatever decodes encodes canonically, and those bytes decode again to an equal value
/// whose canonical encoding is the same bytes (so a digest over them is stable).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Data(fuzzBytes(data, size))

    if let manifest = try? AnyManifest(decoding: bytes) {
        _ = manifest.mediaType
        _ = manifest.references
        switch manifest {
        case .image(let image):
            roundTrip(image, "image manifest")
            let encoded = try! CanonicalJSON.encode(image)
            guard case .image(let again)? = try? AnyManifest(decoding: encoded) else {
                fuzzCheck(false, "the canonical form of an image manifest is not read back as one: \(String(decoding: encoded, as: UTF8.self))")
                return 0
            }
            fuzzCheck(again == image, "an image manifest changed through its canonical form")
        case .index(let index):
            roundTrip(index, "image index")
            let encoded = try! CanonicalJSON.encode(index)
            guard case .index(let again)? = try? AnyManifest(decoding: encoded) else {
                fuzzCheck(false, "the canonical form of an index is not read back as one: \(String(decoding: encoded, as: UTF8.self))")
                return 0
            }
            fuzzCheck(again == index, "an image index changed through its canonical form")
        }
    }
    if let config = try? CanonicalJSON.decode(ImageConfig.self, from: bytes) {
        roundTrip(config, "image config")
        _ = config.platform
    }
    if let descriptor = try? CanonicalJSON.decode(Descriptor.self, from: bytes) { roundTrip(descriptor, "descriptor") }
    if let platform = try? CanonicalJSON.decode(Platform.self, from: bytes) { roundTrip(platform, "platform") }
    if let header = try? CanonicalJSON.decode(ImageLayoutHeader.self, from: bytes) { roundTrip(header, "oci-layout") }
    return 0
}

/// Canonical JSON of `value` decodes to an equal value, and encodes again to the same bytes.
func roundTrip<T: Codable & Equatable>(_ value: T, _ what: String) {
    let encoded: Data
    do { encoded = try CanonicalJSON.encode(value) } catch {
        fuzzCheck(false, "a decoded \(what) cannot be encoded: \(error)")
        return
    }
    let decoded: T
    do { decoded = try CanonicalJSON.decode(T.self, from: encoded) } catch {
        fuzzCheck(false, "the canonical JSON of a \(what) does not decode: \(error)\n\(String(decoding: encoded, as: UTF8.self))")
        return
    }
    fuzzCheck(decoded == value, "a \(what) changed through its canonical JSON: \(String(decoding: encoded, as: UTF8.self))")
    let again = try? CanonicalJSON.encode(decoded)
    fuzzCheck(again == encoded, "the canonical JSON of a \(what) is not stable: \(String(decoding: encoded, as: UTF8.self))")
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzManifest`.
@_cdecl("FuzzManifest_main")
public func fuzzManifestMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzManifest)
}
