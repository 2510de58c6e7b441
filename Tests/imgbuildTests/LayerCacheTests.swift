import CommandLineTesting
import Foundation
import Testing

@Suite("Layer cache (stat cache)")
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
}
