import CArchive

/// libarchive's message for the last error on `archive`.
func archiveError(_ archive: OpaquePointer) -> String {
    guard let message = archive_error_string(archive) else { return "unknown libarchive error" }
    return String(cString: message)
}

/// libarchive's file type constants (its header defines them as casts, which Swift does not import).
enum ArchiveFileType {
    static let regular: UInt32 = 0o100000
    static let symlink: UInt32 = 0o120000
    static let socket: UInt32 = 0o140000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
    static let directory: UInt32 = 0o040000
    static let fifo: UInt32 = 0o010000
}

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with this thread's character-set locale fixed to C.UTF-8, whatever `LANG` or `LC_ALL`
/// say, so that libarchive reads and writes names as UTF-8 and its output never depends on the
/// machine's locale.
func withUTF8Locale<T>(_ body: () throws(LayerError) -> T) throws(LayerError) -> T {
    guard let utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil) else {
        throw .writeFailed(reason: "the C.UTF-8 locale is missing from this system's C library")
    }
    let previous = uselocale(utf8)
    defer {
        uselocale(previous)
        freelocale(utf8)
    }
    return try body()
}
