import FuzzSupport
import Layers

/// A context snapshot read back from the build cache (`CACHE/contexts/<key>`), a file anything may have
/// cut short or overwritten.
///
/// Invariants: bytes are a snapshot or refused, never a trap; a snapshot accepted is checked against
/// the file system (its folder and file names handed to the kernel where they lie in the bytes) without
/// reading past them; its values encode again to bytes that are accepted and decode to the same values.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzContextSnapshot(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(fuzzBytes(data, size))
    guard let encoded = ContextSnapshot.Encoded(bytes) else { return 0 }
    _ = encoded.isUnchanged(threads: 1)
    let snapshot = encoded.decoded()
    let again = ContextSnapshot.Encoded(snapshot.encoded())
    fuzzCheck(again != nil, "the encoding of an accepted snapshot is refused")
    fuzzCheck(again?.decoded() == snapshot, "a snapshot changed through its encoding")
    _ = snapshot.isRacy
    return 0
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzContextSnapshot`.
@_cdecl("FuzzContextSnapshot_main")
public func fuzzContextSnapshotMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzContextSnapshot)
}
