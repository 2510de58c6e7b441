import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// A tiny context whose content (and so digest) depends on `seed`.
func makeSmallContext(seed: String, name: String = "src/app", version: String = "0.0.1", bigFileMiB: Int = 0) -> String {
    let context = makeTemporaryDirectory("small")
    write("name: \(name)\nversion: \(version)\nruntime:\n  - copy: data/\n    to: /data/\ncode:\n  - copy: app.txt\n    to: /app.txt\n", to: context + "/Imagefile")
    write("seed \(seed)\n", to: context + "/app.txt")
    if bigFileMiB > 0 {
        try! FileManager.default.createDirectory(atPath: context + "/data", withIntermediateDirectories: true)
        try! TestContext.mixedData(megabytes: bigFileMiB).write(to: URL(fileURLWithPath: context + "/data/big.bin"))
    } else {
        write("data\n", to: context + "/data/small.txt")
    }
    return context
}

@Suite("Immutable tags and store commands", .mayBlock)
struct StoreCommandTests {
    @Test("tag, tags, resolve and images")
    func tagAndRead() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        var digests: [String] = []
        for (index, version) in ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1", "0.9.0"].enumerated() {
            let build = try imgbuild(["build", makeSmallContext(seed: "\(index)"), "--store", store, "--version", version])
            #expect(build.status == 0, "\(build.stderr)")
            digests.append(build.lastLine)
        }
        let tags = try imgbuild(["tags", "src/app", "--store", store])
        #expect(tags.stdout == """
        0.9.0 \(digests[4])
        1.0.0 \(digests[0])
        1.2.0 \(digests[1])
        1.10.0 \(digests[2])
        2.0.0-rc.1 \(digests[3])

        """)
        #expect(try imgbuild(["resolve", "src/app@^1.0.0", "--store", store]).lastLine == digests[2])
        #expect(try imgbuild(["resolve", "src/app@~1.2", "--store", store]).lastLine == digests[1])
        #expect(try imgbuild(["resolve", "src/app@>=1.2.0 <1.10.0", "--store", store]).lastLine == digests[1])
        #expect(try imgbuild(["resolve", "src/app@*", "--store", store]).lastLine == digests[2], "pre-releases are not in * unless asked")
        #expect(try imgbuild(["resolve", "src/app@*", "--include-prerelease", "--store", store]).lastLine == digests[3])
        let none = try imgbuild(["resolve", "src/app@^3.0.0", "--store", store])
        #expect(none.status != 0 && none.stderr.contains("no version of src/app matches '^3.0.0'"))
        let badRange = try imgbuild(["resolve", "src/app@latest", "--store", store])
        #expect(badRange.status != 0 && badRange.stderr.contains("is not a version range"))

        // Tag an existing manifest under another repository, then again (no-op), then with another digest.
        #expect(try imgbuild(["tag", "release/app", "3.0.0", digests[0], "--store", store]).status == 0)
        let again = try imgbuild(["tag", "release/app", "3.0.0", digests[0], "--store", store])
        #expect(again.status == 0 && again.stdout.contains("already points at"))
        let moved = try imgbuild(["tag", "release/app", "3.0.0", digests[1], "--store", store])
        #expect(moved.status != 0)
        #expect(moved.stderr.contains("release/app:3.0.0 already points at \(digests[0])"))
        #expect(moved.stderr.contains("cannot point at \(digests[1])") && moved.stderr.contains("release a new version"))
        #expect(try imgbuild(["resolve", "release/app@3.0.0", "--store", store]).lastLine == digests[0])

        let images = try imgbuild(["images", "--store", store])
        #expect(images.stdout == "release/app 1 3.0.0 \(digests[0])\nsrc/app 5 2.0.0-rc.1 \(digests[3])\n")
    }

    @Test("bad names, versions and digests are refused and write nothing")
    func badTagInput() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", makeSmallContext(seed: "x"), "--store", store])
        let digest = build.lastLine
        let before = snapshot(store)
        let cases: [([String], String)] = [
            (["tag", "app", "latest", digest], "mutable names such as 'latest' do not exist"),
            (["tag", "app", "stable", digest], "mutable names such as 'latest' do not exist"),
            (["tag", "app", "v1.0.0", digest], "drop the leading 'v' (write 1.0.0)"),
            (["tag", "app", "1.0", digest], "is not a semantic version"),
            (["tag", "app", "1.0.0-ü", digest], "may hold only [0-9A-Za-z-]"),
            (["tag", "App!", "1.0.0", digest], "is not a valid repository name"),
            (["tag", "../etc", "1.0.0", digest], "is not a valid repository name"),
            (["tag", "app", "1.0.0", "sha256:1234"], "is not a valid sha256 digest"),
            (["tag", "app", "1.0.0", "sha256:" + String(repeating: "0", count: 64)], "is not in the store"),
            (["tags", "no/such", ], "there is no repository 'no/such'"),
            (["inspect", "src/app:9.9.9"], "src/app:9.9.9 is not in the store"),
        ]
        for (arguments, message) in cases {
            let result = try imgbuild(arguments + ["--store", store])
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        #expect(snapshot(store) == before)
    }

    @Test("a store of another format version is refused by every command and not touched")
    func otherFormat() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        #expect(try imgbuild(["build", makeSmallContext(seed: "fmt"), "--store", store]).status == 0)
        let marker = store + "/imgbuild-store.json"
        chmod(marker, 0o644)
        write(#"{"format":"imgbuild-store","version":2}"#, to: marker)
        let before = snapshot(store)
        for arguments in [["tags", "src/app"], ["fsck"], ["gc"], ["build", makeSmallContext(seed: "fmt2")]] {
            let result = try imgbuild(arguments + ["--store", store])
            #expect(result.status != 0)
            #expect(result.stderr.contains("has format version 2, which this imgbuild cannot read"), "\(arguments): \(result.stderr)")
        }
        #expect(snapshot(store) == before)
    }

    @Test("8 processes race to tag one version with 8 digests: exactly one wins, for ever")
    func tagRace() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        var digests: [String] = []
        for index in 0..<8 {
            let build = try imgbuild(["build", makeSmallContext(seed: "race \(index)"), "--store", store, "--version", "0.0.\(index)"])
            #expect(build.status == 0, "\(build.stderr)")
            digests.append(build.lastLine)
        }
        #expect(Set(digests).count == 8)
        for round in 0..<3 {
            let version = "1.0.\(round)"
            let processes = digests.map { digest -> (Process, Pipe) in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: imgbuildBinary)
                process.arguments = ["tag", "race/app", version, digest, "--store", store]
                let err = Pipe()
                process.standardError = err
                process.standardOutput = FileHandle.nullDevice
                return (process, err)
            }
            for (process, _) in processes { try process.run() }
            var winners: [String] = []
            var losers: [String] = []
            for ((process, err), digest) in zip(processes, digests) {
                let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                if process.terminationStatus == 0 { winners.append(digest) } else { losers.append(message) }
            }
            #expect(winners.count == 1, "round \(round): \(winners.count) winners")
            guard let winner = winners.first else { continue }
            #expect(losers.count == 7)
            for message in losers {
                #expect(message.contains("race/app:\(version) already points at \(winner)") && message.contains("versions are immutable"), "\(message)")
            }
            // Later attempts never move it.
            for digest in digests where digest != winner {
                #expect(try imgbuild(["tag", "race/app", version, digest, "--store", store]).status != 0)
            }
            #expect(try imgbuild(["resolve", "race/app@\(version)", "--store", store]).lastLine == winner)
        }
        #expect(try imgbuild(["fsck", "--store", store]).status == 0)
    }

    @Test("fsck finds a flipped byte in a layer and names the blob and the tags that reach it; it changes nothing")
    func fsckFlippedByte() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let context = makeSmallContext(seed: "fsck")
        let build = try imgbuild(["build", context, "--store", store, "--version", "1.0.0"])
        #expect(try imgbuild(["tag", "other/name", "7.0.0", build.lastLine, "--store", store]).status == 0)
        let clean = try imgbuild(["fsck", "--store", store])
        #expect(clean.status == 0 && clean.stdout.isEmpty, "\(clean.stdout)")
        #expect(clean.stderr.contains("0 problem(s)"))

        let layer = try layerDigests(store: store, manifest: build.lastLine)[0]
        let path = store + "/blobs/sha256/" + layer.dropFirst(7)
        chmod(path, 0o644)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        let before = snapshot(store)

        let dirty = try imgbuild(["fsck", "--store", store])
        #expect(dirty.status == 1)
        #expect(dirty.stdout.contains("blob \(layer) is corrupt"))
        #expect(dirty.stdout.contains("reached by other/name:7.0.0, src/app:1.0.0"), "\(dirty.stdout)")
        #expect(snapshot(store) == before, "fsck changed the store")
    }

    @Test("fsck reports a truncated tag file and a missing blob")
    func fsckTagAndMissing() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let a = try imgbuild(["build", makeSmallContext(seed: "a"), "--store", store, "--version", "1.0.0"])
        let b = try imgbuild(["build", makeSmallContext(seed: "b"), "--store", store, "--version", "2.0.0"])
        let tagPath = store + "/repositories/src/app/tags/1.0.0"
        chmod(tagPath, 0o644)
        try Data("{\"dig".utf8).write(to: URL(fileURLWithPath: tagPath))
        let config = (try readJSON(store: store, digest: b.lastLine)["config"] as! [String: Any])["digest"] as! String
        unlink(store + "/blobs/sha256/" + config.dropFirst(7))
        let result = try imgbuild(["fsck", "--store", store])
        #expect(result.status == 1)
        #expect(result.stdout.contains("the tag src/app:1.0.0 is unreadable"))
        #expect(result.stdout.contains("src/app:2.0.0: its config \(config) is missing"))
        let tags = try imgbuild(["tags", "src/app", "--store", store])
        #expect(tags.status != 0 && tags.stderr.contains("truncated or damaged"))
        // gc refuses to guess what an unreadable tag reaches.
        let gc = try imgbuild(["gc", "--store", store])
        #expect(gc.status != 0 && gc.stderr.contains("gc removed nothing"))
        #expect(FileManager.default.fileExists(atPath: store + "/blobs/sha256/" + a.lastLine.dropFirst(7)))
    }

    @Test("gc keeps every reachable blob and frees the rest")
    func gc() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let context = makeSmallContext(seed: "kept")
        let kept = try imgbuild(["build", context, "--store", store])
        let blobsBefore = Set(try FileManager.default.contentsOfDirectory(atPath: store + "/blobs/sha256"))
        // A rebuild of the same version with other content is refused after its blobs were written:
        // a new code layer, config and manifest that no tag reaches.
        write("changed\n", to: context + "/app.txt")
        #expect(try imgbuild(["build", context, "--store", store]).status != 0)
        let blobsAfter = Set(try FileManager.default.contentsOfDirectory(atPath: store + "/blobs/sha256"))
        let garbage = blobsAfter.subtracting(blobsBefore)
        #expect(garbage.count == 3)
        write("leftover", to: store + "/tmp/blob-999999-dead")

        let result = try imgbuild(["gc", "--store", store])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("removed 3 blob(s)") && result.stdout.contains("removed 1 temporary file(s)"))
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: store + "/blobs/sha256")) == blobsBefore)
        #expect(try imgbuild(["fsck", "--store", store]).status == 0)
        let layout = makeTemporaryDirectory("layout") + "/oci"
        #expect(try imgbuild(["export", "src/app:0.0.1", "oci:" + layout, "--store", store]).lastLine == kept.lastLine)
        // Nothing left to collect.
        #expect(try imgbuild(["gc", "--store", store]).stdout.contains("removed 0 blob(s)"))
    }

    @Test("a store on a read-only file system: reads work, writes fail clearly", .enabled(if: getuid() == 0))
    func readOnlyStore() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", makeSmallContext(seed: "ro"), "--store", store])
        let mountPoint = makeTemporaryDirectory("ro-mount")
        #expect(try run("/bin/mount", ["--bind", store, mountPoint]).status == 0)
        defer { _ = try? run("/bin/umount", [mountPoint]) }
        #expect(try run("/bin/mount", ["-o", "remount,ro,bind", mountPoint]).status == 0)
        let before = snapshot(store)
        #expect(try imgbuild(["tags", "src/app", "--store", mountPoint]).stdout.contains(build.lastLine))
        #expect(try imgbuild(["fsck", "--store", mountPoint]).status == 0)
        let write1 = try imgbuild(["build", makeSmallContext(seed: "ro2"), "--store", mountPoint, "--version", "2.0.0"])
        #expect(write1.status != 0)
        #expect(write1.stderr.contains("cannot write to the store") && write1.stderr.contains("Read-only file system"), "\(write1.stderr)")
        let write2 = try imgbuild(["tag", "src/app", "3.0.0", build.lastLine, "--store", mountPoint])
        #expect(write2.status != 0 && write2.stderr.contains("cannot write to the store"))
        #expect(snapshot(store) == before)
    }
}
