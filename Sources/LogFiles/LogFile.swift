#if canImport(Glibc)
import Glibc
#endif

/// The log files that processes outliving the daemon (fronts, instances) write their output to: opened
/// for appending, read from their end, and kept to a size.
///
/// The writers hold their log open as their standard output and error, and keep running when the daemon
/// stops, so nothing relays their output and no pipe can break under them. The size is kept from outside,
/// as logrotate's `copytruncate` does: once a log holds more than its limit, its last part is copied to
/// `PATH.1` (replacing the one before) and the log is emptied. A writer that opened the log with
/// `O_APPEND` (as ``openForAppending(_:emptied:)`` does) then goes on at its new end. One that did not (an
/// instance started by an older daemon) goes on at its old offset, behind a hole that takes no disk: the
/// content is measured from the first byte of data, not from the start of the file.
public enum LogFile {
    /// The limit a log is kept to (10 MiB, kubelet's default for a container's log), beside one earlier
    /// file of about as much.
    public static let defaultLimit = 10 << 20

    /// `SEEK_DATA` (Linux's lseek(2): the next offset that holds data), which Glibc's module leaves out
    /// (it is behind `_GNU_SOURCE`).
    private static let seekData: Int32 = 3

    /// Opens `path` for appending (creating it with mode 0600, and emptying it if `emptied`); the
    /// descriptor is the caller's to close.
    /// A path that names no regular file of its own (a FIFO, a link to another file) is refused.
    public static func openForAppending(_ path: String, emptied: Bool = false) -> Int32? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink == 1 else {
            close(fd)
            return nil
        }
        _ = fcntl(fd, F_SETFL, O_APPEND)
        fchmod(fd, 0o600)
        if emptied { ftruncate(fd, 0) }
        return fd
    }

    /// Appends `text` to the log at `path`; a log that cannot be written (a full disk) is left as it is.
    public static func append(_ text: String, to path: String) {
        guard let fd = openForAppending(path) else { return }
        defer { close(fd) }
        _ = writeAll(fd, ArraySlice(text.utf8))
    }

    /// The last `bytes` of the log at `path`, as text, read from its end (a log can be large); when the log
    /// holds fewer (it was just emptied), the rest comes from the end of `PATH.1`. Empty if neither can be read.
    public static func tail(of path: String, bytes: Int) -> String {
        let recent = readEnd(of: path, bytes: bytes)
        guard recent.count < bytes else { return String(decoding: recent, as: UTF8.self) }
        return String(decoding: readEnd(of: path + ".1", bytes: bytes - recent.count) + recent, as: UTF8.self)
    }

    /// Keeps the log at `path` to `limit` bytes of content: when it holds more, copies its last `limit`
    /// bytes (and what is written meanwhile) to `PATH.1`, written beside it and renamed into place so that
    /// `PATH.1` is always whole, then empties it. Returns whether it emptied it.
    ///
    /// A log that is not a regular file with one link (a FIFO, a link to another file) is left alone. If the
    /// copy cannot be made (a full disk), the log is emptied all the same: the disk matters more to
    /// everything else on the machine than these lines.
    @discardableResult
    public static func keep(_ path: String, to limit: Int = defaultLimit) -> Bool {
        // Everything by the folder opened once: if it is removed meanwhile (an instance started again
        // removes and makes its folder anew), nothing of this copy lands in the new one.
        let slash = path.lastIndex(of: "/")
        let folderPath = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let folder = open(folderPath.isEmpty ? "/" : folderPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard folder >= 0 else { return false }
        defer { close(folder) }
        let source = openat(folder, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard source >= 0 else { return false }
        defer { close(source) }
        guard let (dataStart, size) = extent(of: source), size - dataStart > off_t(limit) else { return false }
        let partial = name + ".1.partial"
        unlinkat(folder, partial, 0)
        let copy = openat(folder, partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if copy >= 0 {
            // A writer faster than the checks leaves more than the limit: the older part is dropped. What is
            // written while the copy runs is copied too, until the log stops growing (or five rounds), so
            // that only the instant before the truncation is lost.
            var copied = copyRange(from: source, to: copy, start: size - off_t(limit), end: size)
            var end = size
            for _ in 0..<5 where copied {
                guard let (_, now) = extent(of: source), now > end else { break }
                copied = copyRange(from: source, to: copy, start: end, end: now)
                end = now
            }
            close(copy)
            if !copied || renameat(folder, partial, folder, name + ".1") != 0 {
                unlinkat(folder, partial, 0)
                // An older .1 left beside the emptied log would read as what came just before it.
                unlinkat(folder, name + ".1", 0)
            }
        } else {
            unlinkat(folder, name + ".1", 0)
        }
        return ftruncate(source, 0) == 0
    }

    /// Where the data of a regular file with one link starts (after a leading hole) and its size.
    private static func extent(of fd: Int32) -> (dataStart: off_t, size: off_t)? {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_nlink == 1 else { return nil }
        return (dataStart(of: fd, size: info.st_size), info.st_size)
    }

    /// The offset of the first byte written after a leading hole (a writer without `O_APPEND` goes on at
    /// its old offset after the log was emptied). File systems report data by whole blocks, so the zero
    /// bytes at the start of the first block are skipped too; a writer's text holds none.
    private static func dataStart(of fd: Int32, size: off_t) -> off_t {
        let data = lseek(fd, 0, seekData)
        // ENXIO: no data at all. Any other failure: counted from the start, so that the log is still kept.
        guard data >= 0 else { return errno == ENXIO ? size : 0 }
        guard data > 0 else { return 0 }
        var block = [UInt8](repeating: 0, count: 4096)
        let count = pread(fd, &block, block.count, data)
        guard count > 0 else { return min(data, size) }
        return min(data + off_t(block[..<count].firstIndex { $0 != 0 } ?? count), size)
    }

    /// The last `bytes` of the data of the regular file at `path` (never the hole before it).
    private static func readEnd(of path: String, bytes: Int) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var info = stat()
        guard bytes > 0, fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size > 0 else { return [] }
        let start = max(dataStart(of: fd, size: info.st_size), info.st_size - off_t(bytes))
        guard start < info.st_size else { return [] }
        var buffer = [UInt8](repeating: 0, count: Int(info.st_size - start))
        let count = pread(fd, &buffer, buffer.count, start)
        return count > 0 ? Array(buffer[..<count]) : []
    }

    /// Copies bytes `start..<end` of `source` to the end of `copy`; false if a read or write failed.
    private static func copyRange(from source: Int32, to copy: Int32, start: off_t, end: off_t) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset = start
        while offset < end {
            let count = pread(source, &buffer, min(buffer.count, Int(end - offset)), offset)
            if count < 0 && errno == EINTR { continue }
            // The log emptied meanwhile (an instance started again): what was read is what there is.
            if count == 0 { return true }
            guard count > 0, writeAll(copy, buffer[..<count]) else { return false }
            offset += off_t(count)
        }
        return true
    }

    private static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var rest = bytes
        while !rest.isEmpty {
            let written = rest.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return false }
            rest = rest.dropFirst(written)
        }
        return true
    }
}
