import COpenat2
import Dispatch
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a walk of the build context saw, stat by stat, so that a later build can tell that nothing
/// changed without listing a folder or building a layer entry: git's index with its untracked cache, for
/// the files of one layer.
///
/// It holds every folder the walk listed, with the folder's own stat data, and every file and symlink
/// it took, with theirs (``FileStamp``). The context is unchanged when all of them still stat the same:
/// - a file edited in place, even to the same size and with its mtime set back, has a new change time
///   (which cannot be set back);
/// - a file added, removed or renamed changes its folder's modification time, so a folder that stats
///   the same still holds the same names (a folder's stat data does not change when a file inside it
///   is edited: that is why every file is still looked at);
/// - a mode, owner or link count change moves the change time too.
///
/// Stat data from within ``LayerFingerprint/racyWindow`` of the walk may stay the same through a second
/// write in the same clock tick (a name added to a folder just after it was listed, in the tick of its
/// last change), so a snapshot holding any (``isRacy``) must not be kept.
public struct ContextSnapshot: Sendable, Equatable {
    /// One `copy` source: the path the Imagefile names, and where it led.
    public struct Source: Sendable, Equatable {
        /// The source joined to the context root, symlinks not resolved.
        public var path: String
        /// `path` with every symlink resolved (what the walk read).
        public var resolved: String
    }

    /// A folder of the context, absolute, and the files and symlinks the walk took from it.
    public struct Folder: Sendable, Equatable {
        public var path: String
        /// The folder's own stat data when the walk listed it; nil when only named files were taken
        /// from it (a `copy` of a single file).
        public var stamp: FileStamp?
        public var children: [Child]
    }

    /// A file or symlink, by its name in its folder.
    public struct Child: Sendable, Equatable {
        public var name: String
        public var stamp: FileStamp
    }

    public var sources: [Source] = []
    public var folders: [Folder] = []
    /// When the walk started, in seconds since 1970: stat data from the racy window before it is not
    /// trusted.
    public var started: Int

    /// An empty snapshot of a walk that starts now.
    public init(started: Int = Int(Date().timeIntervalSince1970)) {
        self.started = started
    }

    /// How many threads check a snapshot: twice the cores online. Measured on 2 cores, 20,000 `stat`
    /// calls end about a sixth sooner on 4 threads than on 2 (git's index preload, likewise, uses up to
    /// 20). The cores are counted with `sysconf`, cheaper than Foundation's count, which reads cgroup
    /// files: a no-op rebuild asks at every start.
    public static var checkThreads: Int { 2 * max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Whether any folder, file or symlink changed within the racy window before the walk started or
    /// after: its stat data could stay the same through another change in the same clock tick.
    public var isRacy: Bool {
        let recent = started - LayerFingerprint.racyWindow
        return folders.contains { folder in
            folder.stamp?.touched(since: recent) == true || folder.children.contains { $0.stamp.touched(since: recent) }
        }
    }

    /// Whether the context still stats exactly as it did: every source leads to the same place, every
    /// listed folder and every file and symlink has the same stat data (see ``Encoded/isUnchanged(threads:)``).
    public func isUnchanged(threads: Int = ContextSnapshot.checkThreads) -> Bool {
        Encoded(encoded())!.isUnchanged(threads: threads)
    }
}

// MARK: - Encoding

extension ContextSnapshot {
    static let magic = Array("imgbuild-context-snapshot-3\n".utf8)

    /// The snapshot as bytes, for a cache file: little-endian integers, each text as its length, its
    /// bytes and a NUL (so that a name is handed to the kernel where it lies).
    public func encoded() -> [UInt8] {
        var out = ByteRecordWriter()
        out.bytes(Self.magic)
        out.integer(Int64(started))
        out.integer(UInt64(sources.count))
        for source in sources {
            out.text(source.path)
            out.text(source.resolved)
        }
        out.integer(UInt64(folders.count))
        for folder in folders {
            out.text(folder.path)
            if let stamp = folder.stamp {
                out.integer(UInt8(1))
                out.stamp(stamp)
            } else {
                out.integer(UInt8(0))
            }
            out.integer(UInt64(folder.children.count))
            for child in folder.children {
                out.text(child.name)
                out.stamp(child.stamp)
            }
        }
        return out.buffer
    }

    /// Reads bytes made by ``encoded()``; nil when they are not such bytes.
    public init?(decoding bytes: [UInt8]) {
        guard let encoded = Encoded(bytes) else { return nil }
        self = encoded.decoded()
    }

    /// A snapshot as its cache file holds it, checked where it lies: a rebuild compares 20,000 files'
    /// stat data without making a string or an array for any of them.
    public struct Encoded: Sendable {
        let storage: ByteStorage
        let started: Int
        /// Where each source's two paths start (each a NUL-terminated text).
        let sources: [(path: Int, resolved: Int)]
        let folders: [FolderIndex]

        struct FolderIndex: Sendable {
            /// Offsets of the folder's path, of its stamp (if listed), and of its first child.
            var path: Int
            var stamp: Int?
            var children: Int
            var childCount: Int
        }

        /// How many folders, files and symlinks the check looks at.
        public var count: Int { folders.reduce(0) { $0 + 1 + $1.childCount } }

        /// Checks the layout of every record; nil when the bytes are not a snapshot (a cache file that
        /// was cut short, or written by another version, is only a cache miss).
        public init?(_ bytes: [UInt8]) {
            self.init(ByteStorage(bytes))
        }

        /// The same, on bytes read where they lie (a cache file mapped).
        public init?(_ storage: ByteStorage) {
            var input = ByteRecordReader(storage.buffer)
            guard input.expect(ContextSnapshot.magic), let started: Int64 = input.integer(), let sourceCount = input.count() else { return nil }
            var sources: [(path: Int, resolved: Int)] = []
            for _ in 0..<sourceCount {
                guard let path = input.text(), let resolved = input.text() else { return nil }
                sources.append((path, resolved))
            }
            guard let folderCount = input.count() else { return nil }
            var folders: [FolderIndex] = []
            for _ in 0..<folderCount {
                guard let path = input.text(), let listed: UInt8 = input.integer() else { return nil }
                var stamp: Int?
                switch listed {
                case 0: break
                case 1:
                    stamp = input.offset
                    guard input.skip(ByteRecordWriter.stampSize) else { return nil }
                default: return nil
                }
                guard let childCount = input.count() else { return nil }
                let children = input.offset
                for _ in 0..<childCount {
                    guard input.text() != nil, input.skip(ByteRecordWriter.stampSize) else { return nil }
                }
                folders.append(FolderIndex(path: path, stamp: stamp, children: children, childCount: childCount))
            }
            guard input.isAtEnd else { return nil }
            self.storage = storage
            self.started = Int(started)
            self.sources = sources
            self.folders = folders
        }

        /// Whether the context still stats exactly as it did: every source leads to the same place,
        /// every listed folder and every file and symlink has the same stat data. Folders are checked
        /// on up to `threads` threads at once (as git's `core.preloadIndex` does), each taking the next
        /// folder not yet taken, and the first difference ends it.
        public func isUnchanged(threads: Int = ContextSnapshot.checkThreads) -> Bool {
            for source in sources where ContextReader.realPath(text(at: source.path)) != text(at: source.resolved) { return false }
            let parts = count < 2048 ? 1 : min(max(1, threads), 16, folders.count)
            guard parts > 1 else { return folders.allSatisfy(isUnchanged) }
            let next = Atomic<Int>(0)
            let changed = Atomic<Bool>(false)
            let check = { @Sendable in
                while !changed.load(ordering: .relaxed) {
                    let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard index < folders.count else { return }
                    if !isUnchanged(folders[index]) { changed.store(true, ordering: .relaxed) }
                }
            }
            // Threads of its own, not Dispatch's pool: that pool is as wide as the machine has cores, and
            // the build's compression shares it, so the check would hold the compression back.
            let finished = DispatchGroup()
            for _ in 1..<parts {
                finished.enter()
                runDetached {
                    check()
                    finished.leave()
                }
            }
            check()
            finished.wait()
            return !changed.load(ordering: .relaxed)
        }

        private func isUnchanged(_ folder: FolderIndex) -> Bool {
            withExtendedLifetime(storage) {
                let raw = storage.buffer
                let base = raw.baseAddress!
                // O_PATH: nothing is read through it; it only anchors the lookups of the folder's names.
                let fd = open(base.advanced(by: folder.path + 4).assumingMemoryBound(to: CChar.self),
                              imgbuild_o_path() | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                var info = stat()
                if let stamp = folder.stamp {
                    guard fstat(fd, &info) == 0, FileStamp(info) == ByteRecordReader.stamp(at: stamp, in: raw) else { return false }
                }
                var offset = folder.children
                for _ in 0..<folder.childCount {
                    let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                    let name = base.advanced(by: offset + 4).assumingMemoryBound(to: CChar.self)
                    offset += 4 + length + 1
                    guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0,
                          FileStamp(info) == ByteRecordReader.stamp(at: offset, in: raw) else { return false }
                    offset += ByteRecordWriter.stampSize
                }
                return true
            }
        }

        private func text(at offset: Int) -> String {
            withExtendedLifetime(storage) {
                let length = Int(UInt32(littleEndian: storage.buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                return String(decoding: UnsafeRawBufferPointer(rebasing: storage.buffer[(offset + 4)..<(offset + 4 + length)]), as: UTF8.self)
            }
        }

        /// The snapshot as values.
        public func decoded() -> ContextSnapshot {
            var snapshot = ContextSnapshot(started: started)
            snapshot.sources = sources.map { Source(path: text(at: $0.path), resolved: text(at: $0.resolved)) }
            withExtendedLifetime(storage) {
                let raw = storage.buffer
                for folder in folders {
                    var children: [Child] = []
                    var offset = folder.children
                    for _ in 0..<folder.childCount {
                        let name = text(at: offset)
                        offset += 4 + Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))) + 1
                        children.append(Child(name: name, stamp: ByteRecordReader.stamp(at: offset, in: raw)))
                        offset += ByteRecordWriter.stampSize
                    }
                    snapshot.folders.append(Folder(path: text(at: folder.path), stamp: folder.stamp.map { ByteRecordReader.stamp(at: $0, in: raw) },
                                                   children: children))
                }
            }
            return snapshot
        }
    }
}
