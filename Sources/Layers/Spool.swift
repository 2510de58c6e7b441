#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// An anonymous temporary file that keeps bytes taken out of archives until a layer is written, so that
/// entries can be sorted without holding their contents in memory. It is unlinked as soon as it is
/// created and so vanishes with the process.
public final class Spool: @unchecked Sendable {
    let fd: Int32
    private var length: Int64 = 0

    /// Creates a spool in `directory` (default: `$TMPDIR` or `/tmp`).
    public init(directory: String? = nil) throws(LayerError) {
        let dir = directory ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array((dir + "/imgbuild-spool-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw .writeFailed(reason: "cannot create a spool file in \(dir): \(String(cString: strerror(errno)))") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Appends bytes; returns nothing, the caller tracks offsets through ``currentLength``.
    func append(_ bytes: UnsafeRawBufferPointer) throws(LayerError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(length))
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(reason: "spool file: \(String(cString: strerror(errno)))")
            }
            done += n
            length += Int64(n)
        }
    }

    /// Appends `count` zeros as a hole of the file (nothing is allocated or written).
    func appendHole(_ count: Int64) throws(LayerError) {
        guard count > 0 else { return }
        let (end, overflow) = length.addingReportingOverflow(count)
        guard !overflow, ftruncate(fd, off_t(end)) == 0 else {
            throw .writeFailed(reason: "spool file: cannot grow to \(end) bytes: \(overflow ? "too large" : String(cString: strerror(errno)))")
        }
        length = end
    }

    var currentLength: Int64 { length }

    /// Reads `size` bytes from `offset` in chunks.
    func read(offset: Int64, size: Int64, _ body: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var position = offset
        let end = offset + size
        while position < end {
            let want = Int(min(Int64(chunk), end - position))
            let n = pread(fd, buffer.baseAddress, want, off_t(position))
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(reason: "spool file: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw .writeFailed(reason: "spool file ended early") }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            position += Int64(n)
        }
    }
}
