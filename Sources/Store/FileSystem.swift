import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// Small, careful file-system operations the store is built from: every write is a temporary file,
/// fsynced, then renamed or linked into place, and the folder is fsynced after.
enum FileSystem {
    static func errorText() -> String { String(cString: strerror(errno)) }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// Whether `path` was last modified strictly after `other` (false if either is missing).
    static func modified(_ path: String, after other: String) -> Bool {
        var a = stat(), b = stat()
        guard stat(path, &a) == 0, stat(other, &b) == 0 else { return false }
        return (a.st_mtim.tv_sec, a.st_mtim.tv_nsec) > (b.st_mtim.tv_sec, b.st_mtim.tv_nsec)
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates a folder and its parents.
    static func makeDirectories(_ path: String) throws(StoreError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw failure(path, error: (error as NSError).userInfo[NSUnderlyingErrorKey].map { "\($0)" } ?? "\(error)")
        }
    }

    static func failure(_ path: String, error: String? = nil) -> StoreError {
        let code = errno
        let reason = error ?? errorText()
        if code == EROFS || code == EACCES || code == EPERM { return .readOnly(path: path, reason: reason) }
        return .io(path: path, reason: reason)
    }

    /// Creates a new temporary file in `directory`; returns its descriptor and path.
    static func temporaryFile(in directory: String, prefix: String) throws(StoreError) -> (fd: Int32, path: String) {
        var template = Array("\(directory)/\(prefix)-\(getpid())-XXXXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw failure(directory) }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return (fd, path)
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(StoreError) {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw failure(path)
            }
            done += n
        }
    }

    static func writeAll(_ fd: Int32, _ data: Data, path: String) throws(StoreError) {
        let failure: StoreError? = data.withUnsafeBytes { raw in
            do throws(StoreError) { try writeAll(fd, raw, path: path) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    static func fsync(_ fd: Int32, path: String) throws(StoreError) {
        guard Glibc.fsync(fd) == 0 else { throw failure(path) }
    }

    static func fsyncDirectory(_ path: String) throws(StoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path) }
        defer { close(fd) }
        guard Glibc.fsync(fd) == 0 else { throw failure(path) }
    }

    /// Writes `data` to a temporary file in `temporaryDirectory`, fsyncs it, and returns its path.
    static func stage(_ data: Data, in temporaryDirectory: String, mode: mode_t = 0o444) throws(StoreError) -> String {
        let (fd, path) = try temporaryFile(in: temporaryDirectory, prefix: "stage")
        defer { close(fd) }
        do throws(StoreError) {
            try writeAll(fd, data, path: path)
            try fsync(fd, path: path)
            fchmod(fd, mode)
        } catch {
            unlink(path)
            throw error
        }
        return path
    }

    /// Replaces `destination` with `data` atomically (readers see the old or the new file, never a mix).
    static func replace(_ destination: String, with data: Data, temporaryDirectory: String, mode: mode_t = 0o644) throws(StoreError) {
        let staged = try stage(data, in: temporaryDirectory, mode: mode)
        guard rename(staged, destination) == 0 else {
            let error = failure(destination)
            unlink(staged)
            throw error
        }
        try fsyncDirectory((destination as NSString).deletingLastPathComponent)
    }

    /// Reads a whole small file (manifests, configs, tags).
    static func read(_ path: String, limit: Int = ManifestLimit.maxBytes) throws(StoreError) -> Data {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw failure(path) }
        defer { try? handle.close() }
        do {
            let data = try handle.read(upToCount: limit + 1) ?? Data()
            guard data.count <= limit else { throw StoreError.io(path: path, reason: "larger than \(limit) bytes") }
            return data
        } catch let error as StoreError {
            throw error
        } catch {
            throw .io(path: path, reason: "\(error)")
        }
    }

    /// Lists the names in a folder (without `.` and `..`); empty if it does not exist.
    static func list(_ path: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    }
}

/// An advisory lock on a file (flock), held until deinit. Locks die with their process, so a killed
/// process never leaves one behind.
final class FileLock {
    private let fd: Int32

    /// Takes the lock, calling `onWait` once first if it is held elsewhere; if `onWait` throws, the lock
    /// is not waited for and its error is thrown.
    init(path: String, shared: Bool = false, onWait: () throws(StoreError) -> Void = {}) throws(StoreError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystem.failure(path) }
        if flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0 {
            self.fd = fd
            return
        }
        do { try onWait() } catch {
            close(fd)
            throw error
        }
        while flock(fd, shared ? LOCK_SH : LOCK_EX) != 0 {
            if errno != EINTR {
                let error = FileSystem.failure(path)
                close(fd)
                throw error
            }
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
