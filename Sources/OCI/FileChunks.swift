import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reads files in fixed-size chunks, so that memory stays flat whatever the file's size.
public enum FileChunks {
    /// The size of one read.
    public static let chunkSize = 1 << 20

    /// An error reading a file, naming it and the system's reason.
    public struct ReadError: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "cannot read '\(path)': \(reason)" }
    }

    /// Calls `body` with each chunk of the file in order; returns the number of bytes read.
    @discardableResult
    public static func forEach(path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ReadError(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        return try forEach(fd: fd, path: path, body)
    }

    /// Calls `body` with each chunk read from an open descriptor until end of file.
    @discardableResult
    public static func forEach(fd: Int32, path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let n = read(fd, buffer.baseAddress, chunkSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadError(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { return total }
            total += Int64(n)
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
    }
}
