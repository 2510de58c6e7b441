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
