import CXattr
import Foundation
import OCI

/// What a release's root holds, entry by entry: every path with its type, permission bits, owner and
/// content (a file's SHA-256 and size, a link's target, a device's numbers), in one canonical order.
///
/// Its ``digest`` is recorded when the release is unpacked, and the tree is scanned again before each
/// instance starts: the bytes that run are the bytes that were verified, signed and tested, and a change
/// made since (by a hand, a disk or an attacker with the host's root) is named path by path.
/// Times are left out: they change without the content changing, and they are not what was tested.
public struct ReleaseTree: Sendable, Equatable {
    /// Each path (from the root, as `/etc/passwd`, bytes outside printable ASCII written `%XX`) and its entry.
    public let entries: [String: String]

    /// The canonical listing: one `path<TAB>entry` line per path, sorted by path.
    public var listing: String {
        entries.keys.sorted().map { "\($0)\t\(entries[$0]!)\n" }.joined()
    }

    /// The SHA-256 of ``listing``.
    public var digest: Digest { Digest.of(Data(listing.utf8)) }

    init(entries: [String: String]) {
        self.entries = entries
    }

    /// Reads a listing written by ``listing``; nil when it is not one.
    public init?(listing: String) {
        var entries: [String: String] = [:]
        for line in listing.split(separator: "\n") {
            guard let tab = line.firstIndex(of: "\t") else { return nil }
            entries[String(line[..<tab])] = String(line[line.index(after: tab)...])
        }
        self.entries = entries
    }

    /// Scans the tree below `root` without following any symbolic link.
    public static func scan(_ root: String) throws(ReleaseTreeError) -> ReleaseTree {
        var entries: [String: String] = [:]
        var contents: [FileID: String] = [:]
        try scanFolder(Array(root.utf8), shown: "", into: &entries, contents: &contents)
        var info = stat()
        guard lstat(root, &info) == 0 else { throw .unreadable(path: root, reason: String(cString: strerror(errno))) }
        entries["/"] = try describe(root, info: info, contents: &contents)
        return ReleaseTree(entries: entries)
    }

    /// What differs in `self` (scanned now) from `recorded`: `changed /path`, `added /path`, `removed /path`, sorted.
    public func changes(from recorded: ReleaseTree) -> [String] {
        var changes: [String] = []
        for path in Set(entries.keys).union(recorded.entries.keys).sorted() {
            switch (recorded.entries[path], entries[path]) {
            case (nil, _?): changes.append("added \(path)")
            case (_?, nil): changes.append("removed \(path)")
            case let (before?, after?) where before != after: changes.append("changed \(path)")
            default: break
            }
        }
        return changes
    }

    /// A file as the kernel knows it: hard links to it share one.
    struct FileID: Hashable {
        let device: UInt64
        let inode: UInt64
    }

    private static func scanFolder(_ folder: [UInt8], shown: String, into entries: inout [String: String],
                                   contents: inout [FileID: String]) throws(ReleaseTreeError) {
        let folderPath = String(decoding: folder, as: UTF8.self)
        guard let directory = opendir(folder.map { CChar(bitPattern: $0) } + [0]) else {
            throw .unreadable(path: folderPath, reason: String(cString: strerror(errno)))
        }
        defer { closedir(directory) }
        var names: [[UInt8]] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if name == [0x2E] || name == [0x2E, 0x2E] { continue }
            names.append(name)
        }
        for name in names {
            let path = folder + [0x2F] + name
            let shownPath = shown + "/" + escaped(name)
            var info = stat()
            let cPath = path.map { CChar(bitPattern: $0) } + [0]
            guard lstat(cPath, &info) == 0 else {
                throw .unreadable(path: String(decoding: path, as: UTF8.self), reason: String(cString: strerror(errno)))
            }
            entries[shownPath] = try describe(String(decoding: path, as: UTF8.self), info: info, cPath: cPath, contents: &contents)
            if info.st_mode & S_IFMT == S_IFDIR { try scanFolder(path, shown: shownPath, into: &entries, contents: &contents) }
        }
    }

    /// One entry's description. A file's content is hashed once per inode (`contents`): a hard link costs
    /// nothing more, so a thousand links to one large file cannot make a scan read it a thousand times.
    private static func describe(_ path: String, info: stat, cPath: [CChar]? = nil, contents: inout [FileID: String]) throws(ReleaseTreeError) -> String {
        let permissions = String(info.st_mode & 0o7777, radix: 8)
        let owner = "\(info.st_uid):\(info.st_gid)"
        let what: String
        switch info.st_mode & S_IFMT {
        case S_IFREG where contents[FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))] != nil:
            what = contents[FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))]!
        case S_IFREG:
            let cPath = cPath ?? Array(path.utf8CString)
            // Without blocking, and checked again once open: a file swapped for a fifo cannot hang the scan.
            let fd = open(cPath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            guard fd >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
            defer { close(fd) }
            var opened = stat()
            guard fstat(fd, &opened) == 0, opened.st_mode & S_IFMT == S_IFREG, opened.st_ino == info.st_ino, opened.st_dev == info.st_dev else {
                throw .unreadable(path: path, reason: "it changed while it was read")
            }
            let hasher = SHA256Hasher()
            let size: Int64
            do { size = try FileChunks.forEach(fd: fd, path: path) { hasher.update($0) } } catch {
                throw .unreadable(path: path, reason: (error as? FileChunks.ReadError)?.reason ?? "\(error)")
            }
            what = "file \(hasher.finalize()) \(size)"
            contents[FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))] = what
        case S_IFDIR: what = "dir"
        case S_IFLNK:
            var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let cPath = cPath ?? Array(path.utf8CString)
            let count = target.withUnsafeMutableBufferPointer { readlink(cPath, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count) }
            guard count >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
            what = "link " + escaped(target.prefix(count))
        case S_IFCHR: what = "char \(info.st_rdev)"
        case S_IFBLK: what = "block \(info.st_rdev)"
        case S_IFIFO: what = "fifo"
        case S_IFSOCK: what = "socket"
        default: what = "unknown"
        }
        let cPath = cPath ?? Array(path.utf8CString)
        return "\(what) \(permissions) \(owner)" + (try extendedAttributes(cPath, path: path)).map { " xattr:\($0)" }.joined()
    }

    /// `name=sha256` of each extended attribute (file capabilities, ACLs, SELinux labels…), sorted: a
    /// capability added to a binary changes the tree as much as its bytes would.
    private static func extendedAttributes(_ cPath: [CChar], path: String) throws(ReleaseTreeError) -> [String] {
        let size = llistxattr(cPath, nil, 0)
        if size < 0, errno == ENOTSUP { return [] }
        guard size >= 0 else { throw .unreadable(path: path, reason: "its extended attributes: \(String(cString: strerror(errno)))") }
        guard size > 0 else { return [] }
        var names = [CChar](repeating: 0, count: size)
        let got = llistxattr(cPath, &names, size)
        guard got >= 0 else { throw .unreadable(path: path, reason: "its extended attributes: \(String(cString: strerror(errno)))") }
        var attributes: [String] = []
        for name in names.prefix(got).split(separator: 0) {
            let cName = Array(name) + [0]
            let shown = escaped(name.map { UInt8(bitPattern: $0) })
            let length = lgetxattr(cPath, cName, nil, 0)
            guard length >= 0 else { throw .unreadable(path: path, reason: "its extended attribute \(shown): \(String(cString: strerror(errno)))") }
            var value = [UInt8](repeating: 0, count: length)
            let read = lgetxattr(cPath, cName, &value, length)
            guard read >= 0 else { throw .unreadable(path: path, reason: "its extended attribute \(shown): \(String(cString: strerror(errno)))") }
            attributes.append(shown + "=" + Digest.of(value.prefix(read)).hex)
        }
        return attributes.sorted()
    }

    /// Printable ASCII as itself, every other byte (and `%`) as `%XX`: any name fits one line.
    private static func escaped(_ bytes: some Collection<UInt8>) -> String {
        var text = ""
        for byte in bytes {
            if byte > 0x20, byte < 0x7F, byte != 0x25 { text.unicodeScalars.append(Unicode.Scalar(byte)) } else {
                text += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return text
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// Why a release's tree could not be read.
public enum ReleaseTreeError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "cannot read \(path) in the release: \(reason)"
        }
    }
}
