#if canImport(Glibc)
import Glibc
#endif

/// Writes a record file as little-endian integers, texts (length, bytes, NUL) and stamps: the
/// context snapshots and the build replays are such files.
public struct ByteRecordWriter {
    static let stampSize = 8 + 8 + 4 + 8 + 4 * 8
    /// What was written so far.
    public internal(set) var buffer: [UInt8] = []

    public init() {}

    /// Bytes as they are, with no length: a magic line.
    public mutating func bytes(_ more: [UInt8]) { buffer.append(contentsOf: more) }

    public mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { buffer.append(contentsOf: $0) }
    }

    /// A text without NUL: its length, its bytes and a NUL (so that it can be handed to the kernel
    /// where it lies).
    public mutating func text(_ value: String) {
        integer(UInt32(value.utf8.count))
        buffer.append(contentsOf: value.utf8)
        buffer.append(0)
    }

    /// Any bytes, after their length.
    public mutating func block(_ value: [UInt8]) {
        integer(UInt64(value.count))
        buffer.append(contentsOf: value)
    }

    public mutating func stamp(_ stamp: FileStamp) {
        integer(stamp.device)
        integer(stamp.inode)
        integer(stamp.mode)
        integer(stamp.size)
        integer(Int64(stamp.modified.tv_sec))
        integer(Int64(stamp.modified.tv_nsec))
        integer(Int64(stamp.changed.tv_sec))
        integer(Int64(stamp.changed.tv_nsec))
    }
}

/// Reads what ``ByteRecordWriter`` wrote, checking every length against the bytes left: a cut or
/// damaged record reads as nil, never out of bounds. It reads bytes it does not own: they must outlive it
/// (``ByteStorage``, or an array's `withUnsafeBytes`).
public struct ByteRecordReader {
    let buffer: UnsafeRawBufferPointer
    var offset = 0

    public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    public var isAtEnd: Bool { offset == buffer.count }

    /// Whether the next bytes are `expected` (skipped if so).
    public mutating func expect(_ expected: [UInt8]) -> Bool {
        guard buffer.count - offset >= expected.count, buffer[offset..<(offset + expected.count)].elementsEqual(expected) else { return false }
        offset += expected.count
        return true
    }

    mutating func skip(_ count: Int) -> Bool {
        guard count >= 0, buffer.count - offset >= count else { return false }
        offset += count
        return true
    }

    public mutating func integer<T: FixedWidthInteger>() -> T? {
        let start = offset
        guard skip(MemoryLayout<T>.size) else { return nil }
        return T(littleEndian: buffer.loadUnaligned(fromByteOffset: start, as: T.self))
    }

    /// A count of items that follow, each at least one byte long: more than the bytes left is corrupt.
    public mutating func count() -> Int? {
        guard let value: UInt64 = integer(), value <= UInt64(buffer.count - offset) else { return nil }
        return Int(value)
    }

    /// Skips a text, returning where it starts: no NUL inside, a NUL after.
    mutating func text() -> Int? {
        let start = offset
        guard let length: UInt32 = integer(), skip(Int(length) + 1), buffer[offset - 1] == 0,
              memchr(buffer.baseAddress! + start + 4, 0, Int(length)) == nil else { return nil }
        return start
    }

    /// A text ``ByteRecordWriter/text(_:)`` wrote.
    public mutating func readText() -> String? {
        guard let start = text() else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[(start + 4)..<(offset - 1)]), as: UTF8.self)
    }

    /// Bytes ``ByteRecordWriter/block(_:)`` wrote.
    public mutating func readBlock() -> [UInt8]? {
        guard let length: UInt64 = integer(), length <= UInt64(buffer.count - offset) else { return nil }
        defer { offset += Int(length) }
        return Array(buffer[offset..<(offset + Int(length))])
    }

    /// A stamp ``ByteRecordWriter/stamp(_:)`` wrote.
    public mutating func readStamp() -> FileStamp? {
        let start = offset
        guard skip(ByteRecordWriter.stampSize) else { return nil }
        return Self.stamp(at: start, in: buffer)
    }

    static func stamp(at offset: Int, in raw: UnsafeRawBufferPointer) -> FileStamp {
        func load<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T { T(littleEndian: raw.loadUnaligned(fromByteOffset: offset + at, as: T.self)) }
        return FileStamp(device: load(0, UInt64.self), inode: load(8, UInt64.self), mode: load(16, UInt32.self), size: load(20, Int64.self),
                         modified: timespec(tv_sec: Int(load(28, Int64.self)), tv_nsec: Int(load(36, Int64.self))),
                         changed: timespec(tv_sec: Int(load(44, Int64.self)), tv_nsec: Int(load(52, Int64.self))))
    }
}

/// Bytes a record is read from, kept for as long as anything reads them: a copy of an array's, or a
/// file's read into memory made whole at once (a rebuild's 20,000-file snapshot is 1.5 MB: page by
/// page, a fresh buffer takes some 400 page faults while it is filled). Read, not mapped: a mapped file
/// cut short while it is read would kill the process (SIGBUS); a read file only misses.
public final class ByteStorage: @unchecked Sendable {
    /// The bytes; immutable for the storage's lifetime.
    public let buffer: UnsafeRawBufferPointer
    private let release: () -> Void

    /// A copy of `bytes`.
    public init(_ bytes: [UInt8]) {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 16)
        bytes.withUnsafeBytes { memory.copyMemory(from: $0) }
        buffer = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(memory)[..<bytes.count])
        release = { memory.deallocate() }
    }

    /// `size` bytes of the file open at `fd`, from `offset`; nil when fewer can be read.
    public init?(reading fd: Int32, offset: Int, size: Int) {
        guard offset >= 0, size > 0 else { return nil }
        // MAP_POPULATE: the pages are made in one call, not faulted in one by one as the read fills them.
        guard let memory = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0),
              memory != MAP_FAILED else { return nil }
        var done = 0
        while done < size {
            let n = pread(fd, memory + done, size - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        guard done == size else {
            munmap(memory, size)
            return nil
        }
        buffer = UnsafeRawBufferPointer(start: memory, count: size)
        release = { munmap(memory, size) }
    }

    deinit { release() }
}
