#if canImport(Glibc)
import Glibc
#endif
/// One entry of a layer's tar archive, with its metadata already normalised.
///
/// Entries carry no timestamps: every entry of a layer gets the build's SOURCE_DATE_EPOCH as its mtime.
public struct LayerEntry: Sendable, Equatable {
    /// What the entry is, and where a regular file's bytes come from.
    public enum Kind: Sendable, Equatable {
        case directory
        case regularFile(Content)
        case symlink(target: String)
        /// A hard link to an earlier regular file of the same layer (a path in the layer).
        case hardlink(target: String)
    }

    /// Where the bytes of a regular file are read from when the layer is written.
    public enum Content: Sendable, Equatable {
        /// A file on disk, expected to have exactly `size` bytes; `stamp` is its `stat` data when read.
        case file(path: String, size: Int64, stamp: FileStamp? = nil)
        /// A range of the layer tree's spool file (bytes taken out of an archive).
        case spool(offset: Int64, size: Int64)

        public var size: Int64 {
            switch self {
            case .file(_, let size, _), .spool(_, let size): return size
            }
        }
    }

    /// The path inside the image, relative to its root, without a leading or trailing `/`.
    public var path: String
    public var kind: Kind
    /// Permission bits, including setuid, setgid and sticky (`0o7777` at most).
    public var mode: UInt32
    public var uid: Int
    public var gid: Int

    public init(path: String, kind: Kind, mode: UInt32, uid: Int = 0, gid: Int = 0) {
        self.path = path
        self.kind = kind
        self.mode = mode & 0o7777
        self.uid = uid
        self.gid = gid
    }

    var isDirectory: Bool {
        if case .directory = kind { return true }
        return false
    }
}

/// What `stat` says of a file, standing in for its contents in ``LayerFingerprint`` and
/// ``ContextSnapshot`` (as in git's index).
public struct FileStamp: Sendable, Equatable {
    public var device: UInt64
    public var inode: UInt64
    /// Type and permission bits (`st_mode`).
    public var mode: UInt32
    public var size: Int64
    public var modified: timespec
    public var changed: timespec

    public init(device: UInt64, inode: UInt64, mode: UInt32, size: Int64, modified: timespec, changed: timespec) {
        self.device = device
        self.inode = inode
        self.mode = mode
        self.size = size
        self.modified = modified
        self.changed = changed
    }

    public init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        mode = UInt32(info.st_mode)
        size = Int64(info.st_size)
        modified = info.st_mtim
        changed = info.st_ctim
    }

    public static func == (a: FileStamp, b: FileStamp) -> Bool {
        a.device == b.device && a.inode == b.inode && a.mode == b.mode && a.size == b.size
            && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
            && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
    }

    /// Whether the file changed at or after `second` (seconds since 1970): such stat data could stay the
    /// same through another write in the same clock tick, so it is "racily clean" and not trusted. Only
    /// the change time tells: every write, `chmod` or `utimensat` sets it to the kernel's clock, while the
    /// modification time may be anything a tool sets (a file from a machine whose clock was years ahead
    /// would otherwise never be trusted).
    public func touched(since second: Int) -> Bool {
        changed.tv_sec >= second
    }
}

/// Paths inside an image.
public enum LayerPath {
    /// Normalises a path from an archive or an Imagefile into the form layers use (`usr/bin/sh`):
    /// leading `/` and `./` removed, `.` and empty components dropped. Returns nil if a `..` component
    /// would climb above the root, and an empty string for the root itself.
    public static func normalize(_ raw: String) -> String? {
        var parts: [Substring] = []
        for component in raw.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." {
                // Never allowed to climb, even when it would stay inside: archives that do it are hostile.
                return nil
            }
            parts.append(component)
        }
        return parts.joined(separator: "/")
    }

    /// Whether `a` sorts before `b` by their UTF-8 bytes (the order of entries in a layer), with a
    /// `memcmp` fast path for native strings.
    @inlinable
    public static func precedes(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { x in
            b.utf8.withContiguousStorageIfAvailable { y -> Bool in
                let common = Swift.min(x.count, y.count)
                if common > 0 {
                    let order = memcmp(x.baseAddress!, y.baseAddress!, common)
                    if order != 0 { return order < 0 }
                }
                return x.count < y.count
            }
        }
        if let result = fast ?? nil { return result }
        return a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    /// `a/b` joined under `prefix`.
    public static func join(_ prefix: String, _ path: String) -> String {
        if prefix.isEmpty { return path }
        if path.isEmpty { return prefix }
        return prefix + "/" + path
    }

    /// The parent of `a/b/c` is `a/b`; of `a` is the root (nil).
    public static func parent(of path: String) -> String? {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        return String(path[..<slash])
    }
}
