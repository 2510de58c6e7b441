import Foundation
import HTTPTypes
import Hummingbird
import OCI
import RegistryRoutes
import Store

extension RegistryResponder {
    /// GET/HEAD a blob, with one `Range: bytes=…` (206), 416 for a range outside it. An empty blob is
    /// served like any other (200, `Content-Length: 0`). Streams from disk.
    func getBlob(_ text: String, _ request: Request, head: Bool) throws -> Response {
        let unknown = RegistryError(.notFound, .blobUnknown, "blob \(text) is not known")
        let digest = try digest(text, missing: unknown)
        guard store.hasBlob(digest) else { throw unknown }
        let size = try store.blobSize(digest)
        var headers = HTTPFields()
        headers[.dockerContentDigest] = digest.description
        headers[.contentType] = "application/octet-stream"
        headers[.acceptRanges] = "bytes"
        var range: ClosedRange<Int64>? = size > 0 ? 0...(size - 1) : nil
        var status = HTTPResponse.Status.ok
        if let header = request.headers[.range] {
            switch ByteRange.parse(header, size: size) {
            case .ignored:
                break
            case .unsatisfiable:
                headers[.contentRange] = "bytes */\(size)"
                throw RegistryError(.rangeNotSatisfiable, .rangeInvalid, "the range '\(header)' is not within the blob's \(size) bytes", headers: headers)
            case .satisfiable(let requested):
                range = requested
                status = .partialContent
                headers[.contentRange] = "bytes \(requested.lowerBound)-\(requested.upperBound)/\(size)"
            }
        }
        headers[.contentLength] = String(range.map { $0.upperBound - $0.lowerBound + 1 } ?? 0)
        guard !head, let range else { return Response(status: status, headers: headers) }
        return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: FileChunkSequence(path: store.blobPath(digest), range: range)))
    }
}

/// A file's bytes in a range, read on demand in 1 MiB chunks. (Hummingbird's FileIO was tried instead:
/// with it a graceful shutdown cut responses in flight, which the shutdown test catches.)
struct FileChunkSequence: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String
    let range: ClosedRange<Int64>

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle?
        var position: Int64
        let end: Int64

        mutating func next() async throws -> ByteBuffer? {
            guard let handle, position <= end else { try? handle?.close(); return nil }
            try handle.seek(toOffset: UInt64(position))
            let count = Int(Swift.min(Int64(1 << 20), end - position + 1))
            guard let data = try handle.read(upToCount: count), !data.isEmpty else { return nil }
            position += Int64(data.count)
            return ByteBuffer(bytes: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: FileHandle(forReadingAtPath: path), position: range.lowerBound, end: range.upperBound)
    }
}
