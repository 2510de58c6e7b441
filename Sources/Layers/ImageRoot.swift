import COpenat2
#if canImport(Glibc)
import Glibc
#endif

/// An image's unpacked root file system, read from the host as the image itself would see it.
///
/// Every path is resolved inside the root: `..` stops at the root, and symlinks, absolute or relative,
/// however chained, are followed as if the root were `/`. So no symlink in an image (`etc -> /etc`,
/// `x/up -> ..` then `x/esc -> up/..`) can make a host-side reader open, read or even `stat` a file
/// outside it. This is the one way in for everything on the host that reads an unpacked image (its
/// `/etc/passwd` for the user to run as, the files an Imagefile's tests look at).
///
/// The kernel does the resolution where it can: `openat2(2)` with `RESOLVE_IN_ROOT` and
/// `RESOLVE_NO_MAGICLINKS` (Linux 5.6). Where it cannot (an older kernel, or a seccomp filter that
/// refuses the call), the path is walked here one component at a time with `O_NOFOLLOW`, each symlink
/// read and its target walked in its place, with the same rules and the same limit of 40 symlinks.
public struct ImageRoot: Sendable {
    /// How paths are resolved.
    public enum Resolution: Sendable {
        /// `openat2(2)`, or the walk in user space when the kernel does not have it.
        case automatic
        /// Always the walk in user space (what happens on kernels before 5.6; for tests).
        case userSpace
    }

    /// The root folder on the host.
    public let path: String
    public let resolution: Resolution

    /// The most symlinks one path may go through, as in the kernel (`MAXSYMLINKS`).
    public static let maxSymlinks = 40
    /// The most folders deep the user-space walk goes (it holds one descriptor per level).
    static let maxDepth = 256
    private var oPath: Int32 { imgbuild_o_path() }

    public init(_ path: String, resolution: Resolution = .automatic) {
        self.path = path
        self.resolution = resolution
    }

    /// Opens `path` (from the root, whether or not it starts with `/`) read-only, following symlinks
    /// inside the root; the caller closes the descriptor. Opened without blocking, so that a fifo cannot
    /// hang the reader; a device is opened like any file, so check the type with `fstat` before reading.
    public func open(_ path: String) throws(ImageRootError) -> Int32 {
        try resolve(path, flags: O_RDONLY | O_NONBLOCK | O_NOCTTY, followFinalSymlink: true)
    }

    /// The status of what is at `path`, or nil when nothing is (or a folder on the way is missing or is
    /// not a folder). A final symlink is described itself unless `followFinalSymlink`; symlinks on the
    /// way are followed inside the root.
    public func status(_ path: String, followFinalSymlink: Bool = false) throws(ImageRootError) -> stat? {
        let fd: Int32
        do throws(ImageRootError) { fd = try resolve(path, flags: oPath, followFinalSymlink: followFinalSymlink) } catch {
            if case .notFound = error { return nil }
            throw error
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failed(root: self.path, path: path, reason: "fstat: \(errnoText())") }
        return info
    }

    /// Creates the folder `path` and its missing parents (mode 0755, owned by whoever calls), inside the
    /// root: symlinks on the way are followed as the image would follow them, never out of it. A
    /// component that exists and is not a folder is an error.
    public func makeFolders(_ path: String) throws(ImageRootError) {
        var prefix = ""
        for component in path.split(separator: "/").map(String.init) {
            let parent = prefix.isEmpty ? "/" : prefix
            prefix += "/" + component
            if let info = try status(prefix, followFinalSymlink: true) {
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw .failed(root: self.path, path: prefix, reason: "it is a \(fileTypeName(info.st_mode)), not a folder")
                }
                continue
            }
            let parentFD = try resolve(parent, flags: O_RDONLY | O_DIRECTORY, followFinalSymlink: true)
            defer { close(parentFD) }
            guard mkdirat(parentFD, component, 0o755) == 0 || errno == EEXIST else {
                throw .failed(root: self.path, path: prefix, reason: "mkdir: \(errnoText())")
            }
        }
    }

    /// What may happen when a file holds more bytes than a reader takes.
    public enum Overflow: Sendable {
        /// The read fails with ``ImageRootError/tooLarge(root:path:limit:)``.
        case fail
        /// The read returns the first `limit` bytes.
        case truncate
    }

    /// The contents of the regular file at `path` (symlinks followed inside the root), at most `limit`
    /// bytes: the read never takes more memory than that, however large the file claims or turns out to be.
    public func read(_ path: String, limit: Int, beyondLimit: Overflow = .fail) throws(ImageRootError) -> [UInt8] {
        let fd = try open(path)
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .failed(root: self.path, path: path, reason: "fstat: \(errnoText())") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw .notRegularFile(root: self.path, path: path, type: fileTypeName(info.st_mode))
        }
        if beyondLimit == .fail, Int64(info.st_size) > Int64(limit) { throw .tooLarge(root: self.path, path: path, limit: limit) }
        // One byte more than the limit tells a file that grew past it from one that fits exactly.
        let capacity = beyondLimit == .fail ? limit + 1 : limit
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(capacity, max(Int(clamping: info.st_size), 0)))
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { chunk.deallocate() }
        while bytes.count < capacity {
            let n = Glibc.read(fd, chunk.baseAddress, min(chunk.count, capacity - bytes.count))
            if n < 0 {
                if errno == EINTR { continue }
                throw .failed(root: self.path, path: path, reason: "read: \(errnoText())")
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        if bytes.count > limit { throw .tooLarge(root: self.path, path: path, limit: limit) }
        return bytes
    }

    // MARK: Resolution

    /// Opens `path` inside the root with `flags` (plus `O_CLOEXEC`, and `O_NOFOLLOW` unless
    /// `followFinalSymlink`).
    func resolve(_ path: String, flags: Int32, followFinalSymlink: Bool) throws(ImageRootError) -> Int32 {
        let rootFd = Glibc.open(self.path, oPath | O_DIRECTORY | O_CLOEXEC)
        guard rootFd >= 0 else { throw .failed(root: self.path, path: path, reason: "cannot open the root: \(errnoText())") }
        defer { close(rootFd) }
        var relative = String(path.drop { $0 == "/" })
        if relative.isEmpty { relative = "." }
        if resolution == .automatic {
            let how = UInt64(UInt32(bitPattern: flags | O_CLOEXEC | (followFinalSymlink ? 0 : O_NOFOLLOW)))
            var retries = 0
            while true {
                let fd = imgbuild_openat2(rootFd, relative, how, 0, UInt64(IMGBUILD_RESOLVE_IN_ROOT | IMGBUILD_RESOLVE_NO_MAGICLINKS))
                if fd >= 0 { return fd }
                let code = errno
                if code == EINTR { continue }
                // EAGAIN: a rename elsewhere raced with a "..": the kernel asks for a retry.
                if code == EAGAIN, retries < 64 { retries += 1; continue }
                // No openat2 (Linux before 5.6), or a seccomp filter that refuses it: walk in user space.
                if code == ENOSYS || code == EPERM { break }
                throw error(code, path)
            }
        }
        return try walk(from: rootFd, relative, flags: flags, followFinalSymlink: followFinalSymlink, original: path)
    }

    /// The user-space resolution: one component at a time from the root, never letting the kernel follow
    /// a symlink or a `..`. The folders walked through are held open, from the root down; `..` drops the
    /// last one (and does nothing at the root); a symlink is read and its target put in its place, an
    /// absolute one starting again from the root.
    private func walk(from rootFd: Int32, _ path: String, flags: Int32, followFinalSymlink: Bool, original: String) throws(ImageRootError) -> Int32 {
        var folders: [Int32] = []
        defer { for fd in folders { close(fd) } }
        var pending = Array(components(path).reversed())
        var links = 0
        while let name = pending.popLast() {
            let current = folders.last ?? rootFd
            if name == ".." {
                if let fd = folders.popLast() { close(fd) }
                continue
            }
            let isLast = pending.isEmpty
            var info = stat()
            guard fstatat(current, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { throw error(errno, original) }
            if (info.st_mode & S_IFMT) == S_IFLNK && (!isLast || followFinalSymlink) {
                links += 1
                guard links <= ImageRoot.maxSymlinks else { throw .tooManySymlinks(root: self.path, path: original) }
                guard let target = readLink(current, name), !target.isEmpty else { throw .notFound(root: self.path, path: original) }
                if target.hasPrefix("/") {
                    for fd in folders { close(fd) }
                    folders.removeAll()
                }
                pending.append(contentsOf: components(target).reversed())
                continue
            }
            if isLast {
                let fd = openat(current, name, flags | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { throw error(errno, original) }
                return fd
            }
            guard folders.count < ImageRoot.maxDepth else {
                throw .failed(root: self.path, path: original, reason: "it is more than \(ImageRoot.maxDepth) folders deep")
            }
            let next = openat(current, name, oPath | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { throw error(errno == ELOOP ? ENOENT : errno, original) }  // replaced by a symlink meanwhile
            folders.append(next)
        }
        // The path ends at a folder: the root, or where its last ".." or symlink led.
        let fd = openat(folders.last ?? rootFd, ".", flags | O_CLOEXEC)
        guard fd >= 0 else { throw error(errno, original) }
        return fd
    }

    private func components(_ path: String) -> [String] {
        path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.map(String.init)
    }

    private func readLink(_ directory: Int32, _ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(directory, name, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func error(_ code: Int32, _ path: String) -> ImageRootError {
        switch code {
        case ENOENT, ENOTDIR: return .notFound(root: self.path, path: path)
        case ELOOP: return .tooManySymlinks(root: self.path, path: path)
        default: return .failed(root: self.path, path: path, reason: String(cString: strerror(code)))
        }
    }
}

/// Why a path inside an image root could not be read.
public enum ImageRootError: Error, Equatable, CustomStringConvertible {
    /// Nothing is at the path, or a folder on the way is missing or is not a folder.
    case notFound(root: String, path: String)
    /// A regular file was needed.
    case notRegularFile(root: String, path: String, type: String)
    /// The file holds more bytes than the reader takes.
    case tooLarge(root: String, path: String, limit: Int)
    /// More than 40 symlinks on the way (a loop, most likely), or a final symlink where none may be.
    case tooManySymlinks(root: String, path: String)
    /// Any other failure.
    case failed(root: String, path: String, reason: String)

    public var description: String {
        switch self {
        case let .notFound(root, path):
            return "'\(path)' does not exist in the image root '\(root)'"
        case let .notRegularFile(root, path, type):
            return "'\(path)' in the image root '\(root)' is a \(type), not a regular file"
        case let .tooLarge(root, path, limit):
            return "'\(path)' in the image root '\(root)' holds more than \(limit) bytes, more than is read of it"
        case let .tooManySymlinks(root, path):
            return "'\(path)' in the image root '\(root)' goes through more than \(ImageRoot.maxSymlinks) symlinks (a loop?)"
        case let .failed(root, path, reason):
            return "cannot read '\(path)' in the image root '\(root)': \(reason)"
        }
    }
}

func fileTypeName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "regular file"
    case S_IFDIR: return "folder"
    case S_IFLNK: return "symlink"
    case S_IFIFO: return "fifo"
    case S_IFSOCK: return "socket"
    case S_IFCHR: return "character device"
    case S_IFBLK: return "block device"
    default: return "file of unknown type"
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }
