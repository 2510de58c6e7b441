#if canImport(Glibc)
import Glibc
#endif

/// The log files that processes outliving the daemon (fronts, instances) write their output to: opened
/// for appending, read from their end, and kept to a size.
///
/// The writers hold their log open as their standard output and error, and keep running when the daemon
/// stops, so nothing relays their output and no pipe can break under them. The size is kept from outside,
/// as logrotate's `copytruncate` does: once a log passes its limit, its content is copied to `PATH.1`
/// (replacing the one before) and the log is emptied. A writer that opened the log with `O_APPEND` (as
/// ``openForAppending(_:)`` does) then goes on at its new end, with no hole. What is written between the
/// copy and the truncation is lost; at the limits used here that is a few lines in every few megabytes.
public enum LogFile {
    /// The limit a log is kept to (10 MiB, kubelet's default for a container's log), beside one earlier
    /// file of at most as much.
    public static let defaultLimit = 10 << 20

    /// Opens (creating it, mode 0600) `path` for appending; the descriptor is the caller's to close.
    public static func openForAppending(_ path: String) -> Int32? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        return fd >= 0 ? fd : nil
    }

    /// The last `bytes` of the file at `path` (read from its end: a log can be large), as text; empty if
    /// it cannot be read.
    public static func tail(of path: String, bytes: Int) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return "" }
        let start = max(0, size - off_t(bytes))
        var buffer = [UInt8](repeating: 0, count: Int(size - start))
        let count = pread(fd, &buffer, buffer.count, start)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : ""
    }

    /// Keeps the log at `path` to `limit` bytes: when it is larger, copies its last `limit` bytes to
    /// `PATH.1` (written beside it and renamed into place, so `PATH.1` is always whole) and empties it.
    /// Returns whether it emptied it.
    @discardableResult
    public static func keep(_ path: String, to limit: Int = defaultLimit) -> Bool {
        let source = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard source >= 0 else { return false }
        defer { close(source) }
        var info = stat()
        guard fstat(source, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) > limit else { return false }
        let partial = path + ".1.partial"
        let copy = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard copy >= 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        // A writer faster than the checks leaves more than the limit: the older part is dropped.
        var offset = info.st_size - off_t(limit)
        var copied = true
        while offset < info.st_size {
            let count = pread(source, &buffer, min(buffer.count, Int(info.st_size - offset)), offset)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                copied = count == 0
                break
            }
            guard writeAll(copy, buffer[..<count]) else {
                copied = false
                break
            }
            offset += off_t(count)
        }
        close(copy)
        // A copy that failed (a full disk, say) leaves `PATH.1` as it was, and the log is emptied all the
        // same: the disk matters more to everything else on the machine than these lines.
        if !copied || rename(partial, path + ".1") != 0 { unlink(partial) }
        return ftruncate(source, 0) == 0
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
