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
}
