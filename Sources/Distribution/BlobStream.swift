import Foundation
import NIOCore
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// Blob bytes as a pull-based stream of buffers: nothing is read before it is asked for, so a slow
/// receiver holds the sender back and memory stays flat.
public typealias BlobStream = AsyncThrowingStream<ByteBuffer, any Error>

/// Opens a blob's bytes from a given offset (to resume an interrupted transfer).
public typealias BlobOpener = @Sendable (_ offset: Int64) async throws -> BlobStream

enum FileStreams {
    static let chunk = 1 << 20

    /// A file's bytes from `offset`, read in 1 MiB chunks on demand.
    static func stream(path: String, offset: Int64 = 0) throws -> BlobStream {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DistributionError.transport(operation: "open \(path)", reason: String(cString: strerror(errno))) }
        let reader = FileReader(fd: fd, position: offset)
        return BlobStream(unfolding: { try reader.next() })
    }

    final class FileReader: @unchecked Sendable {
        let fd: Int32
        var position: Int64
        var closed = false
        init(fd: Int32, position: Int64) { self.fd = fd; self.position = position }
        deinit { if !closed { close(fd) } }

        func next() throws -> ByteBuffer? {
            guard !closed else { return nil }
            var buffer = ByteBufferAllocator().buffer(capacity: FileStreams.chunk)
            // A failed read writes nothing into the buffer (it takes no negative count): its errno is kept.
            var failure: Int32 = 0
            let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: FileStreams.chunk) { raw in
                let read = pread(fd, raw.baseAddress, FileStreams.chunk, off_t(position))
                if read < 0 { failure = errno }
                return max(read, 0)
            }
            if failure != 0 { throw DistributionError.transport(operation: "read", reason: String(cString: strerror(failure))) }
            if n == 0 { close(fd); closed = true; return nil }
            position += Int64(n)
            return buffer
        }
    }
}

/// Wraps another async iterator (such as an HTTP response body) as a ``BlobStream``.
final class IteratorBox<Base: AsyncIteratorProtocol>: @unchecked Sendable where Base.Element == ByteBuffer {
    var base: Base
    init(_ base: Base) { self.base = base }
    func next() async throws -> ByteBuffer? { try await base.next() }
}

extension BlobStream {
    static func wrapping<S: AsyncSequence & Sendable>(_ sequence: S) -> BlobStream where S.Element == ByteBuffer {
        let box = IteratorBox(sequence.makeAsyncIterator())
        return BlobStream(unfolding: { try await box.next() })
    }
}

extension BlobStream {
    /// Writes the stream to `fd`, hashing as it goes, and checks it against `descriptor`: exactly its size
    /// and its digest. Throws before the caller makes anything visible. Returns the bytes written.
    func writeVerified(to fd: Int32, expecting descriptor: Descriptor) async throws -> Int64 {
        let hasher = SHA256Hasher()
        var size: Int64 = 0
        for try await chunk in self {
            size += Int64(chunk.readableBytes)
            guard size <= descriptor.size else { break }
            try chunk.withUnsafeReadableBytes { raw in
                hasher.update(raw)
                var done = 0
                while done < raw.count {
                    let n = write(fd, raw.baseAddress! + done, raw.count - done)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw DistributionError.transport(operation: "write blob \(descriptor.digest)", reason: String(cString: strerror(errno))) }
                    done += n
                }
            }
        }
        guard size == descriptor.size else { throw DistributionError.sizeMismatch(what: "blob \(descriptor.digest)", expected: descriptor.size, actual: size) }
        let actual = hasher.finalize()
        guard actual == descriptor.digest else { throw DistributionError.digestMismatch(what: "blob", expected: descriptor.digest, actual: actual) }
        return size
    }
}
