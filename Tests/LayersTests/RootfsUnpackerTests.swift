import Foundation
import Layers
import Testing
import TestScheduling

/// Writes a tar layer with Python's tarfile (a tar writer other than ours), from a small script of entries.
private func pythonLayer(_ entries: String, compress: Bool = true) throws -> String {
    let folder = NSTemporaryDirectory() + "unpack-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let path = folder + "/layer.tar" + (compress ? ".gz" : "")
    let script = """
    import io, sys, tarfile
    def f(tar, name, data=b"x", mode=0o644):
        i = tarfile.TarInfo(name); i.size = len(data); i.mode = mode; tar.addfile(i, io.BytesIO(data))
    def d(tar, name, mode=0o755):
        i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = mode; tar.addfile(i)
    def l(tar, name, target):
        i = tarfile.TarInfo(name); i.type = tarfile.SYMTYPE; i.linkname = target; tar.addfile(i)
    def h(tar, name, target):
        i = tarfile.TarInfo(name); i.type = tarfile.LNKTYPE; i.linkname = target; tar.addfile(i)
    with tarfile.open(sys.argv[1], "w:gz" if sys.argv[1].endswith(".gz") else "w", format=tarfile.PAX_FORMAT) as tar:
    \(entries.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", script, path]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CocoaError(.fileWriteUnknown) }
    return path
}

private func emptyRoot() throws -> String {
    let root = NSTemporaryDirectory() + "rootfs-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    return root
}

private func exists(_ path: String) -> Bool {
    var info = stat()
    return lstat(path, &info) == 0
}

@Suite("Unpacking layers onto a rootfs", .mayBlock)
struct RootfsUnpackerTests {
    @Test("files, folders, symlinks and hard links land with their modes; later layers replace earlier ones")
    func basicLayers() throws {
        let first = try pythonLayer("""
        d(tar, "etc", 0o755)
        f(tar, "etc/conf", b"one", 0o600)
        f(tar, "bin/tool", b"#!/bin/sh", 0o755)
        l(tar, "bin/sh", "/bin/tool")
        h(tar, "bin/tool2", "bin/tool")
        """)
        let second = try pythonLayer("""
        f(tar, "etc/conf", b"two", 0o644)
        """, compress: false)
        let root = try emptyRoot()
        let summary = try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(
            layers: [(first, "first"), (second, "second")], into: root)
        #expect(summary.entries == 6)
        #expect(try String(contentsOfFile: root + "/etc/conf", encoding: .utf8) == "two")
        #expect(try FileManager.default.attributesOfItem(atPath: root + "/etc/conf")[.posixPermissions] as? Int == 0o644)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: root + "/bin/sh") == "/bin/tool")
        var a = stat(), b = stat()
        stat(root + "/bin/tool", &a)
        stat(root + "/bin/tool2", &b)
        #expect(a.st_ino == b.st_ino && a.st_nlink == 2, "a hard link, not a copy")
    }

    @Test("whiteouts remove lower files and folders; an opaque folder keeps only this layer's entries")
    func whiteouts() throws {
        let lower = try pythonLayer("""
        f(tar, "a/x")
        f(tar, "a/y")
        f(tar, "b/deep/z")
        f(tar, "c/old")
        f(tar, "keep")
        """)
        let upper = try pythonLayer("""
        f(tar, "a/.wh.x", b"")
        f(tar, ".wh.b", b"")
        f(tar, "c/.wh..wh..opq", b"")
        f(tar, "c/new")
        f(tar, ".wh.never-existed", b"")
        """)
        let root = try emptyRoot()
        let summary = try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(lower, "lower"), (upper, "upper")], into: root)
        #expect(summary.whiteouts == 4)
        #expect(!exists(root + "/a/x") && exists(root + "/a/y"))
        #expect(!exists(root + "/b"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/c") == ["new"])
        #expect(exists(root + "/keep") && !exists(root + "/a/.wh.x") && !exists(root + "/c/.wh..wh..opq"))
    }

    @Test("refused: setuid files unless allowed, hard links out of the root, and more bytes than the limit")
    func limits() throws {
        let setuid = try pythonLayer("f(tar, \"bin/su\", b\"x\", 0o4755)")
        let refused = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(setuid, "setuid")], into: try emptyRoot())
        }
        #expect(refused?.description.contains("setuid") == true && refused?.description.contains("allowSetuid") == true)
        let allowed = try emptyRoot()
        _ = try RootfsUnpacker(policy: UnpackPolicy(allowSetuid: true, applyOwners: false)).unpack(layers: [(setuid, "setuid")], into: allowed)
        #expect(try FileManager.default.attributesOfItem(atPath: allowed + "/bin/su")[.posixPermissions] as? Int == 0o4755)

        let link = try pythonLayer("h(tar, \"passwd\", \"../../etc/passwd\")")
        let linkError = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(link, "link")], into: try emptyRoot())
        }
        #expect(linkError?.description.contains("hard link target") == true)

        let big = try pythonLayer("f(tar, \"big\", b\"0\" * 4096)\nf(tar, \"big2\", b\"0\" * 4096)")
        let root = try emptyRoot()
        let bomb = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(maxBytes: 6000, applyOwners: false)).unpack(layers: [(big, "big")], into: root)
        }
        #expect(bomb?.description.contains("more than 6000 bytes") == true)
    }
    @Test("deep paths and the folders they imply are bounded (a 30,000-deep path then its whiteout crashed the deployer)")
    func deepPaths() throws {
        let deep = try pythonLayer("f(tar, \"r0/\" + \"a/\" * 30000 + \"f\")")
        let whiteout = try pythonLayer("f(tar, \".wh.r0\", b\"\")")
        let tooDeep = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(deep, "deep"), (whiteout, "whiteout")], into: try emptyRoot())
        }
        #expect(tooDeep?.description.contains("folders deep") == true, "\(String(describing: tooDeep))")
        // One entry, 40 folders implied: they count against the entry limit like entries.
        let implied = try pythonLayer("f(tar, \"a/\" * 40 + \"f\")")
        let counted = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(maxEntries: 20, applyOwners: false)).unpack(layers: [(implied, "implied")], into: try emptyRoot())
        }
        #expect(counted?.description.contains("folders its paths imply") == true, "\(String(describing: counted))")
        let within = try emptyRoot()
        let summary = try RootfsUnpacker(policy: UnpackPolicy(maxEntries: 50, applyOwners: false)).unpack(layers: [(implied, "implied")], into: within)
        #expect(summary.entries == 1 && summary.impliedFolders == 40)
    }

    @Test("symlinks that take thousands of steps to resolve are refused instead of followed for minutes")
    func expensiveLinks() throws {
        let layer = try pythonLayer("l(tar, \"s\", \"a/\" * 680 + \"../\" * 680)\nfor i in range(50): l(tar, \"t%d\" % i, \"s/\" * 39 + \".\")")
        let refused = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(layer, "links")], into: try emptyRoot())
        }
        #expect(refused?.description.contains("steps to resolve") == true, "\(String(describing: refused))")
    }
}
