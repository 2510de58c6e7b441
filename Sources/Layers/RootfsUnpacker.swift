import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// What unpacking an image's layers may do.
public struct UnpackPolicy: Sendable, Equatable {
    /// Keep setuid and setgid bits on files; otherwise a file that has one is refused.
    public var allowSetuid: Bool
    /// The most bytes all unpacked files may hold together.
    public var maxBytes: Int64
    /// The most entries all layers may hold together.
    public var maxEntries: Int
    /// Give files the owners the layers name (only root can).
    public var applyOwners: Bool

    public init(allowSetuid: Bool = false, maxBytes: Int64 = 4 << 30, maxEntries: Int = 1_000_000, applyOwners: Bool = geteuid() == 0) {
        self.allowSetuid = allowSetuid
        self.maxBytes = maxBytes
        self.maxEntries = maxEntries
        self.applyOwners = applyOwners
    }
}

/// What an unpack wrote.
public struct UnpackSummary: Sendable, Equatable {
    public var entries: Int = 0
    /// Folders made because an entry's path needs them though no entry names them; they count against
    /// the entry limit too.
    public var impliedFolders: Int = 0
    public var bytes: Int64 = 0
    public var whiteouts: Int = 0
}

/// Applies an image's layers, in order, onto an empty folder: the image's root file system.
///
/// Every path is resolved one component at a time from the root with `O_NOFOLLOW`, so no entry can
/// be written through a symlink, whatever earlier entries or layers made. Refused, with the layer and
/// entry named: absolute paths and `..`, symlinks whose target climbs above the root (on its own, or
/// followed through the other symlinks of the unpacked root), hard links to anything but a regular file
/// already unpacked, device nodes, setuid/setgid files unless the policy allows them, and more bytes
/// (holes of sparse files included) or entries than the policy allows. OCI whiteouts (`.wh.NAME` and
/// the opaque `.wh..wh..opq`) are applied.
///
/// Host-side readers of the unpacked root must still go through ``ImageRoot``: an image can hold
/// absolute symlinks (`etc -> /etc` is an image's own `/etc`, but the host's if followed from the host).
public struct RootfsUnpacker: Sendable {
    public var policy: UnpackPolicy

    public init(policy: UnpackPolicy = UnpackPolicy()) {
        self.policy = policy
    }

    /// Applies each layer blob (`path`, named in messages as `label`) onto `root`, which must exist.
    public func unpack(layers: [(path: String, label: String)], into root: String) throws(LayerError) -> UnpackSummary {
        let rootFd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFd >= 0 else { throw .writeFailed(reason: "cannot open '\(root)': \(errnoText())") }
        defer { close(rootFd) }
        var summary = UnpackSummary()
        var symlinks: [String: String] = [:]
        for layer in layers {
            try withUTF8Locale { () throws(LayerError) in
                let reader = try ArchiveReader(path: layer.path, label: layer.label, formats: .tar)
                var session = LayerSession(rootFd: rootFd, label: layer.label, policy: policy, summary: summary, symlinks: symlinks)
                try reader.forEachEntry { entry throws(LayerError) in try session.apply(entry, reader: reader) }
                summary = session.summary
                symlinks = session.symlinks
            }
        }
        try SymlinkChains(rootFd: rootFd).check(symlinks)
        return summary
    }
}

/// The state of applying one layer.
private struct LayerSession {
    let rootFd: Int32
    let label: String
    let policy: UnpackPolicy
    var summary: UnpackSummary
    /// Every symlink the layers so far have made (some since removed or replaced), with the layer that made it.
    var symlinks: [String: String]
    /// Paths this layer has written, which an opaque whiteout in the same layer keeps.
    var written = Set<String>()

    init(rootFd: Int32, label: String, policy: UnpackPolicy, summary: UnpackSummary, symlinks: [String: String]) {
        self.rootFd = rootFd
        self.label = label
        self.policy = policy
        self.summary = summary
        self.symlinks = symlinks
    }

    func refuse(_ entry: String, _ reason: String) -> LayerError {
        .unsafeArchiveEntry(archive: label, entry: entry, reason: reason)
    }

    mutating func apply(_ entry: OpaquePointer, reader: ArchiveReader) throws(LayerError) {
        let raw = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
        guard !raw.hasPrefix("/") else { throw refuse(raw, "it is an absolute path; layer entries are relative to the image root") }
        guard let path = LayerPath.normalize(raw) else { throw refuse(raw, "it climbs out of the image root with '..'") }
        if path.isEmpty { return }
        summary.entries += 1
        guard summary.entries + summary.impliedFolders <= policy.maxEntries else {
            throw refuse(raw, "the image has more than \(policy.maxEntries) entries, the unpack limit")
        }
        var components = path.split(separator: "/").map(String.init)
        guard components.count <= LayerSession.maxDepth, path.utf8.count <= Int(PATH_MAX) else {
            throw refuse(String(raw.prefix(200)), "it is \(components.count) folders deep (\(path.utf8.count) bytes); the unpacker allows at most \(LayerSession.maxDepth) and \(PATH_MAX) bytes")
        }
        let name = components.removeLast()

        switch Whiteout.of(path: path) {
        case .opaque:
            summary.whiteouts += 1
            let directory = try openDirectory(components, create: true, entry: raw)
            defer { close(directory) }
            try clearOpaque(directory, prefix: components.joined(separator: "/"), entry: raw)
            return
        case .hides:
            summary.whiteouts += 1
            guard let parent = try openDirectoryIfPresent(components, entry: raw) else { return }
            defer { close(parent) }
            try removeTree(parent, String(name.dropFirst(4)), entry: raw)
            return
        case .namesNothing:
            throw refuse(raw, "a whiteout that names no file")
        case nil:
            break
        }

        let parent = try openDirectory(components, create: true, entry: raw)
        defer { close(parent) }
        let mode = mode_t(archive_entry_perm(entry)) & 0o7777
        let uid = uid_t(truncatingIfNeeded: archive_entry_uid(entry))
        let gid = gid_t(truncatingIfNeeded: archive_entry_gid(entry))

        if let hardlink = archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry) {
            try makeHardlink(String(cString: hardlink), at: parent, name: name, entry: raw)
            written.insert(path)
            return
        }

        let type = UInt32(archive_entry_filetype(entry))
        var existing = stat()
        let exists = fstatat(parent, name, &existing, AT_SYMLINK_NOFOLLOW) == 0
        if exists && !(type == ArchiveFileType.directory && (existing.st_mode & S_IFMT) == S_IFDIR) {
            try removeTree(parent, name, entry: raw)
        }

        switch type {
        case ArchiveFileType.directory:
            if !exists || (existing.st_mode & S_IFMT) != S_IFDIR {
                guard mkdirat(parent, name, 0o700) == 0 else { throw failed(raw, "mkdir") }
            }
            try setOwnerAndMode(parent, name, uid: uid, gid: gid, mode: mode, entry: raw)
        case ArchiveFileType.regular:
            if mode & 0o6000 != 0 && !policy.allowSetuid {
                throw refuse(raw, "it has the setuid or setgid bit (mode \(String(mode, radix: 8))); allow it with 'unpack: { allowSetuid: true }' in the release spec if you trust this image")
            }
            try writeFile(parent, name, from: entry, reader: reader, entry: raw)
            try setOwnerAndMode(parent, name, uid: uid, gid: gid, mode: mode, entry: raw)
            setTime(parent, name, entry)
        case ArchiveFileType.symlink:
            let target = (archive_entry_symlink_utf8(entry) ?? archive_entry_symlink(entry)).map { String(cString: $0) } ?? ""
            guard !target.isEmpty else { throw refuse(raw, "a symlink with an empty target") }
            guard LayerSession.staysInside(target: target, linkDirectory: components) else {
                throw refuse(raw, "symlink to '\(target)' leads outside the image root")
            }
            guard symlinkat(target, parent, name) == 0 else { throw failed(raw, "symlink") }
            symlinks[path] = label
            if policy.applyOwners, fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0 { throw failed(raw, "chown") }
            setTime(parent, name, entry)
        case ArchiveFileType.fifo:
            guard mkfifoat(parent, name, mode & 0o777) == 0 else { throw failed(raw, "mkfifo") }
            try setOwnerAndMode(parent, name, uid: uid, gid: gid, mode: mode & 0o777, entry: raw)
        case ArchiveFileType.characterDevice, ArchiveFileType.blockDevice:
            throw refuse(raw, "it is a device node; images may not carry devices (the runtime provides /dev)")
        case ArchiveFileType.socket:
            throw refuse(raw, "it is a socket, which an image cannot carry")
        default:
            throw refuse(raw, "an entry of unknown type \(String(type, radix: 8))")
        }
        written.insert(path)
    }

    /// Whether `target`, resolved from the link's folder (or from the root when absolute), stays at or below the root.
    static func staysInside(target: String, linkDirectory: [String]) -> Bool {
        var stack = target.hasPrefix("/") ? [] : linkDirectory
        for component in target.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." {
                if stack.isEmpty { return false }
                stack.removeLast()
            } else {
                stack.append(String(component))
            }
        }
        return true
    }

    // MARK: File system steps, all relative to directory descriptors

    func failed(_ entry: String, _ call: String) -> LayerError {
        .writeFailed(reason: "\(label): cannot \(call) '\(entry)': \(errnoText())")
    }

    /// The deepest path an entry may have: folders nested deeper are no real image's, and every walk
    /// over them (whiteouts remove trees recursively) must stay bounded.
    static let maxDepth = 256

    /// Opens the folder at `components` below the root, one component at a time, never following a symlink.
    /// Folders it creates on the way count as entries against the unpack limit, like the entries that name them.
    mutating func openDirectory(_ components: [String], create: Bool, entry: String) throws(LayerError) -> Int32 {
        var fd = dup(rootFd)
        guard fd >= 0 else { throw failed(entry, "dup") }
        for (index, component) in components.enumerated() {
            var next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                summary.impliedFolders += 1
                guard summary.entries + summary.impliedFolders <= policy.maxEntries else {
                    close(fd)
                    throw refuse(entry, "the image has more than \(policy.maxEntries) entries (folders its paths imply included), the unpack limit")
                }
                if mkdirat(fd, component, 0o755) != 0 && errno != EEXIST { close(fd); throw failed(entry, "mkdir") }
                next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            var code = errno
            if next < 0 {
                // O_DIRECTORY may report a symlink as ENOTDIR: look at the component itself.
                var info = stat()
                if fstatat(fd, component, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK { code = ELOOP }
            }
            close(fd)
            guard next >= 0 else {
                let prefix = components[...index].joined(separator: "/")
                switch code {
                case ELOOP: throw refuse(entry, "it would be written through the symlink '\(prefix)', which could lead outside the image root")
                case ENOTDIR: throw refuse(entry, "'\(prefix)' is not a folder")
                default: errno = code; throw failed(entry, "open '\(prefix)' for")
                }
            }
            fd = next
        }
        return fd
    }

    /// Like ``openDirectory(_:create:entry:)`` but nil when a component does not exist.
    func openDirectoryIfPresent(_ components: [String], entry: String) throws(LayerError) -> Int32? {
        var fd = dup(rootFd)
        guard fd >= 0 else { throw failed(entry, "dup") }
        for component in components {
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let code = errno
            close(fd)
            if next < 0 {
                if code == ENOENT || code == ENOTDIR { return nil }
                if code == ELOOP { throw refuse(entry, "a whiteout through the symlink '\(component)'") }
                errno = code
                throw failed(entry, "open")
            }
            fd = next
        }
        return fd
    }

    /// Removes `name` in `parent`, and everything below it when it is a folder; nothing if it is absent.
    func removeTree(_ parent: Int32, _ name: String, entry: String) throws(LayerError) {
        var info = stat()
        guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return }
            throw failed(entry, "stat")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw failed(entry, "open") }
            for child in try children(of: fd, entry: entry) { try removeTree(fd, child, entry: entry) }
            close(fd)
            guard unlinkat(parent, name, AT_REMOVEDIR) == 0 else { throw failed(entry, "remove folder") }
        } else {
            guard unlinkat(parent, name, 0) == 0 else { throw failed(entry, "remove") }
        }
    }

    /// The names in the folder open as `fd` (the descriptor stays open).
    func children(of fd: Int32, entry: String) throws(LayerError) -> [String] {
        let copy = dup(fd)
        guard copy >= 0, let stream = fdopendir(copy) else { throw failed(entry, "list") }
        defer { closedir(stream) }
        var names: [String] = []
        while let item = readdir(stream) {
            let name = withUnsafePointer(to: item.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Removes what lower layers put in a folder that this layer marks opaque.
    func clearOpaque(_ directory: Int32, prefix: String, entry: String) throws(LayerError) {
        for child in try children(of: directory, entry: entry) where !written.contains(LayerPath.join(prefix, child)) {
            try removeTree(directory, child, entry: entry)
        }
    }

    /// Writes the entry's contents into a new file `name`: bytes where the archive has them, holes (left
    /// unwritten, the file's length set at the end) where a sparse file has none. Holes count against the
    /// unpack limit like bytes, and that limit is checked against the entry's declared size first.
    mutating func writeFile(_ parent: Int32, _ name: String, from archiveEntry: OpaquePointer, reader: ArchiveReader,
                            entry: String) throws(LayerError) {
        let fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failed(entry, "create") }
        defer { close(fd) }
        let (limit, used, label) = (policy.maxBytes, summary.bytes, self.label)
        var position: Int64 = 0
        var written: Int64 = 0
        let size = try reader.readPieces(of: archiveEntry, named: entry, limit: limit - used, tooLarge: { size, declared in
            let claim = declared ? "it declares a size of \(size) bytes" : "its contents reach \(size) bytes"
            return "\(claim), which would make the image unpack to more than \(limit) bytes, the unpack limit (\(used) bytes already unpacked; raise 'unpack: { maxSize: … }' in the release spec if this is expected)"
        }) { piece throws(LayerError) in
            switch piece {
            case .hole(let count):
                position += count
            case .bytes(let chunk):
                var done = 0
                while done < chunk.count {
                    let n = pwrite(fd, chunk.baseAddress! + done, chunk.count - done, off_t(position))
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw LayerError.writeFailed(reason: "\(label): cannot write '\(entry)': \(errnoText())")
                    }
                    done += n
                    position += Int64(n)
                }
                written = position
            }
        }
        if size > written, ftruncate(fd, off_t(size)) != 0 { throw failed(entry, "extend (to \(size) bytes, a sparse file's length)") }
        summary.bytes = used + size
    }

    func makeHardlink(_ rawTarget: String, at parent: Int32, name: String, entry: String) throws(LayerError) {
        guard let target = LayerPath.normalize(rawTarget), !target.isEmpty else {
            throw refuse(entry, "its hard link target '\(rawTarget)' lies outside the image root")
        }
        var components = target.split(separator: "/").map(String.init)
        let targetName = components.removeLast()
        guard let targetParent = try openDirectoryIfPresent(components, entry: entry) else {
            throw refuse(entry, "its hard link target '\(rawTarget)' has not been unpacked")
        }
        defer { close(targetParent) }
        var info = stat()
        guard fstatat(targetParent, targetName, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw refuse(entry, "its hard link target '\(rawTarget)' is not a regular file already unpacked")
        }
        try removeTree(parent, name, entry: entry)
        guard linkat(targetParent, targetName, parent, name, 0) == 0 else { throw failed(entry, "link") }
    }

    func setOwnerAndMode(_ parent: Int32, _ name: String, uid: uid_t, gid: gid_t, mode: mode_t, entry: String) throws(LayerError) {
        if policy.applyOwners, fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0 { throw failed(entry, "chown") }
        guard fchmodat(parent, name, mode, 0) == 0 else { throw failed(entry, "chmod") }
    }

    func setTime(_ parent: Int32, _ name: String, _ entry: OpaquePointer) {
        let seconds = archive_entry_mtime(entry)
        var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
        _ = utimensat(parent, name, &times, AT_SYMLINK_NOFOLLOW)
    }
}

/// The check, once every layer is applied, that no symlink of the root leads above it when followed
/// through the other symlinks the root has.
///
/// Each link's own target is checked lexically as it is made, but links combine: `x/up -> ..` stays
/// inside, and so, read alone, does `x/esc -> up/..`, yet `x/esc` is the root's parent. Layers can make
/// such links in any order (`x/esc` before `x/up`, or in different layers), so the check runs on the
/// final root: every symlink still there is resolved from its folder as the host would resolve it —
/// through the symlinks on the way, `..` of the root leaving it — and the unpack is refused, with the
/// chain named, if the resolution ever climbs above the root. Missing components are taken as plain
/// folders (a later component may still climb). A chain longer than 40 links is left alone: the kernel
/// refuses to follow it (`ELOOP`), so it leads nowhere.
struct SymlinkChains {
    let rootFd: Int32
    /// Path components one link may take to resolve, links followed on the way included.
    static let maxSteps = 4096

    func check(_ symlinks: [String: String]) throws(LayerError) {
        for (path, layer) in symlinks.sorted(by: { LayerPath.precedes($0.key, $1.key) }) {
            var folder = path.split(separator: "/").map(String.init)
            let name = folder.removeLast()
            guard let target = try linkTarget(folder, name, entry: path, layer: layer) else { continue }  // since removed or replaced
            if let chain = try climbsOut(from: folder, target: target, entry: path, layer: layer) {
                throw LayerError.unsafeArchiveEntry(archive: layer, entry: path, reason:
                    "symlink to '\(target)' leads outside the image root through other symlinks: \(([path + " -> " + target] + chain).joined(separator: ", then "))")
            }
        }
    }

    /// The target of the symlink `name` in the real folder `folder` (no symlink on the way), or nil when there is none.
    private func linkTarget(_ folder: [String], _ name: String, entry: String, layer: String) throws(LayerError) -> String? {
        var fd = dup(rootFd)
        guard fd >= 0 else { throw failure(entry, layer, "dup") }
        defer { close(fd) }
        for component in folder {
            let next = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 {
                if errno == ENOENT || errno == ENOTDIR || errno == ELOOP { return nil }
                throw failure(entry, layer, "open the folder of")
            }
            close(fd)
            fd = next
        }
        var info = stat()
        guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFLNK else { return nil }
        return try readLink(fd, name, entry: entry, layer: layer)
    }

    /// The links followed on the way out when `target`, read from `folder`, climbs above the root; nil when it stays inside.
    private func climbsOut(from folder: [String], target: String, entry: String, layer: String) throws(LayerError) -> [String]? {
        // Every component of `stack` but the last is known not to be a symlink, so the kernel follows none
        // when it looks one up by its whole path.
        var stack = target.hasPrefix("/") ? [] : folder
        var pending = Array(target.split(separator: "/").reversed())
        var chain: [String] = []
        // Links can expand to many components each; past this many steps the link is refused rather than
        // followed further (a few thousand links of that kind took minutes).
        var steps = 0
        while let component = pending.popLast() {
            steps += 1
            guard steps <= SymlinkChains.maxSteps else {
                throw LayerError.unsafeArchiveEntry(archive: layer, entry: entry, reason:
                    "symlink to '\(target.prefix(200))' takes more than \(SymlinkChains.maxSteps) steps to resolve through the root's other symlinks")
            }
            if component == "." { continue }
            if component == ".." {
                if stack.isEmpty { return chain }
                stack.removeLast()
                continue
            }
            stack.append(String(component))
            let path = stack.joined(separator: "/")
            var info = stat()
            guard fstatat(rootFd, path, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                if errno == ENOENT || errno == ENOTDIR { continue }
                throw failure(entry, layer, "look up '\(path)' while checking")
            }
            guard (info.st_mode & S_IFMT) == S_IFLNK else { continue }
            guard chain.count < ImageRoot.maxSymlinks else { return nil }
            let next = try readLink(rootFd, path, entry: entry, layer: layer)
            chain.append(path + " -> " + next)
            stack.removeLast()
            if next.hasPrefix("/") { stack.removeAll() }
            pending.append(contentsOf: next.split(separator: "/").reversed())
        }
        return nil
    }

    private func readLink(_ directory: Int32, _ path: String, entry: String, layer: String) throws(LayerError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(directory, path, &buffer, buffer.count - 1)
        guard n >= 0 else { throw failure(entry, layer, "read the symlink '\(path)' while checking") }
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func failure(_ entry: String, _ layer: String, _ call: String) -> LayerError {
        .writeFailed(reason: "\(layer): cannot \(call) '\(entry)': \(errnoText())")
    }
}

private func errnoText() -> String { String(cString: strerror(errno)) }
