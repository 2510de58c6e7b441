import Foundation
import HTTPTypes
import Hummingbird
import OCI
import Store

extension RegistryResponder {
    /// GET/HEAD a blob, with `Range: bytes=a-b` (206) and 416 for a range outside it. Streams from disk.
    func getBlob(_ text: String, _ request: Request, head: Bool) throws -> Response {
        let digest = try digest(text)
        guard store.hasBlob(digest) else { throw RegistryError(.notFound, .blobUnknown, "blob \(digest) is not known") }
        let size = try store.blobSize(digest)
        var headers = HTTPFields()
        headers[.dockerContentDigest] = digest.description
        headers[.contentType] = "application/octet-stream"
        headers[.acceptRanges] = "bytes"
        var range: ClosedRange<Int64> = 0...(size - 1)
        var status = HTTPResponse.Status.ok
        if let header = request.headers[.range] {
            guard let requested = Self.parseRange(header, size: size) else {
                headers[.contentRange] = "bytes */\(size)"
                throw RegistryError(.rangeNotSatisfiable, .rangeInvalid, "the range '\(header)' is not within the blob's \(size) bytes", headers: headers)
            }
            range = requested
            status = .partialContent
            headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)"
        }
        let length = size == 0 ? 0 : range.upperBound - range.lowerBound + 1
        headers[.contentLength] = String(length)
        if head || length == 0 { return Response(status: status, headers: headers) }
        return Response(status: status, headers: headers, body: ResponseBody(asyncSequence: FileChunkSequence(path: store.blobPath(digest), range: range)))
    }

    /// `bytes=a-b`, `bytes=a-`, `bytes=-n`.
    static func parseRange(_ header: String, size: Int64) -> ClosedRange<Int64>? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int64(last), suffix > 0 else { return nil }
            return max(0, size - suffix)...(size - 1)
        }
        guard let start = Int64(first), start < size else { return nil }
        let end = last.isEmpty ? size - 1 : min(Int64(last) ?? -1, size - 1)
        return end >= start ? start...end : nil
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
