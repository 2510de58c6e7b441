import Foundation
import OCI
import Runtime
import Testing
import TestScheduling

/// An image root next to a folder of the "host" whose passwd names a user the image does not have.
private func hostileRoot(_ links: [(String, String)], passwd: String? = nil) throws -> (root: String, host: String) {
    let folder = NSTemporaryDirectory() + "user-root-\(UUID().uuidString.prefix(8))"
    let manager = FileManager.default
    try manager.createDirectory(atPath: folder + "/host/etc", withIntermediateDirectories: true)
    try manager.createDirectory(atPath: folder + "/root/x", withIntermediateDirectories: true)
    try "intruder:x:666:667::/:/bin/sh\n".write(toFile: folder + "/host/etc/passwd", atomically: false, encoding: .utf8)
    try "intruders:x:668:\n".write(toFile: folder + "/host/etc/group", atomically: false, encoding: .utf8)
    if let passwd {
        try manager.createDirectory(atPath: folder + "/root/etc", withIntermediateDirectories: true)
        try passwd.write(toFile: folder + "/root/etc/passwd", atomically: false, encoding: .utf8)
    }
    for (name, target) in links {
        try manager.createSymbolicLink(atPath: folder + "/root/" + name, withDestinationPath: target.replacingOccurrences(of: "$HOST", with: folder + "/host"))
    }
    return (folder + "/root", folder + "/host")
}

private func spec(_ user: String, rootfs: String) throws(RuntimeError) -> ProcessSpec {
    var execution = ImageConfig.Execution()
    execution.user = user
    execution.cmd = ["/bin/true"]
    let config = ImageConfig(created: nil, platform: Platform(os: "linux", architecture: "amd64"), config: execution,
                             rootfs: .init(diffIDs: []), history: nil)
    return try ProcessSpec(config: config, rootfs: rootfs, image: "hostile", host: "127.0.0.1", port: 8080)
}

@Suite("The user an image runs as, from its own /etc/passwd and /etc/group only", .mayBlock)
struct UserLookupTests {
    @Test("symlinks in the image never make it read the host's /etc/passwd or /etc/group", arguments: [
        [("etc", "$HOST/etc")],                                        // an absolute link: the image's own /…/etc, not the host's
        [("x/up", ".."), ("x/esc", "up/.."), ("etc", "x/esc/host/etc")], // a chain that climbs out for a host-side reader
    ])
    func hostFilesAreNotRead(_ links: [(String, String)]) throws {
        let (root, host) = try hostileRoot(links)
        #expect(try String(contentsOfFile: root + "/etc/passwd", encoding: .utf8).hasPrefix("intruder"), "followed naively, the link reaches \(host)")
        #expect(throws: RuntimeError.self) { _ = try spec("intruder", rootfs: root) }
        #expect(throws: RuntimeError.self) { _ = try spec("0:intruders", rootfs: root) }
    }

    @Test("names resolve through the image's files, symlinks followed inside it; a passwd over 4 MiB is refused, not slurped")
    func insideTheImage() throws {
        let (root, _) = try hostileRoot([("etc/alias", "/etc/passwd")], passwd: "app:x:1000:1001::/app:/bin/sh\n")
        let process = try spec("app", rootfs: root)
        #expect(process.uid == 1000 && process.gid == 1001)
        #expect(try spec("1000:5", rootfs: root).gid == 5)
        let big = open(root + "/etc/passwd", O_WRONLY | O_TRUNC)
        ftruncate(big, 64 << 20)
        close(big)
        let error = #expect(throws: RuntimeError.self) { _ = try spec("app", rootfs: root) }
        #expect(error?.description.contains("more than 4194304 bytes") == true, "\(String(describing: error))")
    }
    @Test("ids are digits only, as libc reads them: a signed uid in passwd or in the config is refused")
    func signedIDs() throws {
        let (root, _) = try hostileRoot([], passwd: "app:x:-0:-0::/:/bin/sh\nplus:x:+0:+00::/:/bin/sh\n")
        for user in ["app", "plus", "+0", "0:-0"] {
            #expect(throws: RuntimeError.self, "user '\(user)'") { try spec(user, rootfs: root) }
        }
        #expect(try spec("0:0", rootfs: root).uid == 0)
    }
}
