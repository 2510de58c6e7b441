import FuzzSupport
import OCI
import RegistryRoutes

/// The registry's request parsers: the `/v2/…` route of a request path, the `Range` header of a blob
/// GET and the `Content-Range` of an upload chunk. The first 8 bytes (little-endian) are the blob size
/// the Range header is read against; the rest is the text given to all three parsers.
///
/// Invariants: a route names a valid repository and, printed back as a path, routes the same way; a
/// satisfiable range lies within the blob; a content range has 0 <= start <= end and a length that is
/// the count of bytes it covers.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRegistryRoutes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    var blobSize: Int64 = 0
    for (index, byte) in bytes.prefix(8).enumerated() { blobSize |= Int64(byte) << (8 * index) }
    let text = fuzzText(UnsafeBufferPointer(rebasing: bytes.dropFirst(min(8, bytes.count))))

    if let route = try? Route.parse(text) {
        fuzzCheck(!route.allowedMethods.isEmpty, "route \(route) allows no method")
        if let path = path(of: route) {
            let again = try? Route.parse(path)
            fuzzCheck(again == route, "'\(text)' routes to \(route), but its path '\(path)' routes to \(String(describing: again))")
        }
    }

    switch ByteRange.parse(text, size: blobSize) {
    case .satisfiable(let range):
        fuzzCheck(blobSize > 0 && range.lowerBound >= 0 && range.upperBound < blobSize,
                  "Range '\(text)' of a \(blobSize)-byte blob gave \(range)")
        fuzzCheck(range.upperBound - range.lowerBound < blobSize, "Range '\(text)' covers more than the blob")
    case .unsatisfiable, .ignored:
        break
    }

    if let range = ContentRange.parse(text) {
        fuzzCheck(range.start >= 0 && range.start <= range.end, "Content-Range '\(text)' gave \(range.start)-\(range.end)")
        let (count, overflow) = range.end.subtractingReportingOverflow(range.start)
        fuzzCheck(!overflow, "Content-Range '\(text)' overflows")
        fuzzCheck(range.length == count + 1, "Content-Range '\(text)' has length \(range.length), not \(count + 1)")
    }
    return 0
}

/// The request path of a route, as a client builds it.
func path(of route: Route) -> String? {
    switch route {
    case .base: return "/v2/"
    case .catalog: return "/v2/_catalog"
    case .tags(let name): return "/v2/\(name)/tags/list"
    case .manifest(let name, let reference): return "/v2/\(name)/manifests/\(reference)"
    case .blob(let name, let digest): return "/v2/\(name)/blobs/\(digest)"
    case .uploads(let name): return "/v2/\(name)/blobs/uploads/"
    case .upload(let name, let id): return "/v2/\(name)/blobs/uploads/\(id)"
    case .referrers(let name, let digest): return "/v2/\(name)/referrers/\(digest)"
    }
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzRegistryRoutes`.
@_cdecl("FuzzRegistryRoutes_main")
public func fuzzRegistryRoutesMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzRegistryRoutes)
}
