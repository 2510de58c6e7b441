import Foundation
import Glob
#if canImport(Glibc)
import Glibc
#endif

/// One `copy` instruction: files of the build context placed into the image.
public struct ContextCopy: Sendable {
    /// The source, relative to the context root.
    public var source: String
    /// The destination in the image. For a folder source, its contents go below it; for a file source,
    /// a destination ending in `/` receives the file under its own name, otherwise it is the file's path.
    public var destination: String
    public var excludes: [Glob]
    /// Permission bits for regular files; nil keeps the normalised 0644/0755.
    public var fileMode: UInt32?
    /// Owner of everything the copy adds; nil means 0:0.
    public var owner: (uid: Int, gid: Int)?

    public init(source: String, destination: String, excludes: [Glob] = [], fileMode: UInt32? = nil,
                owner: (uid: Int, gid: Int)? = nil) {
        self.source = source
        self.destination = destination
        self.excludes = excludes
        self.fileMode = fileMode
        self.owner = owner
    }
}

/// Reads files of a build context into a ``LayerTree``, enforcing the context's rules: nothing outside
/// the context, no symlink that leads out of it, no device files, sockets or fifos.
///
/// Only metadata is read here; file contents are streamed later by ``LayerWriter``.
public struct ContextReader: Sendable {
    /// The context folder, as an absolute path with symlinks resolved.
    public let root: String

    public init(root: String) throws(LayerError) {
        guard let resolved = ContextReader.realPath(root) else {
            throw .unreadable(path: root, reason: String(cString: strerror(errno)))
        }
        self.root = resolved
    }

    /// Adds what `copy` names to `tree`, and what the walk saw to `snapshot`.
    public func add(_ copy: ContextCopy, to tree: inout LayerTree, recording snapshot: inout ContextSnapshot) throws(LayerError) {
        let joined = root + "/" + copy.source
        var info = stat()
        guard lstat(joined, &info) == 0 else {
            if errno == ENOENT { throw .missingSource(path: copy.source) }
            throw .unreadable(path: copy.source, reason: String(cString: strerror(errno)))
        }
        guard let resolved = ContextReader.realPath(joined) else {
            throw .unreadable(path: copy.source, reason: String(cString: strerror(errno)))
        }
        guard resolved == root || resolved.hasPrefix(root + "/") else {
            throw .escapesContext(path: copy.source, context: root)
        }
        guard stat(resolved, &info) == 0 else { throw .unreadable(path: copy.source, reason: String(cString: strerror(errno))) }
        snapshot.sources.append(.init(path: joined, resolved: resolved))

        let destination = LayerPath.normalize(copy.destination) ?? ""
        var walk = Walk(copy: copy, root: root)
        if (info.st_mode & S_IFMT) == S_IFDIR {
            if !destination.isEmpty {
                tree.insert(walk.directoryEntry(path: destination))
            }
            try walk.directory(resolved, relative: "", layerPath: destination, into: &tree)
        } else {
            let name = (resolved as NSString).lastPathComponent
            let target = copy.destination.hasSuffix("/") || destination.isEmpty
                ? LayerPath.join(destination, name) : destination
            try walk.item(resolved, info: info, relative: name, layerPath: target, into: &tree)
            walk.folders.append(.init(path: (resolved as NSString).deletingLastPathComponent, stamp: nil,
                                      children: [.init(name: name, stamp: FileStamp(info))]))
        }
        walk.resolveHardlinks(into: &tree)
        snapshot.folders.append(contentsOf: walk.folders)
    }

    /// `path` with every symlink resolved, absolute; nil if it does not resolve.
    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The state of one copy's walk: which inodes were seen, to turn repeats into hard links, and the
    /// folders listed, for the snapshot.
    private struct Walk {
        let copy: ContextCopy
        let root: String
        var inodes: [InodeKey: [String]] = [:]
        var folders: [ContextSnapshot.Folder] = []

        init(copy: ContextCopy, root: String) {
            self.copy = copy
            self.root = root
        }

        func directoryEntry(path: String) -> LayerEntry {
            LayerEntry(path: path, kind: .directory, mode: 0o755, uid: copy.owner?.uid ?? 0, gid: copy.owner?.gid ?? 0)
        }

        mutating func directory(_ absolute: String, relative: String, layerPath: String, into tree: inout LayerTree) throws(LayerError) {
            guard let dir = opendir(absolute) else {
                throw .unreadable(path: display(absolute), reason: String(cString: strerror(errno)))
            }
            defer { closedir(dir) }
            // The folder's stat data is taken before its names are read: a name added meanwhile moves
            // its modification time past what the snapshot records.
            let folder = dirfd(dir)
            var info = stat()
            guard fstat(folder, &info) == 0 else {
                throw .unreadable(path: display(absolute), reason: String(cString: strerror(errno)))
            }
            let listed = folders.count
            folders.append(.init(path: absolute, stamp: FileStamp(info), children: []))
            var names: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                if name != "." && name != ".." { names.append(name) }
            }
            names.sort(by: LayerPath.precedes)
            // Children are looked up from the open folder: the kernel resolves one name, not the whole
            // path again for each of thousands of files.
            for name in names {
                let childRelative = relative.isEmpty ? name : relative + "/" + name
                if copy.excludes.contains(where: { $0.matches(childRelative) }) { continue }
                let childAbsolute = absolute + "/" + name
                guard fstatat(folder, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else {
                    throw .unreadable(path: display(childAbsolute), reason: String(cString: strerror(errno)))
                }
                if info.st_mode & S_IFMT != S_IFDIR {
                    folders[listed].children.append(.init(name: name, stamp: FileStamp(info)))
                }
                try item(childAbsolute, info: info, relative: childRelative, layerPath: LayerPath.join(layerPath, name), into: &tree)
            }
        }

        mutating func item(_ absolute: String, info: stat, relative: String, layerPath: String, into tree: inout LayerTree) throws(LayerError) {
            let uid = copy.owner?.uid ?? 0
            let gid = copy.owner?.gid ?? 0
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                tree.insert(directoryEntry(path: layerPath))
                try directory(absolute, relative: relative, layerPath: layerPath, into: &tree)
            case S_IFREG:
                // Readable by anyone, or by us as owner: no access check needed; otherwise ask, as the
                // effective user and groups that will open the file (AT_EACCESS), not the real ones.
                if info.st_mode & S_IROTH == 0 && !(info.st_uid == geteuid() && info.st_mode & S_IRUSR != 0) {
                    guard faccessat(AT_FDCWD, absolute, R_OK, AT_EACCESS) == 0 else {
                        throw .unreadable(path: display(absolute), reason: String(cString: strerror(errno)))
                    }
                }
                let mode = copy.fileMode ?? ((info.st_mode & 0o111) != 0 ? 0o755 : 0o644)
                tree.insert(LayerEntry(path: layerPath, kind: .regularFile(.file(path: absolute, size: Int64(info.st_size), stamp: FileStamp(info))),
                                       mode: mode, uid: uid, gid: gid))
                if info.st_nlink > 1 {
                    inodes[InodeKey(device: UInt64(info.st_dev), inode: UInt64(info.st_ino)), default: []].append(layerPath)
                }
            case S_IFLNK:
                let target = try readLink(absolute)
                try checkSymlink(absolute, target: target)
                tree.insert(LayerEntry(path: layerPath, kind: .symlink(target: target), mode: 0o777, uid: uid, gid: gid))
            case S_IFCHR: throw .unsupportedFileType(path: display(absolute), type: "character device")
            case S_IFBLK: throw .unsupportedFileType(path: display(absolute), type: "block device")
            case S_IFIFO: throw .unsupportedFileType(path: display(absolute), type: "fifo")
            case S_IFSOCK: throw .unsupportedFileType(path: display(absolute), type: "socket")
            default: throw .unsupportedFileType(path: display(absolute), type: "file of unknown type")
            }
        }

        /// Files that share an inode become one regular file (the first by path bytes) and hard links to it.
        func resolveHardlinks(into tree: inout LayerTree) {
            for paths in inodes.values where paths.count > 1 {
                let sorted = paths.sorted(by: LayerPath.precedes)
                for link in sorted.dropFirst() {
                    guard let entry = tree[link] else { continue }
                    tree.insert(LayerEntry(path: link, kind: .hardlink(target: sorted[0]), mode: entry.mode, uid: entry.uid, gid: entry.gid))
                }
            }
        }

        func readLink(_ path: String) throws(LayerError) -> String {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &buffer, buffer.count - 1)
            guard n >= 0 else { throw .unreadable(path: display(path), reason: String(cString: strerror(errno))) }
            return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }

        /// A symlink must be relative and, resolved lexically from its folder, stay inside the context.
        func checkSymlink(_ path: String, target: String) throws(LayerError) {
            guard !target.hasPrefix("/") else { throw .symlinkEscapes(path: display(path), target: target) }
            let linkFolder = String(display(path).split(separator: "/").dropLast().joined(separator: "/"))
            var depth = linkFolder.split(separator: "/").count
            for component in target.split(separator: "/") {
                if component == ".." { depth -= 1 } else if component != "." { depth += 1 }
                if depth < 0 { throw .symlinkEscapes(path: display(path), target: target) }
            }
        }

        /// A path relative to the context, for messages.
        func display(_ absolute: String) -> String {
            absolute.hasPrefix(root + "/") ? String(absolute.dropFirst(root.count + 1)) : absolute
        }
    }
}

private struct InodeKey: Hashable {
    let device: UInt64
    let inode: UInt64
}
