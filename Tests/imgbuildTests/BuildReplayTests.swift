import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// A no-op build is remembered by its command and answered again without building while everything it
/// read stats the same (BuildReplay). Each test removes the layer cache after the record is made: a
/// build that really runs must then write its layer again and says so ("N entries, ..."), while a replay
/// repeats the recorded "unchanged since it was last built". That is how a test tells them apart.
@Suite("Build replay (no-op rebuilds)", .mayBlock)
struct BuildReplayTests {
    /// A context, store and cache where `command` has been built twice, the second time as a no-op that
    /// left its record; the layer cache is then removed.
    struct Recorded {
        var context: String
        var store: String
        var cache: String
        var command: [String]
        var environment: [String: String]
        /// What the recorded no-op printed.
        var noOp: ProcessResult

        var replays: String { cache + "/replays" }

        /// The command again (within 120 s: a replay must never wait on anything), with the layer cache
        /// removed first, so that a build that runs says so.
        func again(_ extraEnvironment: [String: String] = [:], directory: String? = nil) throws -> ProcessResult {
            try? FileManager.default.removeItem(atPath: cache + "/layers")
            return try run("/usr/bin/timeout", ["-k", "5", "120", imgbuildBinary] + command, environment: environment.merging(extraEnvironment) { $1 }, directory: directory)
        }

        func replayed(_ result: ProcessResult) -> Bool { result.stderr.contains("unchanged since it was last built") }
    }

    static func recorded(_ name: String, quiet: Bool = false) throws -> Recorded {
        let context = makeTemporaryDirectory("replay-context")
        for folder in 0..<3 {
            for index in 0..<20 { write("file \(folder)/\(index)\n", to: context + "/src/d\(folder)/f\(index).txt") }
        }
        write("name: \(name)\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\n", to: context + "/Imagefile")
        let store = makeTemporaryDirectory("replay-store")
        let cache = makeTemporaryDirectory("replay-cache")
        let environment = ["IMGBUILD_CACHE": cache, "SOURCE_DATE_EPOCH": ""]
        let command = ["build", context, "--store", store] + (quiet ? ["-q"] : [])
        // Files changed within 2 s of a build are racily clean: nothing is recorded while any is.
        sleep(3)
        let cold = try run(imgbuildBinary, command, environment: environment)
        #expect(cold.status == 0, "\(cold.stderr)")
        sleep(3)
        let noOp = try run(imgbuildBinary, command, environment: environment)
        #expect(noOp.status == 0 && noOp.lastLine == cold.lastLine, "\(noOp.stderr)")
        #expect(quiet || noOp.stderr.contains("unchanged since it was last built"), "\(noOp.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: cache + "/replays").count) == 1, "the no-op left no record")
        try FileManager.default.removeItem(atPath: cache + "/layers")
        return Recorded(context: context, store: store, cache: cache, command: command, environment: environment, noOp: noOp)
    }

    @Test("a repeated no-op prints exactly what the no-op printed, without building (and the store stays whole)")
    func replaysNoOp() throws {
        let recorded = try Self.recorded("replayed")
        let replay = try recorded.again()
        #expect(replay.status == 0)
        #expect(replay.stdout == recorded.noOp.stdout && replay.stderr == recorded.noOp.stderr,
                "replay:\n\(replay.stderr)\(replay.stdout)\nno-op:\n\(recorded.noOp.stderr)\(recorded.noOp.stdout)")
        #expect(try imgbuild(["fsck", "--store", recorded.store]).status == 0)

        let quiet = try Self.recorded("replayed-quietly", quiet: true)
        let quietReplay = try quiet.again()
        #expect(quietReplay.status == 0 && quietReplay.stdout == quiet.noOp.stdout && quietReplay.stderr.isEmpty,
                "\(quietReplay.stderr)\(quietReplay.stdout)")
    }

    /// A change to something the build read, made after the record: each must run the build.
    static var changes: [(String, (Recorded) throws -> Void)] { [
        ("a file edited to the same size with its mtime set back", { recorded in
            let path = recorded.context + "/src/d1/f7.txt"
            let before = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as! Date
            write("FILE 1/7\n", to: path)
            try FileManager.default.setAttributes([.modificationDate: before], ofItemAtPath: path)
        }),
        ("a file added to a folder whose other files did not change", { write("new\n", to: $0.context + "/src/d2/new.txt") }),
        ("the Imagefile rewritten with the same bytes", { recorded in
            let path = recorded.context + "/Imagefile"
            try Data(contentsOf: URL(fileURLWithPath: path)).write(to: URL(fileURLWithPath: path))
        }),
        ("the version's tag removed", { recorded in
            try FileManager.default.removeItem(atPath: recorded.store + "/repositories/changed/tags/1.0.0")
        }),
        ("a layer blob removed from the store", { recorded in
            let layers = try layerDigests(store: recorded.store, manifest: recorded.noOp.lastLine)
            try FileManager.default.removeItem(atPath: recorded.store + "/blobs/sha256/" + layers[0].dropFirst(7))
        }),
        ("the section's snapshot removed from the cache", { try FileManager.default.removeItem(atPath: $0.cache + "/contexts") }),
        ("the section's snapshot replaced by a FIFO (nothing may wait on it)", { recorded in
            let folder = recorded.cache + "/contexts"
            let file = folder + "/" + (try FileManager.default.contentsOfDirectory(atPath: folder)[0])
            try FileManager.default.removeItem(atPath: file)
            #expect(mkfifo(file, 0o644) == 0)
        }),
        ("the record cut short", { recorded in
            let file = recorded.replays + "/" + (try FileManager.default.contentsOfDirectory(atPath: recorded.replays)[0])
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: file))
        }),
        ("the record replaced by a FIFO (nothing may wait on it)", { recorded in
            let file = recorded.replays + "/" + (try FileManager.default.contentsOfDirectory(atPath: recorded.replays)[0])
            try FileManager.default.removeItem(atPath: file)
            #expect(mkfifo(file, 0o644) == 0)
        }),
        ("the record overwritten with garbage of the same length", { recorded in
            let file = recorded.replays + "/" + (try FileManager.default.contentsOfDirectory(atPath: recorded.replays)[0])
            let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
            try Data(bytes.enumerated().map { $0.offset < 24 ? $0.element : UInt8(truncatingIfNeeded: $0.offset * 131) })
                .write(to: URL(fileURLWithPath: file))
        }),
    ] }

    @Test("anything the no-op read that changes afterwards runs the build, which then finds what changed",
          arguments: changes.indices)
    func changeRunsTheBuild(_ index: Int) throws {
        let (change, apply) = Self.changes[index]
        let recorded = try Self.recorded("changed")
        try apply(recorded)
        sleep(3)  // out of the racy window: only stat data and contents can tell
        let result = try recorded.again()
        #expect(!recorded.replayed(result), "\(change): replayed\n\(result.stderr)")
        #expect(result.stderr.contains(" entries, "), "\(change): the build did not write its layer\n\(result.stderr)")
        if result.status == 0 {
            #expect(try imgbuild(["fsck", "--store", recorded.store]).status == 0, "\(change)")
        } else {
            // The context changed under an immutable version: refused, as without a record.
            #expect(result.stderr.contains("versions are immutable"), "\(change): \(result.stderr)")
        }
    }

    @Test("the record is the command's: another environment value, another working folder or another command's record is a miss")
    func recordIsTheCommands() throws {
        let recorded = try Self.recorded("keyed")
        let epoch = try recorded.again(["SOURCE_DATE_EPOCH": "86400"])
        #expect(!recorded.replayed(epoch) && epoch.lastLine != recorded.noOp.lastLine, "\(epoch.stderr)")
        let spool = try recorded.again(["TMPDIR": makeTemporaryDirectory("replay-tmp")])
        #expect(!recorded.replayed(spool) && spool.status == 0 && spool.lastLine == recorded.noOp.lastLine, "\(spool.stderr)")

        let elsewhere = try recorded.again(directory: makeTemporaryDirectory("replay-cwd"))
        #expect(!recorded.replayed(elsewhere) && elsewhere.status == 0 && elsewhere.lastLine == recorded.noOp.lastLine, "\(elsewhere.stderr)")

        // The quiet command's record put under the other command's name: its command does not match.
        let quiet = try Self.recorded("keyed-quietly", quiet: true)
        let records = try FileManager.default.contentsOfDirectory(atPath: quiet.replays)
        let loud = try Self.recorded("keyed-loudly")
        let loudRecord = loud.replays + "/" + (try FileManager.default.contentsOfDirectory(atPath: loud.replays)[0])
        try FileManager.default.removeItem(atPath: loudRecord)
        try FileManager.default.copyItem(atPath: quiet.replays + "/" + records[0], toPath: loudRecord)
        let swapped = try loud.again()
        #expect(swapped.status == 0 && !loud.replayed(swapped) && swapped.stderr.contains(" entries, "), "\(swapped.stderr)")
    }

    @Test("a context reached through a symlink that is switched to another folder with the same Imagefile is another build")
    func switchedSymlink() throws {
        let root = makeTemporaryDirectory("replay-links")
        for (folder, text) in [("a", "first\n"), ("b", "other\n")] { write(text, to: root + "/\(folder)/src/file.txt") }
        write("name: linked\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\n", to: root + "/a/Imagefile")
        try FileManager.default.createSymbolicLink(atPath: root + "/b/Imagefile", withDestinationPath: "../a/Imagefile")
        try FileManager.default.createSymbolicLink(atPath: root + "/current", withDestinationPath: "a")
        let store = makeTemporaryDirectory("replay-store")
        let environment = ["IMGBUILD_CACHE": makeTemporaryDirectory("replay-cache")]
        sleep(3)
        let cold = try imgbuild(["build", "current", "--store", store], environment: environment, directory: root)
        let noOp = try imgbuild(["build", "current", "--store", store], environment: environment, directory: root)
        #expect(cold.status == 0 && noOp.status == 0 && noOp.lastLine == cold.lastLine, "\(cold.stderr)\(noOp.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: environment["IMGBUILD_CACHE"]! + "/replays").count) == 1, "the no-op left no record")
        try FileManager.default.removeItem(atPath: root + "/current")
        try FileManager.default.createSymbolicLink(atPath: root + "/current", withDestinationPath: "b")
        try FileManager.default.removeItem(atPath: environment["IMGBUILD_CACHE"]! + "/layers")
        let switched = try imgbuild(["build", "current", "--store", store], environment: environment, directory: root)
        #expect(!switched.stderr.contains("unchanged since it was last built"), "replayed through a switched link: \(switched.stderr)\(switched.stdout)")
        #expect(switched.status != 0 && switched.stderr.contains("versions are immutable"), "the switched context was not read: \(switched.stderr)\(switched.stdout)")

        // The store reached through a link, switched to an empty folder: a build makes a store there.
        try FileManager.default.removeItem(atPath: root + "/current")
        try FileManager.default.createSymbolicLink(atPath: root + "/current", withDestinationPath: "a")
        try FileManager.default.createSymbolicLink(atPath: root + "/store", withDestinationPath: store)
        sleep(3)
        for _ in 0..<2 { #expect(try imgbuild(["build", "current", "--store", "store"], environment: environment, directory: root).status == 0) }
        try FileManager.default.removeItem(atPath: root + "/store")
        try FileManager.default.createSymbolicLink(atPath: root + "/store", withDestinationPath: makeTemporaryDirectory("replay-other-store"))
        let otherStore = try imgbuild(["build", "current", "--store", "store"], environment: environment, directory: root)
        #expect(otherStore.status == 0 && otherStore.stderr.contains("tagged linked:1.0.0"), "replayed into a switched store: \(otherStore.stderr)")
    }

    @Test("a user at its task limit still gets its answer: the check runs its share on the calling thread (it waited for ever)")
    func taskLimit() throws {
        let context = makeTemporaryDirectory("replay-context")
        for folder in 0..<30 {
            for index in 0..<100 { write("\(folder)/\(index)\n", to: context + "/src/d\(folder)/f\(index).txt") }
        }
        write("name: limited\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\n", to: context + "/Imagefile")
        // Folders the other user can write in: the store is made beside its path, the cache inside.
        let writable = makeTemporaryDirectory("replay-writable")
        #expect(chmod(writable, 0o777) == 0)
        let store = writable + "/store", cache = writable + "/cache"
        let asNobody = ["/usr/bin/setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        let command = [imgbuildBinary, "build", context, "--store", store, "-q"]
        let environment = ["IMGBUILD_CACHE": cache, "SOURCE_DATE_EPOCH": "", "HOME": "/nonexistent"]
        sleep(3)
        let cold = try run(asNobody[0], Array(asNobody.dropFirst()) + command, environment: environment)
        #expect(cold.status == 0, "\(cold.stderr)")
        sleep(3)
        #expect(try run(asNobody[0], Array(asNobody.dropFirst()) + command, environment: environment).status == 0)
        // Four tasks for the user: the check's extra threads cannot all be made.
        let limited = try run(asNobody[0], Array(asNobody.dropFirst()) + ["/usr/bin/prlimit", "--nproc=4", "/usr/bin/timeout", "-k", "5", "60"] + command,
                              environment: environment)
        #expect(limited.status == 0 && limited.lastLine == cold.lastLine, "status \(limited.status) (124: it hung): \(limited.stderr)")
    }

    @Test("a replay writes the digest even when its progress cannot be written, and fails when the digest cannot")
    func closedOutputs() throws {
        let recorded = try Self.recorded("outputs")
        let script = "\"$0\" \"$@\""
        let noProgress = try run("/bin/sh", ["-c", script + " 2>/dev/full", imgbuildBinary] + recorded.command, environment: recorded.environment)
        #expect(noProgress.status == 0 && noProgress.stdout == recorded.noOp.stdout, "\(noProgress.status) \(noProgress.stdout)")
        let noDigest = try run("/bin/sh", ["-c", script + " >/dev/full", imgbuildBinary] + recorded.command, environment: recorded.environment)
        #expect(noDigest.status == 1 && noDigest.stderr.contains("cannot write the digest"), "\(noDigest.status) \(noDigest.stderr)")
    }

    @Test("while gc holds the store, or a download a build would check is gone, the build runs")
    func storeLeaseAndDownloads() throws {
        let recorded = try Self.recorded("leased")
        // gc's exclusive lock on the lease file: a build waits for it; a replay must not answer meanwhile.
        let lock = open(recorded.store + "/gc.lock", O_RDWR)
        #expect(lock >= 0 && flock(lock, LOCK_EX) == 0)
        let release = Thread { sleep(2); close(lock) }
        release.start()
        let during = try recorded.again()
        #expect(!recorded.replayed(during) && during.status == 0 && during.lastLine == recorded.noOp.lastLine, "\(during.stderr)")

        let served = makeTemporaryDirectory("replay-served")
        write("payload\n", to: served + "/data/payload.txt")
        #expect(try run("/bin/tar", ["-C", served, "-cf", served + "/payload.tar", "data"]).status == 0)
        let sha = try run("/usr/bin/sha256sum", [served + "/payload.tar"]).stdout.prefix(64)
        let port = freePort()
        let server = try ExampleTests.FixtureServer(port: port, directory: served)
        defer { server.stop() }
        let context = makeTemporaryDirectory("replay-context")
        write("x\n", to: context + "/src/x.txt")
        write("name: fetched\nversion: 1.0.0\ndependencies:\n  - url: http://127.0.0.1:\(port)/payload.tar\n    sha256: \(sha)\n    to: /opt/\nruntime:\n  - copy: src/\n    to: /app/\n",
              to: context + "/Imagefile")
        let store = makeTemporaryDirectory("replay-store")
        let cache = makeTemporaryDirectory("replay-cache")
        sleep(3)
        for _ in 0..<2 { #expect(try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cache]).status == 0) }
        #expect((try? FileManager.default.contentsOfDirectory(atPath: cache + "/replays").count) == 1, "the no-op left no record")
        server.stop()
        try FileManager.default.removeItem(atPath: cache + "/downloads")
        let offline = try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cache])
        #expect(offline.status != 0 && offline.stderr.contains("127.0.0.1"), "a download the build needs is gone, yet: \(offline.stderr)\(offline.stdout)")
    }

    @Test("a no-op right after its version was first tagged is recorded: the store's folders are no input")
    func recordedRightAfterTagging() throws {
        let context = makeTemporaryDirectory("replay-context")
        for index in 0..<30 { write("file \(index)\n", to: context + "/src/f\(index).txt") }
        write("name: tagged\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\n", to: context + "/Imagefile")
        let store = makeTemporaryDirectory("replay-store")
        let cache = makeTemporaryDirectory("replay-cache")
        sleep(3)
        let cold = try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cache])
        let noOp = try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cache])
        #expect(cold.status == 0 && noOp.status == 0 && noOp.lastLine == cold.lastLine, "\(cold.stderr)\(noOp.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: cache + "/replays").count) == 1, "the no-op left no record")
    }

    @Test("a no-op right after the Imagefile was written leaves no record (it is racily clean)")
    func racyNoOpIsNotRecorded() throws {
        let context = makeTemporaryDirectory("replay-context")
        write("x\n", to: context + "/src/x.txt")
        write("name: racy\nversion: 1.0.0\nruntime:\n  - copy: src/\n    to: /app/\n", to: context + "/Imagefile")
        let store = makeTemporaryDirectory("replay-store")
        let cache = makeTemporaryDirectory("replay-cache")
        sleep(3)
        #expect(try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cache]).status == 0)
        sleep(3)
        let imagefile = context + "/Imagefile"
        try Data(contentsOf: URL(fileURLWithPath: imagefile)).write(to: URL(fileURLWithPath: imagefile))
        let noOp = try imgbuild(["build", context, "--store", store], environment: ["IMGBUILD_CACHE": cache])
        #expect(noOp.status == 0 && noOp.stderr.contains("unchanged since it was last built"), "\(noOp.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: cache + "/replays"))?.isEmpty ?? true)
    }

    @Test("libarchive (and what it reads formats with), libcrypto and libseccomp are linked in: the loader binds none of their symbols at start")
    func librariesLinkedIn() throws {
        let result = try run("/usr/bin/readelf", ["--dynamic", "--wide", imgbuildBinary])
        #expect(result.status == 0, "\(result.stderr)")
        let needed = result.stdout.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(!needed.isEmpty, "readelf listed no shared library at all: \(result.stdout.prefix(500))")
        for library in ["libarchive", "libcrypto", "libseccomp", "libxml2", "libnettle", "libicuuc", "liblzma", "libbz2", "liblz4", "libacl"] {
            #expect(!needed.contains { $0.contains(library + ".so") }, "\(library) is loaded at start: \(needed)")
        }
    }
}
