import CommandLineTesting
import Foundation
import OCI
import Testing

/// A TCP listener on 127.0.0.1 that never answers: it only counts the connections that reached it.
final class LoopbackSquatter {
    let fd: Int32
    let port: Int

    /// Listens on `port` (0: any free one).
    init(port: Int = 0) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        self.port = Int(UInt16(bigEndian: address.sin_port))
        guard bound, listen(fd, 64) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// The connections that arrived so far (each is accepted and closed).
    func acceptedConnections() -> Int {
        var count = 0
        while true {
            let connection = accept(fd, nil, nil)
            guard connection >= 0 else { return count }
            close(connection)
            count += 1
        }
    }

    deinit { close(fd) }
}

/// The `name: value` lines of the confinement probe (`cgi-bin/confinement`), asked through the front.
func confinement(front: Int, hostPort: Int) throws -> [String: String] {
    let answer = try run("/usr/bin/curl", ["-s", "--max-time", "20", "http://127.0.0.1:\(front)/cgi-bin/confinement?\(hostPort)"])
    var fields: [String: String] = [:]
    for line in answer.stdout.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return fields
}

extension DeployTests {
    @Test("inside an instance under either runner, as root or not: no capability, seccomp filtering, no new privileges, no namespace, no mount, no host loopback",
          arguments: ["runc", "bwrap"], ["1.0.0", "4.0.0"])
    func confinedInstance(runner: String, version: String) throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let hostService = try LoopbackSquatter()
        let port = freePort()
        let result = try daemon.command(["apply", hello.spec(version, port: port, replicas: 1, runner: runner)])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let inside = try confinement(front: port, hostPort: hostService.port)
        #expect(inside["Seccomp"] == "2", "the seccomp filter is loaded: \(inside)")
        #expect(inside["NoNewPrivs"] == "1", "\(inside)")
        for set in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
            #expect(inside[set] == "0000000000000000", "\(set): no capability unless the spec allows it: \(inside)")
        }
        #expect(inside["unshare"] == "refused", "\(inside)")
        #expect(inside["mount"] == "refused", "\(inside)")
        #expect(inside["sysctl"] == "refused" && inside["netsysctl"] == "refused", "kernel settings are read-only: \(inside)")
        #expect(inside["root"] == "read-only" && inside["tmp"] == "writable" && inside["volume"] == "writable",
                "a read-only root with /tmp and the image's volume writable: \(inside)")
        #expect(inside["host"] == "unreachable", "the host's loopback services are out of reach: \(inside)")
        #expect(hostService.acceptedConnections() == 0)
        let uid = version == "1.0.0" ? "65534" : "0"
        #expect(inside["Uid"]?.split(separator: "\t").first.map(String.init) == uid, "the image's own user, as the image sees it: \(inside)")
        // As the host sees it: ids in a user namespace of their own (1<<30 + the image's).
        let instance = try #require((try daemon.status("hello")["instances"] as? [[String: Any]])?.first)
        let pid = try #require(instance["pid"] as? Int)
        let hostUid = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first.map(String.init)
        #expect(hostUid == String((1 << 30) + Int(uid)!), "not the host's uid \(uid): \(hostUid ?? "-")")
        // The daemon ignores SIGTERM and SIGINT; the image's processes must not inherit that, or a graceful
        // stop waits out the stop timeout and ends in SIGKILL.
        for field in ["SigIgn", "SigBlk"] {
            let mask = try #require(inside[field].flatMap { UInt64($0, radix: 16) }, "\(inside)")
            #expect(mask & (1 << (UInt64(SIGTERM) - 1) | 1 << (UInt64(SIGINT) - 1)) == 0, "\(field) \(String(mask, radix: 16)): SIGTERM or SIGINT is not heard")
        }
    }

    @Test("a capability the spec allows is the only one an instance keeps, and writableRoot lets it write to its root", arguments: ["runc", "bwrap"])
    func allowedCapability(runner: String) throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        let result = try daemon.command(["apply", hello.spec("4.0.0", port: port, replicas: 1, runner: runner, extra: "capabilities: [NET_BIND_SERVICE]\nwritableRoot: true")])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        let inside = try confinement(front: port, hostPort: 1)
        #expect(inside["CapEff"] == "0000000000000400", "CAP_NET_BIND_SERVICE (bit 10) alone: \(inside)")
        #expect(inside["root"] == "writable", "\(inside)")
        #expect(inside["Seccomp"] == "2", "\(inside)")
    }

    @Test("a process that binds the instance's port on the host first never receives a request", arguments: ["runc", "bwrap"])
    func portSquatting(runner: String) throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let squatter = try LoopbackSquatter()
        let port = freePort()
        let result = try daemon.command(["apply", hello.spec("1.0.0", port: port, runner: runner, instancePort: squatter.port)])
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        for _ in 0..<20 { #expect(try frontPage(port).contains("hello 1.0.0")) }
        #expect(squatter.acceptedConnections() == 0, "neither the health checks nor the front reached the squatter")
    }
}

extension DeployTests {
    @Test("a byte flipped in an unpacked release is found by verify, with its path, and the release no longer starts")
    func changedReleaseRefused() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        let spec = hello.spec("1.0.0", port: port, replicas: 1)
        try #require(try daemon.command(["apply", spec]).status == 0)
        let instance = try #require((try daemon.status("hello")["instances"] as? [[String: Any]])?.first)
        let tree = try #require(instance["tree"] as? String)
        #expect(tree.hasPrefix("sha256:") && tree.count == 71, "status shows the tree the instance started from: \(instance)")
        #expect((instance["manifest"] as? String) == hello.digests["1.0.0"], "and its manifest: \(instance)")
        let clean = try daemon.command(["verify", "hello"])
        #expect(clean.status == 0 && clean.stdout.contains(tree), "\(clean.stdout)\(clean.stderr)")

        let folder = daemon.state + "/releases/sha256-" + hello.digests["1.0.0"]!.dropFirst(7)
        let page = folder + "/rootfs/srv/www/index.html"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: page)))
        let before = Digest.of(bytes)
        bytes[0] ^= 0x01
        // The release folder is read-only to instances, not to root: this is the hand (or disk) the check is for.
        try Data(bytes).write(to: URL(fileURLWithPath: page))
        // A careful hand rewrites the record too: tree.txt with the page's new hash, release.json with the
        // listing's new digest. verify unpacks the image's layers again and is not fooled.
        let listing = try String(contentsOfFile: folder + "/tree.txt", encoding: .utf8)
        #expect(listing.contains(before.hex))
        let forged = listing.replacingOccurrences(of: before.hex, with: Digest.of(bytes).hex)
        write(forged, to: folder + "/tree.txt")
        var record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/release.json"))) as? [String: Any] ?? [:]
        record["tree"] = Digest.of(Data(forged.utf8)).description
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: folder + "/release.json"))
        let rewritten = try daemon.command(["verify", "hello"])
        #expect(rewritten.status == 1 && rewritten.stderr.contains("changed /srv/www/index.html"), "\(rewritten.stdout)\(rewritten.stderr)")
        // And a start does not take the forged record either: the daemon knows the tree it unpacked.
        let again = try daemon.command(["apply", hello.spec("1.0.0", port: port, replicas: 2)])
        #expect(again.status != 0 && (again.stdout + again.stderr).contains("changed /srv/www/index.html"), "\(again.stdout)\(again.stderr)")

        // An extended attribute (as a file capability would be) changes the tree as much as a byte.
        let healthz = page.replacingOccurrences(of: "index.html", with: "healthz")
        #expect(try run("/usr/bin/python3", ["-c", "import os, sys; os.setxattr(sys.argv[1], 'user.imgdeploy-test', b'1')", healthz]).status == 0)
        let changed = try daemon.command(["verify", "hello"])
        #expect(changed.status == 1, "\(changed.stdout)\(changed.stderr)")
        #expect(changed.stderr.contains("changed /srv/www/healthz; changed /srv/www/index.html"), "\(changed.stderr)")

        // A record that lost its tree (as an older imgdeploy wrote them) is not trusted as the folder is
        // now: the tree is derived from the layers again, and a new instance of it is refused, naming the path.
        record.removeValue(forKey: "tree")
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: folder + "/release.json"))
        try FileManager.default.removeItem(atPath: folder + "/tree.txt")
        let grown = try daemon.command(["apply", hello.spec("1.0.0", port: port, replicas: 2)])
        #expect(grown.status != 0, "\(grown.stdout)\(grown.stderr)")
        #expect((grown.stdout + grown.stderr).contains("changed /srv/www/index.html"), "\(grown.stdout)\(grown.stderr)")
    }

    @Test("what runs comes from the verified config blob, not from the copy of the config in the release folder")
    func forgedConfigIgnored() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        try #require(try daemon.command(["apply", hello.spec("1.0.0", port: port, replicas: 1)]).status == 0)
        let record = daemon.state + "/releases/sha256-" + hello.digests["1.0.0"]!.dropFirst(7) + "/release.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: record))) as? [String: Any] ?? [:]
        var config = json["config"] as? [String: Any] ?? [:]
        var execution = config["config"] as? [String: Any] ?? [:]
        execution["User"] = "0:0"
        execution["Env"] = ((execution["Env"] as? [String]) ?? []) + ["FORGED=1"]
        config["config"] = execution
        json["config"] = config
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: record))

        let grown = try daemon.command(["apply", hello.spec("1.0.0", port: port, replicas: 2)])
        try #require(grown.status == 0, "\(grown.stdout)\(grown.stderr)")
        for instance in try daemon.status("hello")["instances"] as? [[String: Any]] ?? [] {
            let pid = try #require(instance["pid"] as? Int)
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t").dropFirst().first.map(String.init)
            #expect(uid == String((1 << 30) + 65534), "the image's user, not the forged root: \(uid ?? "-")")
            let environment = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))).map { String(decoding: $0, as: UTF8.self) } ?? ""
            #expect(!environment.contains("FORGED=1"))
        }
    }

    @Test("an image whose user is beyond the instances' user namespace is refused with what to change", arguments: ["runc", "bwrap"])
    func userBeyondNamespace(runner: String) throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let result = try daemon.command(["apply", hello.spec("5.0.0", port: freePort(), replicas: 1, runner: runner)])
        #expect(result.status != 0 && (result.stdout + result.stderr).contains("beyond the 65536 ids"), "\(result.stdout)\(result.stderr)")
        #expect(try daemon.command(["status", "--json"]).status == 0, "the daemon is still there")
    }

    @Test("an instance that stops answering leaves the pool while the others serve, and comes back once it answers again")
    func hungInstanceSuspended() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        try #require(try daemon.command(["apply", hello.spec("1.0.0", port: port, replicas: 2)]).status == 0)
        let first = try #require((try daemon.status("hello")["instances"] as? [[String: Any]])?.first)
        let id = try #require(first["id"] as? String)
        let pid = try #require(first["pid"] as? Int)
        func serving() throws -> Bool? {
            (try daemon.status("hello")["instances"] as? [[String: Any]])?.first { $0["id"] as? String == id }?["serving"] as? Bool
        }
        kill(pid_t(pid), SIGSTOP)
        var out = false
        for _ in 0..<300 where !out { usleep(100_000); out = try serving() == false }
        kill(pid_t(pid), SIGCONT)
        #expect(out, "the stopped instance left the pool")
        var back = false
        for _ in 0..<300 where !back { usleep(100_000); back = try serving() == true }
        #expect(back, "it came back once it answered again")
        for _ in 0..<10 { #expect(try frontPage(port).contains("hello 1.0.0")) }
    }
}
