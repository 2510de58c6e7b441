import CommandLineTesting
import Foundation
import Testing
import TestScheduling

@Suite("Layer cache (stat cache)", .mayBlock)
struct LayerCacheTests {
    @Test("an unchanged layer is not written again; an edit that keeps size and mtime is still seen; another store rebuilds")
    func statCache() throws {
        let context = makeTemporaryDirectory("cache-context")
        for index in 0..<50 { write("file \(index)\n", to: context + "/src/f\(index).txt") }
        write("name: cached\nversion: 1.0.0\ncode:\n  - copy: src/\n    to: /app/\n", to: context + "/Imagefile")
        // Files changed within the last 2 s are "racily clean" and never cached: let them age.
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cache = ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]
        let first = try imgbuild(["build", context, "--store", store], environment: cache)
        #expect(first.status == 0 && !first.stderr.contains("unchanged since"), "\(first.stderr)")
        let second = try imgbuild(["build", context, "--store", store], environment: cache)
        #expect(second.status == 0 && second.stderr.contains("layer code: unchanged since it was last built"), "\(second.stderr)")
        #expect(second.lastLine == first.lastLine)

        // Same size, mtime set back: only the change time tells, and it does.
        let edited = context + "/src/f7.txt"
        let before = try FileManager.default.attributesOfItem(atPath: edited)[.modificationDate] as! Date
        write("FILE 7\n", to: edited)
        try FileManager.default.setAttributes([.modificationDate: before], ofItemAtPath: edited)
        sleep(3)  // out of the racy window, so the change time alone must reveal the edit
        let third = try imgbuild(["build", context, "--store", store, "--version", "1.0.1"], environment: cache)
        #expect(third.status == 0 && !third.stderr.contains("unchanged since"), "\(third.stderr)")
        #expect(third.lastLine != first.lastLine)
        let fresh = try imgbuild(["build", context, "--store", makeTemporaryDirectory("cache-store"), "--version", "1.0.1"],
                                 environment: ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")])
        #expect(fresh.lastLine == third.lastLine, "the cache never changes what is built")

        // The record names a blob of another store: that store builds the layer itself.
        sleep(3)
        let other = makeTemporaryDirectory("cache-store")
        _ = try imgbuild(["build", context, "--store", store, "--version", "1.0.2"], environment: cache)
        let elsewhere = try imgbuild(["build", context, "--store", other, "--version", "1.0.2"], environment: cache)
        #expect(elsewhere.status == 0 && !elsewhere.stderr.contains("unchanged since"), "\(elsewhere.stderr)")
        #expect(try imgbuild(["fsck", "--store", other]).status == 0)
    }

    /// What the rebuild would have built had it walked the context: the same image from a fresh cache.
    func freshBuild(_ context: String, version: String) throws -> String {
        try imgbuild(["build", context, "--store", makeTemporaryDirectory("cache-store"), "--version", version],
                     environment: ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]).lastLine
    }

    @Test("a rebuild that trusts the context's snapshot sees a file added, removed or renamed in a folder whose other files did not change")
    func snapshotSeesFolderChanges() throws {
        let context = makeTemporaryDirectory("snapshot-context")
        for folder in 0..<3 {
            for index in 0..<40 { write("file \(folder)/\(index)\n", to: context + "/src/d\(folder)/f\(index).txt") }
        }
        write("name: snapped\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\ncode:\n  - copy: src/d0/f0.txt\n    to: /code/\n", to: context + "/Imagefile")
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cache = ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]
        let first = try imgbuild(["build", context, "--store", store], environment: cache)
        #expect(first.status == 0, "\(first.stderr)")
        let snapshots = try FileManager.default.contentsOfDirectory(atPath: cache["IMGBUILD_CACHE"]! + "/contexts")
        #expect(snapshots.count == 2, "one snapshot per context section: \(snapshots)")
        let second = try imgbuild(["build", context, "--store", store], environment: cache)
        #expect(second.lastLine == first.lastLine && second.stderr.contains("layer runtime: unchanged since it was last built")
                && second.stderr.contains("layer code: unchanged since it was last built"), "\(second.stderr)")

        let changes: [(String, () throws -> Void)] = [
            ("a file added", { write("new\n", to: context + "/src/d1/new.txt") }),
            ("a file removed", { try FileManager.default.removeItem(atPath: context + "/src/d2/f3.txt") }),
            ("a file renamed", { try FileManager.default.moveItem(atPath: context + "/src/d1/f5.txt", toPath: context + "/src/d1/f5.text") }),
            ("the single file copied, rewritten with the same size", { write("FILE 0/0\n", to: context + "/src/d0/f0.txt") }),
        ]
        var previous = first.lastLine
        for (index, (change, apply)) in changes.enumerated() {
            try apply()
            sleep(3)  // out of the racy window: only the snapshot's stat data can tell
            let version = "1.0.\(index + 1)"
            let rebuilt = try imgbuild(["build", context, "--store", store, "--version", version], environment: cache)
            #expect(rebuilt.status == 0 && rebuilt.lastLine != previous, "\(change): \(rebuilt.stderr)")
            #expect(rebuilt.lastLine == (try freshBuild(context, version: version)), "\(change): the rebuild differs from a build without a cache")
            previous = rebuilt.lastLine
        }
    }

    @Test("a large section is presumed unchanged while its snapshot is checked; when it did change, the image is assembled again from a walk")
    func presumedSectionChanged() throws {
        let context = makeTemporaryDirectory("presumed-context")
        // Enough files that the section's snapshot is checked in the background (Builder.presumptionThreshold).
        for folder in 0..<25 {
            for index in 0..<120 { write("file \(folder)/\(index)\n", to: context + "/src/d\(folder)/f\(index).txt") }
        }
        write("code\n", to: context + "/code/main.js")
        write("name: presumed\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\ncode:\n  - copy: code/\n    to: /code/\n", to: context + "/Imagefile")
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cache = ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]
        let first = try imgbuild(["build", context, "--store", store], environment: cache)
        #expect(first.status == 0, "\(first.stderr)")
        let snapshot = try FileManager.default.contentsOfDirectory(atPath: cache["IMGBUILD_CACHE"]! + "/contexts")
            .map { try FileManager.default.attributesOfItem(atPath: cache["IMGBUILD_CACHE"]! + "/contexts/" + $0)[.size] as! Int }.max() ?? 0
        #expect(snapshot > 128 << 10, "the runtime section's snapshot is \(snapshot) bytes: too small to be checked in the background")
        let second = try imgbuild(["build", context, "--store", store], environment: cache)
        #expect(second.lastLine == first.lastLine && second.stderr.contains("layer runtime: unchanged since it was last built"), "\(second.stderr)")

        // One file deep in the large section, edited to the same size with its mtime set back; and the code too.
        let edited = context + "/src/d24/f119.txt"
        let before = try FileManager.default.attributesOfItem(atPath: edited)[.modificationDate] as! Date
        write("FILE 24/119\n", to: edited)
        try FileManager.default.setAttributes([.modificationDate: before], ofItemAtPath: edited)
        write("CODE\n", to: context + "/code/main.js")
        sleep(3)
        let third = try imgbuild(["build", context, "--store", store, "--version", "1.0.1"], environment: cache)
        #expect(third.status == 0 && third.lastLine != first.lastLine, "\(third.stderr)")
        #expect(!third.stderr.contains("layer runtime: unchanged"), "progress told of a presumption that failed: \(third.stderr)")
        #expect(third.lastLine == (try freshBuild(context, version: "1.0.1")), "the rebuild differs from a build without a cache")
        #expect(try imgbuild(["fsck", "--store", store]).status == 0)

        // Only the large section changed.
        write("file 24/119\n", to: edited)
        sleep(3)
        let fourth = try imgbuild(["build", context, "--store", store, "--version", "1.0.2"], environment: cache)
        #expect(fourth.status == 0 && fourth.stderr.contains("layer code: unchanged since it was last built"), "\(fourth.stderr)")
        #expect(fourth.lastLine == (try freshBuild(context, version: "1.0.2")), "the rebuild differs from a build without a cache")
    }

    @Test("a section keeps one snapshot whatever the build's settings: a new SOURCE_DATE_EPOCH per build does not grow the cache")
    func oneSnapshotPerSection() throws {
        let context = makeTemporaryDirectory("epoch-context")
        for index in 0..<20 { write("file \(index)\n", to: context + "/src/f\(index).txt") }
        write("name: epochs\nversion: 1.0.0\ncode:\n  - copy: src/\n    to: /app/\n", to: context + "/Imagefile")
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cacheFolder = makeTemporaryDirectory("cache")
        var digests: Set<String> = []
        for epoch in 1...4 {
            for compression in ["gzip", "zstd"] {
                let built = try imgbuild(["build", context, "--store", store, "--version", "1.\(epoch).0-\(compression)", "--compression", compression],
                                         environment: ["IMGBUILD_CACHE": cacheFolder, "SOURCE_DATE_EPOCH": "\(epoch)"])
                #expect(built.status == 0, "\(built.stderr)")
                digests.insert(built.lastLine)
                let again = try imgbuild(["build", context, "--store", store, "--version", "1.\(epoch).0-\(compression)", "--compression", compression],
                                         environment: ["IMGBUILD_CACHE": cacheFolder, "SOURCE_DATE_EPOCH": "\(epoch)"])
                #expect(again.lastLine == built.lastLine && again.stderr.contains("layer code: unchanged since it was last built"), "\(again.stderr)")
            }
        }
        #expect(digests.count == 8, "every epoch and compression gives its own image")
        #expect(try FileManager.default.contentsOfDirectory(atPath: cacheFolder + "/contexts").count == 1)
    }

    @Test("a snapshot record copied or renamed to another section's name is no record: the rebuild walks")
    func recordTiedToItsKey() throws {
        let context = makeTemporaryDirectory("swap-context")
        for index in 0..<10 { write("runtime \(index)\n", to: context + "/lib/r\(index).txt") }
        for index in 0..<3 { write("code \(index)\n", to: context + "/www/c\(index).txt") }
        write("name: swapped\nversion: 1.0.0\nruntime:\n  - copy: lib/\n    to: /lib/\ncode:\n  - copy: www/\n    to: /www/\n", to: context + "/Imagefile")
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cacheFolder = makeTemporaryDirectory("cache")
        let first = try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cacheFolder])
        #expect(first.status == 0, "\(first.stderr)")
        let records = try FileManager.default.contentsOfDirectory(atPath: cacheFolder + "/contexts").map { cacheFolder + "/contexts/" + $0 }
        #expect(records.count == 2)
        guard records.count == 2 else { return }
        try FileManager.default.moveItem(atPath: records[0], toPath: records[0] + ".swap")
        try FileManager.default.moveItem(atPath: records[1], toPath: records[0])
        try FileManager.default.moveItem(atPath: records[0] + ".swap", toPath: records[1])
        let again = try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cacheFolder])
        #expect(again.status == 0 && again.lastLine == first.lastLine, "\(again.stderr)")
    }

    @Test("provenance names exactly the files the image holds, even when one is added while the build tags")
    func provenanceMatchesImage() throws {
        let context = makeTemporaryDirectory("prov-race-context")
        for index in 0..<5 { write("file \(index)\n", to: context + "/www/f\(index).txt") }
        write("name: race\nversion: 1.0.0\ncode:\n  - copy: www/\n    to: /www/\n", to: context + "/Imagefile")
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cache = ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]
        _ = try imgbuild(["build", context, "--store", store, "--version", "0.9.0"], environment: cache)
        // The tag (a link(2)) is held up for 3 s by strace; a file appears meanwhile.
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        build.arguments = ["-f", "-o", "/dev/null", "-e", "trace=link", "-e", "inject=link:delay_exit=3000000:when=1",
                           imgbuildBinary, "build", context, "--store", store, "--provenance", "--quiet"]
        build.environment = ProcessInfo.processInfo.environment.merging(cache) { $1 }
        let output = Pipe()
        build.standardOutput = output
        build.standardError = FileHandle.nullDevice
        try build.run()
        Thread.sleep(forTimeInterval: 1.5)
        write("late\n", to: context + "/www/late.txt")
        let digest = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").last.map(String.init) ?? ""
        build.waitUntilExit()
        #expect(build.terminationStatus == 0 && digest.hasPrefix("sha256:"))

        let layers = try layerDigests(store: store, manifest: digest)
        let inImage = try run("/bin/sh", ["-c", layers.map { "tar -tzf \(store)/blobs/sha256/\($0.dropFirst(7))" }.joined(separator: "; ")])
            .stdout.split(separator: "\n").filter { !$0.hasSuffix("/") }.map { "file:" + $0 }
        let referrer = try StoredReferrer(store: store, repository: "race", subject: digest, artifactType: "application/vnd.in-toto+json")
        let statement = try JSONSerialization.jsonObject(with: referrer.payload) as? [String: Any]
        let definition = (statement?["predicate"] as? [String: Any])?["buildDefinition"] as? [String: Any]
        let named = (definition?["resolvedDependencies"] as? [[String: Any]] ?? []).compactMap { $0["uri"] as? String }
            .filter { $0 != "file:Imagefile" }
        #expect(Set(named) == Set(inImage), "provenance names \(named.sorted()), the image holds \(inImage.sorted())")
    }
}

extension LayerCacheTests {
    @Test("exclude lists that differ only in where a NUL falls are different sections")
    func excludesWithNUL() throws {
        let context = makeTemporaryDirectory("nul-context")
        for name in ["a", "b", "c"] { write("\(name)\n", to: context + "/d/" + name) }
        func imagefile(_ excludes: String) { write("name: nul\nversion: 1.0.0\nruntime:\n  - copy: d\n    to: /app/\n    exclude: \(excludes)\n", to: context + "/Imagefile") }
        imagefile(#"["a", "b"]"#)
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cache = ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]
        #expect(try imgbuild(["build", context, "--store", store, "--version", "1.0.1"], environment: cache).status == 0)
        imagefile(#"["a\0b"]"#)
        let rebuilt = try imgbuild(["build", context, "--store", store, "--version", "1.0.2"], environment: cache)
        #expect(try rebuilt.status == 0 && rebuilt.lastLine == freshBuild(context, version: "1.0.2"), "\(rebuilt.stderr)")
    }

    @Test("a file whose mtime lies years ahead is cached like any other")
    func futureModificationTime() throws {
        let context = makeTemporaryDirectory("future-context")
        for index in 0..<5 { write("file \(index)\n", to: context + "/www/f\(index).txt") }
        #expect(try run("/usr/bin/touch", ["-d", "+10 years", context + "/www/f3.txt"]).status == 0)
        write("name: future\nversion: 1.0.0\ncode:\n  - copy: www/\n    to: /www/\n", to: context + "/Imagefile")
        sleep(3)
        let store = makeTemporaryDirectory("cache-store")
        let cache = ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]
        #expect(try imgbuild(["build", context, "--store", store], environment: cache).status == 0)
        let again = try imgbuild(["build", context, "--store", store], environment: cache)
        #expect(again.stderr.contains("layer code: unchanged since it was last built"), "\(again.stderr)")
    }
}

/// Who may read a file decides what a build takes, so a snapshot taken by one reader does not vouch for
/// another (root only: setpriv changes the user and groups).
@Suite("Layer cache: readers", .mayBlock, .enabled(if: getuid() == 0, "setpriv needs root, as CI has"))
struct LayerCacheReaderTests {
    @Test("a rebuild by a reader that lost the group that could read a file fails as a fresh build does")
    func supplementaryGroups() throws {
        let root = makeTemporaryDirectory("reader")
        #expect(chmod(root, 0o777) == 0)
        let context = root + "/context"
        for index in 0..<5 { write("file \(index)\n", to: context + "/www/f\(index).txt") }
        write("group only\n", to: context + "/www/secret.txt")
        #expect(chown(context + "/www/secret.txt", 0, 2000) == 0 && chmod(context + "/www/secret.txt", 0o640) == 0)
        write("name: readers\nversion: 1.0.0\ncode:\n  - copy: www/\n    to: /www/\n", to: context + "/Imagefile")
        sleep(3)
        func build(groups: [String]) throws -> ProcessResult {
            try run("/usr/bin/setpriv", ["--reuid=1000", "--regid=1000"] + groups + [
                "/usr/bin/env", "IMGBUILD_CACHE=\(root)/cache", "HOME=\(root)", imgbuildBinary, "build", context, "--store", root + "/store"])
        }
        let member = try build(groups: ["--groups=2000"])
        #expect(member.status == 0, "\(member.stderr)")
        let again = try build(groups: ["--groups=2000"])
        #expect(again.stderr.contains("unchanged since it was last built"), "\(again.stderr)")
        let outsider = try build(groups: ["--clear-groups"])
        #expect(outsider.status != 0 && outsider.stderr.contains("secret.txt") && outsider.stderr.contains("Permission denied"), "\(outsider.stderr)")
    }

    /// A context whose only unusual file is `secret`, mode 0600, owned by an id nobody here maps.
    func contextWithStrangersFile(_ name: String) throws -> String {
        let root = makeTemporaryDirectory(name)
        #expect(chmod(root, 0o777) == 0)
        let context = root + "/context"
        for index in 0..<5 { write("file \(index)\n", to: context + "/www/f\(index).txt") }
        write("a stranger's\n", to: context + "/www/secret")
        #expect(chown(context + "/www/secret", 4321, 4321) == 0 && chmod(context + "/www/secret", 0o600) == 0)
        write("name: strangers\nversion: 1.0.0\ncode:\n  - copy: www/\n    to: /www/\n", to: context + "/Imagefile")
        sleep(3)
        return root
    }

    @Test("root in a user namespace of its own, which cannot read a stranger's file, does not get the host root's snapshot")
    func userNamespace() throws {
        let root = try contextWithStrangersFile("userns")
        let environment = ["IMGBUILD_CACHE": root + "/cache"]
        let host = try imgbuild(["build", root + "/context", "--store", root + "/store"], environment: environment)
        #expect(host.status == 0, "\(host.stderr)")
        // Root in the namespace gets every capability; it is given only those this process has, so that
        // ids and capabilities are the same on both sides and only the namespace differs.
        let names = ["chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
                     "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
                     "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
                     "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
                     "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
                     "checkpoint_restore"]
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let effective = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? 0
        let missing = names.indices.filter { effective & (1 << UInt64($0)) == 0 }.map { "-" + names[$0] }
        let drop = missing.isEmpty ? [] : ["/usr/bin/setpriv", "--bounding-set", missing.joined(separator: ",")]
        let namespaced = try run("/usr/bin/unshare", ["-U", "-r"] + drop + ["/usr/bin/env", "IMGBUILD_CACHE=\(root)/cache",
                                                      imgbuildBinary, "build", root + "/context", "--store", root + "/store", "--version", "1.0.1"])
        #expect(namespaced.status != 0 && namespaced.stderr.contains("secret") && namespaced.stderr.contains("Permission denied"), "\(namespaced.stderr)")
    }

    @Test("readability is judged as the effective user that opens the file, not the real one")
    func effectiveUser() throws {
        let root = try contextWithStrangersFile("ruid")
        let built = try run("/usr/bin/setpriv", ["--ruid=65534", "/usr/bin/env", "IMGBUILD_CACHE=\(root)/cache",
                                                 imgbuildBinary, "build", root + "/context", "--store", root + "/store"])
        #expect(built.status == 0, "root with another real user id can open the file, so the build takes it: \(built.stderr)")
    }
}

/// On a file system whose timestamps count whole seconds, a folder can gain a name after the walk listed
/// it without its modification time moving (root only: the file system is a loop-mounted ext4 image).
@Suite("Layer cache: coarse timestamps", .mayBlock, .enabled(if: getuid() == 0, "a loop mount needs root, as CI has"))
struct CoarseTimestampTests {
    @Test("a name added to a folder in the second it was listed is seen by the next rebuild, however long the build took")
    func nameAddedInTheTickOfTheListing() throws {
        let root = makeTemporaryDirectory("coarse")
        let mount = root + "/mnt"
        // ext4 with 128-byte inodes keeps no sub-second timestamps.
        #expect(try run("/bin/sh", ["-c", "truncate -s 64M \(root)/fs.img && /usr/sbin/mkfs.ext4 -q -I 128 \(root)/fs.img && mkdir \(mount) && mount -o loop \(root)/fs.img \(mount)"]).status == 0)
        defer { _ = try? run("/bin/umount", [mount]) }
        let context = mount + "/context"
        for index in 0..<5 { write("file \(index)\n", to: context + "/www/f\(index).txt") }
        write("old\n", to: context + "/www/old.txt")
        write("name: coarse\nversion: 1.0.0\ncode:\n  - copy: www/\n    to: /www/\n", to: context + "/Imagefile")
        sleep(3)
        let cache = ["IMGBUILD_CACHE": root + "/cache"]

        // Just after a second begins, the folder changes and the build walks it; in the same second a name
        // is added. The build is then held up for 3 s (its first rename(2), the layer's commit), so the
        // snapshot is kept long after the second has passed.
        let now = Date().timeIntervalSince1970
        Thread.sleep(forTimeInterval: 1 - now.truncatingRemainder(dividingBy: 1) + 0.02)
        try FileManager.default.removeItem(atPath: context + "/www/old.txt")
        let build = Process()
        build.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        build.arguments = ["-f", "-o", "/dev/null", "-e", "trace=rename", "-e", "inject=rename:delay_exit=3000000:when=1",
                           imgbuildBinary, "build", context, "--store", root + "/store", "--quiet"]
        build.environment = ProcessInfo.processInfo.environment.merging(cache) { $1 }
        build.standardOutput = FileHandle.nullDevice
        build.standardError = FileHandle.nullDevice
        try build.run()
        Thread.sleep(forTimeInterval: 0.5)
        write("late\n", to: context + "/www/late.txt")
        build.waitUntilExit()
        #expect(build.terminationStatus == 0)

        sleep(3)
        let rebuilt = try imgbuild(["build", context, "--store", root + "/store", "--version", "1.0.1"], environment: cache)
        let fresh = try imgbuild(["build", context, "--store", makeTemporaryDirectory("coarse-store"), "--version", "1.0.1"],
                                 environment: ["IMGBUILD_CACHE": makeTemporaryDirectory("cache")])
        #expect(rebuilt.status == 0 && rebuilt.lastLine == fresh.lastLine, "the rebuild left www/late.txt out: \(rebuilt.stderr)")
    }
}
