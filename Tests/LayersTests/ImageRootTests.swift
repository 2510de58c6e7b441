import Foundation
import Layers
import Testing
import TestScheduling

/// A hostile image root on disk, next to a folder of the "host" that must never be read through it.
///
///     <folder>/outside/etc/{hostname,passwd}   the host's files: the sentinels
///     <folder>/root/                            the image root, with symlinks made to reach them
private struct HostileRoot {
    let folder: String
    var root: String { folder + "/root" }
    var outside: String { folder + "/outside" }
    static let sentinel = "SENTINEL: a file of the host"
    static let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n"

    init() throws {
        folder = NSTemporaryDirectory() + "image-root-\(UUID().uuidString.prefix(8))"
        let manager = FileManager.default
        for path in ["outside/etc", "root/etc", "root/x", "root/outside/etc", "root/chain"] {
            try manager.createDirectory(atPath: folder + "/" + path, withIntermediateDirectories: true)
        }
        try HostileRoot.sentinel.write(toFile: folder + "/outside/etc/hostname", atomically: false, encoding: .utf8)
        try "intruder:x:666:666::/:/bin/sh\n".write(toFile: folder + "/outside/etc/passwd", atomically: false, encoding: .utf8)
        try "inside".write(toFile: folder + "/root/etc/hostname", atomically: false, encoding: .utf8)
        try HostileRoot.passwd.write(toFile: folder + "/root/etc/passwd", atomically: false, encoding: .utf8)
        try "decoy inside".write(toFile: folder + "/root/outside/etc/hostname", atomically: false, encoding: .utf8)
        try "plain".write(toFile: folder + "/root/file", atomically: false, encoding: .utf8)
        for (name, target) in [
            ("x/up", ".."), ("x/esc", "up/.."),                    // x/esc is the root's parent for the host
            ("abs", "/etc/passwd"), ("rel", "../../../etc/passwd"),  // the host's /etc/passwd for the host
            ("hostabs", folder + "/outside/etc"),                  // the sentinel folder by its host path
            ("etclink", "x/esc/outside/etc"),                  // the sentinel folder for the host, the decoy inside
            ("loop1", "loop2"), ("loop2", "loop1"),
        ] {
            try manager.createSymbolicLink(atPath: folder + "/root/" + name, withDestinationPath: target)
        }
        // chain/l0 -> l1 -> … -> l40 -> /etc/hostname: 41 links from l0, 40 from l1.
        for index in 0..<41 {
            try manager.createSymbolicLink(atPath: folder + "/root/chain/l\(index)", withDestinationPath: index == 40 ? "/etc/hostname" : "l\(index + 1)")
        }
        guard mkfifo(folder + "/root/fifo", 0o644) == 0 else { throw CocoaError(.fileWriteUnknown) }
        let big = open(folder + "/root/big", O_WRONLY | O_CREAT, 0o644)
        defer { close(big) }
        guard big >= 0, ftruncate(big, 1 << 30) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// Opens, reads and attribute changes of the host folder, as inotify saw them since `watch()`.
    final class Watch {
        let fd: Int32
        init(_ folders: [String]) {
            fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            for folder in folders { inotify_add_watch(fd, folder, UInt32(IN_OPEN | IN_ACCESS | IN_ATTRIB)) }
        }
        deinit { close(fd) }
        /// How many events arrived.
        func events() -> Int {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { return 0 }
            var count = 0
            var offset = 0
            while offset < n {
                count += 1
                let nameLength = buffer.withUnsafeBytes { $0.load(fromByteOffset: offset + 12, as: UInt32.self) }
                offset += 16 + Int(nameLength)
            }
            return count
        }
    }

    func watch() -> Watch { Watch([outside, outside + "/etc"]) }
}

@Suite("Reading inside an image root", .mayBlock)
struct ImageRootTests {
    static let resolutions: [ImageRoot.Resolution] = [.automatic, .userSpace]

    @Test("the hostile root reaches the host when its paths are followed naively (so the other tests mean something)")
    func naiveReadEscapes() throws {
        let hostile = try HostileRoot()
        defer { try? FileManager.default.removeItem(atPath: hostile.folder) }
        #expect(try String(contentsOfFile: hostile.root + "/x/esc/outside/etc/hostname", encoding: .utf8) == HostileRoot.sentinel)
        #expect(try String(contentsOfFile: hostile.root + "/hostabs/hostname", encoding: .utf8) == HostileRoot.sentinel)
        #expect(try String(contentsOfFile: hostile.root + "/etclink/hostname", encoding: .utf8) == HostileRoot.sentinel)
    }

    @Test("every path resolves inside the root: '..' stops at it, absolute symlinks start from it, chains are followed inside it",
          arguments: resolutions)
    func resolvesInside(_ resolution: ImageRoot.Resolution) throws {
        let hostile = try HostileRoot()
        defer { try? FileManager.default.removeItem(atPath: hostile.folder) }
        let root = ImageRoot(hostile.root, resolution: resolution)
        let watch = hostile.watch()
        func text(_ path: String) throws -> String { String(decoding: try root.read(path, limit: 1 << 20), as: UTF8.self) }

        #expect(try text("x/esc/outside/etc/hostname") == "decoy inside", "x/esc is the root itself")
        #expect(try text("/x/esc/x/esc/x/esc/etc/hostname") == "inside")
        #expect(try text("../../outside/etc/hostname") == "decoy inside")
        #expect(try text("etclink/hostname") == "decoy inside")
        #expect(try text("etclink/../../etc/hostname") == "inside")
        #expect(try text("abs") == HostileRoot.passwd)
        #expect(try text("rel") == HostileRoot.passwd)
        #expect(try text("/etc/passwd") == HostileRoot.passwd)
        #expect(throws: ImageRootError.notFound(root: hostile.root, path: "hostabs/hostname")) { try root.read("hostabs/hostname", limit: 100) }
        #expect(throws: ImageRootError.notFound(root: hostile.root, path: "x/esc/outside/etc/passwd")) { try root.read("x/esc/outside/etc/passwd", limit: 100) }
        #expect(throws: ImageRootError.notFound(root: hostile.root, path: "file/x")) { try root.read("file/x", limit: 100) }
        #expect(throws: ImageRootError.tooManySymlinks(root: hostile.root, path: "loop1")) { try root.read("loop1", limit: 100) }
        #expect(throws: ImageRootError.tooManySymlinks(root: hostile.root, path: "chain/l0")) { try root.read("chain/l0", limit: 100) }
        #expect(try text("chain/l1") == "inside", "40 symlinks are allowed, as by the kernel")

        #expect(watch.events() == 0, "nothing outside the root was opened")
        #expect(try String(contentsOfFile: hostile.outside + "/etc/hostname", encoding: .utf8) == HostileRoot.sentinel)
        #expect(watch.events() > 0, "the watch does see a read of the sentinel")
    }

    @Test("folders are made inside the root: through symlinks as the image sees them, never in the host's folders", arguments: resolutions)
    func makesFoldersInside(_ resolution: ImageRoot.Resolution) throws {
        let hostile = try HostileRoot()
        defer { try? FileManager.default.removeItem(atPath: hostile.folder) }
        let root = ImageRoot(hostile.root, resolution: resolution)
        let manager = FileManager.default
        try root.makeFolders("/srv/data/deep")
        var isFolder: ObjCBool = false
        #expect(manager.fileExists(atPath: hostile.root + "/srv/data/deep", isDirectory: &isFolder) && isFolder.boolValue)
        // x/esc is the root's parent for the host, the root itself for the image.
        try root.makeFolders("x/esc/outside/made")
        #expect(manager.fileExists(atPath: hostile.root + "/outside/made"))
        #expect(!manager.fileExists(atPath: hostile.outside + "/made"), "nothing was made in the host's folder")
        // hostabs names the host's folder by its host path: inside the root that path does not exist.
        #expect(throws: ImageRootError.self) { try root.makeFolders("hostabs/made") }
        #expect(!manager.fileExists(atPath: hostile.outside + "/etc/made"))
        #expect(throws: ImageRootError.self) { try root.makeFolders("file/made") }
        try root.makeFolders("/srv/data")  // already there: nothing to do
    }

    @Test("status describes the path inside the root; a final symlink itself unless followed", arguments: resolutions)
    func status(_ resolution: ImageRoot.Resolution) throws {
        let hostile = try HostileRoot()
        defer { try? FileManager.default.removeItem(atPath: hostile.folder) }
        let root = ImageRoot(hostile.root, resolution: resolution)
        let watch = hostile.watch()
        var rootInfo = stat()
        stat(hostile.root, &rootInfo)
        let link = try root.status("x/esc")
        #expect(link.map { $0.st_mode & S_IFMT } == S_IFLNK)
        let followed = try root.status("x/esc", followFinalSymlink: true)
        #expect(followed?.st_ino == rootInfo.st_ino && followed?.st_dev == rootInfo.st_dev, "x/esc leads to the root")
        #expect(try root.status("x/esc/..", followFinalSymlink: true)?.st_ino == rootInfo.st_ino)
        #expect(try root.status("hostabs/hostname") == nil)
        #expect(try root.status("x/esc/outside/etc/passwd") == nil)
        #expect(try root.status("etc/hostname/x") == nil)
        #expect(try root.status("etclink/hostname")?.st_size == 12)
        #expect(try root.status("")?.st_ino == rootInfo.st_ino)
        #expect(watch.events() == 0)
    }

    @Test("reads are bounded: a larger file is refused or cut at the limit, a fifo never blocks, a folder is no file", arguments: resolutions)
    func boundedReads(_ resolution: ImageRoot.Resolution) throws {
        let hostile = try HostileRoot()
        defer { try? FileManager.default.removeItem(atPath: hostile.folder) }
        let root = ImageRoot(hostile.root, resolution: resolution)
        #expect(throws: ImageRootError.tooLarge(root: hostile.root, path: "big", limit: 4 << 20)) { try root.read("big", limit: 4 << 20) }
        #expect(try root.read("big", limit: 4 << 20, beyondLimit: .truncate).count == 4 << 20)
        #expect(try root.read("etc/hostname", limit: 6) == Array("inside".utf8))
        #expect(throws: ImageRootError.tooLarge(root: hostile.root, path: "etc/hostname", limit: 5)) { try root.read("etc/hostname", limit: 5) }
        #expect(try root.read("etc/hostname", limit: 3, beyondLimit: .truncate) == Array("ins".utf8))
        #expect(throws: ImageRootError.notRegularFile(root: hostile.root, path: "fifo", type: "fifo")) { try root.read("fifo", limit: 100) }
        #expect(throws: ImageRootError.notRegularFile(root: hostile.root, path: "x/esc", type: "folder")) { try root.read("x/esc", limit: 100) }
    }
}

extension ImageRoot.Resolution: CustomTestStringConvertible {
    public var testDescription: String { self == .automatic ? "openat2" : "user-space walk" }
}
