import Foundation
import Glob
import Layers
import OCI
import Testing
import TestScheduling

@Suite("Layer trees", .mayBlock)
struct LayerTreeTests {
    @Test("entries come out sorted by path bytes with every parent directory")
    func sortedWithParents() throws {
        var tree = LayerTree()
        for path in ["b/z", "a-b", "a/b/c", "B", "é"] {
            tree.insert(LayerEntry(path: path, kind: .symlink(target: "x"), mode: 0o777))
        }
        let paths = try tree.finalizedEntries().map(\.path)
        #expect(paths == ["B", "a", "a-b", "a/b", "a/b/c", "b", "b/z", "é"])
        let parent = try tree.finalizedEntries().first { $0.path == "a/b" }
        #expect(parent?.kind == .directory && parent?.mode == 0o755 && parent?.uid == 0)
    }

    @Test("a later entry replaces an earlier one; a file over a folder removes the folder's contents")
    func replacement() throws {
        var tree = LayerTree()
        tree.insert(LayerEntry(path: "etc", kind: .directory, mode: 0o700))
        tree.insert(LayerEntry(path: "etc/conf", kind: .symlink(target: "a"), mode: 0o777))
        tree.insert(LayerEntry(path: "etc", kind: .directory, mode: 0o755))
        #expect(try tree.finalizedEntries().first?.mode == 0o755)
        tree.insert(LayerEntry(path: "etc", kind: .symlink(target: "/x"), mode: 0o777))
        #expect(try tree.finalizedEntries().map(\.path) == ["etc"])
    }

    @Test("an entry below a symlink or file is a conflict; a hard link needs its target")
    func conflicts() {
        var tree = LayerTree()
        tree.insert(LayerEntry(path: "lib", kind: .symlink(target: "/usr/lib"), mode: 0o777))
        tree.insert(LayerEntry(path: "lib/x", kind: .symlink(target: "y"), mode: 0o777))
        #expect(throws: LayerError.pathConflict(path: "lib/x", blocker: "lib")) { try tree.finalizedEntries() }

        var links = LayerTree()
        links.insert(LayerEntry(path: "a", kind: .hardlink(target: "missing"), mode: 0o644))
        #expect(throws: LayerError.hardlinkTargetMissing(path: "a", target: "missing")) { try links.finalizedEntries() }
    }

    @Test("paths from archives are normalised; .. is refused", arguments: [
        ("./usr/bin/", "usr/bin"), ("/etc//passwd", "etc/passwd"), ("a/./b", "a/b"), (".", ""), ("a/../b", nil), ("../x", nil),
    ])
    func normalise(raw: String, expected: String?) {
        #expect(LayerPath.normalize(raw) == expected)
    }
}

@Suite("Exclude patterns", .mayBlock)
struct GlobTests {
    @Test("anchored patterns with ** for any depth", arguments: [
        ("**/*.tmp", "a.tmp", true), ("**/*.tmp", "x/y/a.tmp", true), ("**/*.tmp", "a.tmpl", false),
        ("*.tmp", "a.tmp", true), ("*.tmp", "x/a.tmp", false), ("notes", "notes", true), ("notes", "x/notes", false),
        ("build/**", "build/a/b", true), ("build/**", "builder/a", false), ("a/**/z", "a/z", true), ("a/**/z", "a/b/c/z", true),
        ("?.txt", "a.txt", true), ("?.txt", "ab.txt", false), ("[ab].c", "b.c", true), ("*", ".hidden", true),
    ])
    func matching(pattern: String, path: String, matches: Bool) throws {
        #expect(try Glob(pattern).matches(path) == matches)
    }

    @Test("bad patterns are refused", arguments: ["", "/abs", "../up", "a/../b"])
    func invalid(pattern: String) {
        #expect(throws: Glob.InvalidPattern.self) { try Glob(pattern) }
    }
}

@Suite("Writing and reading archives", .mayBlock)
struct ArchiveTests {
    func temporaryFile() -> (fd: Int32, path: String) {
        let path = NSTemporaryDirectory() + "layer-\(UUID())"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        return (fd, path)
    }

    @Test("gzip header: mtime 0, no name, OS byte 255; gzip -t accepts it")
    func gzipHeader() throws {
        var tree = LayerTree()
        tree.insert(LayerEntry(path: "a", kind: .symlink(target: "b"), mode: 0o777))
        let (fd, path) = temporaryFile()
        defer { close(fd); unlink(path) }
        let written = try LayerWriter(compression: .gzip, mtime: 0).write(tree, to: fd)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(Array(bytes.prefix(4)) == [0x1f, 0x8b, 8, 0], "magic, deflate, no FNAME flag")
        #expect(Array(bytes[4..<8]) == [0, 0, 0, 0], "mtime 0")
        #expect(bytes[9] == 255, "OS byte")
        #expect(written.size == Int64(bytes.count))
        #expect(written.digest == Digest.of(Data(bytes)))
        #expect(Process.exitStatus("/bin/gzip", ["-t", path]) == 0)
    }

    @Test("zstd output is the same for 1, 2 and 4 worker threads over several jobs")
    func zstdThreads() throws {
        let spool = try Spool()
        var tree = LayerTree(spool: spool)
        let dataPath = NSTemporaryDirectory() + "zstd-input-\(UUID())"
        var state: UInt64 = 42
        var data = Data(capacity: 20 << 20)
        while data.count < 20 << 20 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            withUnsafeBytes(of: state) { data.append(contentsOf: $0) }
            if data.count % 4096 == 0 { data.append(Data(repeating: 0x41, count: 4096)) }
        }
        try data.write(to: URL(fileURLWithPath: dataPath))
        defer { unlink(dataPath) }
        tree.insert(LayerEntry(path: "data", kind: .regularFile(.file(path: dataPath, size: Int64(data.count))), mode: 0o644))
        var digests = Set<Digest>()
        for threads in [1, 2, 4] {
            let (fd, path) = temporaryFile()
            defer { close(fd); unlink(path) }
            digests.insert(try LayerWriter(compression: .zstd, mtime: 0, zstdThreads: threads).write(tree, to: fd).digest)
            #expect(Process.exitStatus("/usr/bin/zstd", ["-t", "-q", path]) == 0)
        }
        #expect(digests.count == 1)
    }

    @Test("archive entries are imported with modes, owners, symlinks and hard links; .. is refused")
    func importArchive() throws {
        let source = NSTemporaryDirectory() + "archive-src-\(UUID())"
        try FileManager.default.createDirectory(atPath: source + "/bin", withIntermediateDirectories: true)
        try Data("#!/bin/sh\n".utf8).write(to: URL(fileURLWithPath: source + "/bin/tool"))
        chmod(source + "/bin/tool", 0o4755)
        symlink("tool", source + "/bin/alias")
        link(source + "/bin/tool", source + "/bin/hard")
        let archive = source + ".tar.xz"
        #expect(Process.exitStatus("/bin/tar", ["--owner=7", "--group=9", "--numeric-owner", "-C", source, "-cJf", archive, "bin"]) == 0)
        var tree = LayerTree(spool: try Spool())
        try ArchiveImporter(label: "t.tar.xz").importArchive(at: archive, under: "opt/t", into: &tree)
        let entries = try tree.finalizedEntries()
        let byPath = Dictionary(uniqueKeysWithValues: entries.map { ($0.path, $0) })
        #expect(byPath["opt/t/bin/tool"]?.mode == 0o4755)
        #expect(byPath["opt/t/bin/tool"]?.uid == 7 && byPath["opt/t/bin/tool"]?.gid == 9)
        #expect(byPath["opt/t/bin/alias"]?.kind == .symlink(target: "tool"))
        let hard = byPath["opt/t/bin/hard"]?.kind
        let tool = byPath["opt/t/bin/tool"]?.kind
        #expect(hard == .hardlink(target: "opt/t/bin/tool") || tool == .hardlink(target: "opt/t/bin/hard"))

        let evil = source + "-evil.tar"
        #expect(Process.exitStatus("/bin/tar", ["-P", "--transform", "s,^.*tool$,../escape,", "-cf", evil, source + "/bin/tool"]) == 0)
        var other = LayerTree(spool: try Spool())
        #expect(throws: LayerError.self) { try ArchiveImporter(label: "evil.tar").importArchive(at: evil, under: "", into: &other) }
    }

    @Test("a .deb's data.tar is unpacked; a non-package is refused")
    func debianPackage() throws {
        let deb = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path + "/fixtures/debs/busybox-static.deb"
        var tree = LayerTree(spool: try Spool())
        try ArchiveImporter(label: "busybox-static.deb").importDebianPackage(at: deb, into: &tree)
        #expect(tree["bin/busybox"]?.mode == 0o755)
        var other = LayerTree(spool: try Spool())
        #expect(throws: LayerError.self) {
            try ArchiveImporter(label: "not.deb").importDebianPackage(at: #filePath, into: &other)
        }
    }
}

extension Process {
    /// Runs a program to completion and returns its exit status.
    static func exitStatus(_ program: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}
