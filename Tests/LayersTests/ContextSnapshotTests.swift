import Foundation
import Glob
import Layers
import Testing
import TestScheduling
#if canImport(Glibc)
import Glibc
#endif

/// The snapshot that lets a rebuild skip walking an unchanged context must see every change that could
/// change the layer, however it was made; a change it misses is a stale image.
@Suite("Context snapshot", .mayBlock)
struct ContextSnapshotTests {
    /// A build context on disk: `app/` with files in two levels of folders, a symlink, a single file
    /// `config.txt`, and `app/cache/` excluded.
    struct Context {
        let root: String

        init(files: Int = 6) throws {
            root = NSTemporaryDirectory() + "snapshot-\(UUID().uuidString.prefix(8))"
            for index in 0..<files { try Self.write("file \(index)\n", to: root + "/app/f\(index).txt") }
            try Self.write("deep\n", to: root + "/app/lib/deep/d.txt")
            try Self.write("nested\n", to: root + "/app/lib/n.txt")
            try Self.write("ignored\n", to: root + "/app/cache/c.tmp")
            try Self.write("config\n", to: root + "/config.txt")
            try FileManager.default.createSymbolicLink(atPath: root + "/app/link", withDestinationPath: "f0.txt")
        }

        static func write(_ text: String, to path: String) throws {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }

        var copies: [ContextCopy] {
            get throws {
                [ContextCopy(source: "app", destination: "/srv/", excludes: [try Glob("cache")]),
                 ContextCopy(source: "config.txt", destination: "/etc/")]
            }
        }

        /// Walks the context as the builder does, returning the snapshot and the layer's entries.
        func walk(_ copies: [ContextCopy]? = nil) throws -> (ContextSnapshot, [LayerEntry]) {
            let reader = try ContextReader(root: root)
            var tree = LayerTree()
            var snapshot = ContextSnapshot()
            for copy in try copies ?? self.copies { try reader.add(copy, to: &tree, recording: &snapshot) }
            return (snapshot, try tree.finalizedEntries())
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    @Test("a snapshot holds while nothing changes, and survives its encoding")
    func holds() throws {
        let context = try Context()
        defer { context.remove() }
        let (snapshot, entries) = try context.walk()
        #expect(snapshot.isUnchanged())
        #expect(snapshot.isUnchanged(threads: 1))
        #expect(ContextSnapshot(decoding: snapshot.encoded()) == snapshot)
        // Every folder walked, with its files and symlinks; the excluded folder is not among them.
        let root = try ContextReader(root: context.root).root
        #expect(snapshot.folders.map(\.path) == [root + "/app", root + "/app/lib", root + "/app/lib/deep", root])
        #expect(snapshot.folders.last?.stamp == nil && snapshot.folders.last?.children.map(\.name) == ["config.txt"])
        let files = entries.compactMap { entry -> String? in
            if case .regularFile(.file(let path, _, _)) = entry.kind { return path }
            return nil
        }
        let recorded = snapshot.folders.flatMap { folder in
            folder.children.filter { mode_t($0.stamp.mode) & S_IFMT == S_IFREG }.map { folder.path + "/" + $0.name }
        }
        #expect(Set(recorded) == Set(files), "every file the layer takes is in the snapshot, and nothing else")
        // Walking again gives the same snapshot.
        #expect(try context.walk().0 == snapshot)
    }

    /// A change made to a context, and whether a layer built from it must change.
    struct Change: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var apply: @Sendable (String) throws -> Void
    }

    static let changes: [Change] = [
        Change(testDescription: "an edit that keeps the size, with the mtime set back") { root in
            let path = root + "/app/f1.txt"
            var info = stat()
            stat(path, &info)
            try Context.write("FILE 1\n", to: path)
            var times = [info.st_atim, info.st_mtim]
            #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        },
        Change(testDescription: "a new file in a listed folder") { root in try Context.write("new\n", to: root + "/app/new.txt") },
        Change(testDescription: "a new file two folders down") { root in try Context.write("new\n", to: root + "/app/lib/deep/new.txt") },
        Change(testDescription: "a new empty folder") { root in try FileManager.default.createDirectory(atPath: root + "/app/empty", withIntermediateDirectories: false) },
        Change(testDescription: "a file removed") { root in try FileManager.default.removeItem(atPath: root + "/app/lib/n.txt") },
        Change(testDescription: "a file renamed in its folder") { root in
            try FileManager.default.moveItem(atPath: root + "/app/f2.txt", toPath: root + "/app/f2.text")
        },
        Change(testDescription: "two files swapped by renames") { root in
            let app = root + "/app/"
            try FileManager.default.moveItem(atPath: app + "f2.txt", toPath: app + "swap")
            try FileManager.default.moveItem(atPath: app + "f3.txt", toPath: app + "f2.txt")
            try FileManager.default.moveItem(atPath: app + "swap", toPath: app + "f3.txt")
        },
        Change(testDescription: "a symlink pointed elsewhere") { root in
            try FileManager.default.removeItem(atPath: root + "/app/link")
            try FileManager.default.createSymbolicLink(atPath: root + "/app/link", withDestinationPath: "f1.txt")
        },
        Change(testDescription: "a file replaced by a symlink") { root in
            try FileManager.default.removeItem(atPath: root + "/app/f4.txt")
            try FileManager.default.createSymbolicLink(atPath: root + "/app/f4.txt", withDestinationPath: "f0.txt")
        },
        Change(testDescription: "a folder replaced by a file") { root in
            try FileManager.default.removeItem(atPath: root + "/app/lib/deep")
            try Context.write("deep\n", to: root + "/app/lib/deep")
        },
        Change(testDescription: "a file made executable") { root in #expect(chmod(root + "/app/f5.txt", 0o755) == 0) },
        Change(testDescription: "a hard link to a file made outside the copied folder") { root in
            #expect(link(root + "/app/f0.txt", root + "/outside") == 0)
        },
        Change(testDescription: "the file a single-file copy names, edited") { root in try Context.write("CONFIG\n", to: root + "/config.txt") },
        Change(testDescription: "the file a single-file copy names, replaced by a rename") { root in
            try Context.write("config\n", to: root + "/staged")
            #expect(rename(root + "/staged", root + "/config.txt") == 0)
        },
        Change(testDescription: "the folder a copy names, replaced by a symlink to another folder") { root in
            try FileManager.default.moveItem(atPath: root + "/app", toPath: root + "/app-old")
            try FileManager.default.copyItem(atPath: root + "/app-old", toPath: root + "/app-new")
            try FileManager.default.createSymbolicLink(atPath: root + "/app", withDestinationPath: "app-new")
        },
    ]

    @Test("every change that can change the layer is seen", arguments: changes)
    func seesChange(_ change: Change) throws {
        let context = try Context()
        defer { context.remove() }
        let (snapshot, _) = try context.walk()
        #expect(snapshot.isUnchanged())
        try change.apply(context.root)
        #expect(!snapshot.isUnchanged(), "one thread")
        #expect(!snapshot.isUnchanged(threads: 4), "four threads")
        #expect(!ContextSnapshot(decoding: snapshot.encoded())!.isUnchanged(), "after a round trip through the cache file")
    }

    @Test("what the copy excludes, and what it does not copy, may change without a rebuild")
    func ignoresExcluded() throws {
        let context = try Context()
        defer { context.remove() }
        let (snapshot, _) = try context.walk()
        try Context.write("more\n", to: context.root + "/app/cache/more.tmp")
        try Context.write("CHANGED\n", to: context.root + "/app/cache/c.tmp")
        try Context.write("elsewhere\n", to: context.root + "/notes.md")
        #expect(snapshot.isUnchanged())
    }

    @Test("with thousands of files checked on several threads, a change in the first or the last folder is seen", arguments: [0, 39])
    func manyFolders(_ changedFolder: Int) throws {
        let root = NSTemporaryDirectory() + "snapshot-many-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for folder in 0..<40 {
            for file in 0..<100 { try Context.write("\(folder)/\(file)\n", to: root + "/src/d\(folder)/f\(file)") }
        }
        let reader = try ContextReader(root: root)
        var tree = LayerTree()
        var snapshot = ContextSnapshot()
        try reader.add(ContextCopy(source: "src", destination: "/app/"), to: &tree, recording: &snapshot)
        #expect(snapshot.isUnchanged(threads: 2) && snapshot.isUnchanged(threads: 7))
        let edited = root + "/src/d\(changedFolder)/f99"
        try Context.write("\(changedFolder)/98\n", to: edited)  // the same size
        #expect(!snapshot.isUnchanged(threads: 2) && !snapshot.isUnchanged(threads: 7) && !snapshot.isUnchanged(threads: 1))
    }

    @Test("stat data from two seconds before the walk began, or later, is racy; older stat data is not")
    func racy() throws {
        let context = try Context()
        defer { context.remove() }
        var (snapshot, _) = try context.walk()
        #expect(snapshot.isRacy)
        // The walk, not the moment the snapshot is kept, is what counts: a folder listed in the tick of
        // its last change may gain a name in that same tick, however long the build then takes.
        snapshot.started += LayerFingerprint.racyWindow
        #expect(snapshot.isRacy)
        snapshot.started += 1
        #expect(!snapshot.isRacy)
        #expect(ContextSnapshot(decoding: snapshot.encoded())?.started == snapshot.started)
    }

    @Test("a file whose mtime lies years ahead is not racy: only the change time, which the kernel sets, tells")
    func futureModificationTime() throws {
        let context = try Context()
        defer { context.remove() }
        let path = context.root + "/app/f0.txt"
        let future = timespec(tv_sec: Int(Date().timeIntervalSince1970) + 10 * 365 * 86400, tv_nsec: 0)
        var times = [future, future]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        var (snapshot, _) = try context.walk()
        snapshot.started += LayerFingerprint.racyWindow + 1
        #expect(!snapshot.isRacy)
        let (_, entries) = try context.walk()
        #expect(try LayerFingerprint.contents(of: entries, spool: nil, walkStarted: snapshot.started) != nil)
    }

    @Test("cache bytes cut short or corrupted are a miss, never a crash")
    func corruptBytes() throws {
        let context = try Context()
        defer { context.remove() }
        let encoded = try context.walk().0.encoded()
        for length in 0..<encoded.count {
            #expect(ContextSnapshot(decoding: Array(encoded[..<length])) == nil)
        }
        #expect(ContextSnapshot(decoding: encoded + [0]) == nil, "trailing bytes")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var bytes = encoded
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            _ = ContextSnapshot(decoding: bytes)  // any answer but a crash or a huge allocation
        }
    }
}
