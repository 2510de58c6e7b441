import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// What the build issue must show: the same digest on any machine, and only the changed layer changes.
@Suite("Reproducible builds", .mayBlock)
struct ReproducibilityTests {
    /// Builds the same inputs, made two different ways, into two empty stores under different
    /// environments, and compares the manifest digests.
    func buildTwice(compression: String, includeDeb: Bool, bigFile: Bool, multiPlatform: Bool = false) throws -> (String, String) {
        let archive = try TestContext.makeArchive()
        let first = try TestContext.make(.first, archive: archive, includeDeb: includeDeb, bigFile: bigFile, multiPlatform: multiPlatform)
        let second = try TestContext.make(.second, archive: archive, includeDeb: includeDeb, bigFile: bigFile, multiPlatform: multiPlatform)
        let storeA = makeTemporaryDirectory("store-a") + "/store"
        let storeB = makeTemporaryDirectory("store-b") + "/store"
        let a = try imgbuild(["build", first.directory, "--store", storeA, "--compression", compression, "--zstd-threads", "1"],
                             environment: ["TZ": "UTC", "LANG": "C", "LC_ALL": "C"], umask: "022")
        let b = try imgbuild(["build", second.directory + "/Imagefile", "--store", storeB, "--compression", compression, "--zstd-threads", "3"],
                             environment: ["TZ": "Asia/Kathmandu", "LANG": "de_DE.UTF-8", "LC_ALL": "tr_TR.UTF-8"], umask: "077")
        #expect(a.status == 0, "first build failed: \(a.stderr)")
        #expect(b.status == 0, "second build failed: \(b.stderr)")
        #expect(a.lastLine.hasPrefix("sha256:") && a.lastLine.count == 71)
        return (a.lastLine, b.lastLine)
    }

    @Test("gzip: same digest from differently made contexts, environments and stores")
    func gzipReproducible() throws {
        let (a, b) = try buildTwice(compression: "gzip", includeDeb: true, bigFile: true)
        #expect(a == b)
    }

    @Test("zstd: same digest, also with another thread count, over several zstd jobs")
    func zstdReproducible() throws {
        let (a, b) = try buildTwice(compression: "zstd", includeDeb: true, bigFile: true)
        #expect(a == b)
    }

    @Test("multi-platform: the same index digest from differently made contexts, environments and stores, gzip and zstd", arguments: ["gzip", "zstd"])
    func multiPlatformReproducible(compression: String) throws {
        let (a, b) = try buildTwice(compression: compression, includeDeb: true, bigFile: false, multiPlatform: true)
        #expect(a == b)
        let store = makeTemporaryDirectory("multi-repro") + "/store"
        let context = try TestContext.make(.first, archive: try TestContext.makeArchive(), includeDeb: true, bigFile: false, multiPlatform: true)
        let build = try imgbuild(["build", context.directory, "--store", store, "--compression", compression])
        let mediaType = try readJSON(store: store, digest: a)["mediaType"] as? String
        #expect(build.lastLine == a && mediaType == "application/vnd.oci.image.index.v1+json")
    }

    @Test("a one-line change in code changes only the top layer")
    func oneLineChange() throws {
        let archive = try TestContext.makeArchive()
        let context = try TestContext.make(.first, archive: archive, includeDeb: true, bigFile: false)
        let store = makeTemporaryDirectory("store") + "/store"
        let before = try imgbuild(["build", context.directory, "--store", store])
        #expect(before.status == 0, "\(before.stderr)")
        write("line one\nline two, changed\nline three\n", to: context.directory + "/code/lib/a.txt")
        let after = try imgbuild(["build", context.directory, "--store", store, "--version", "1.0.1"])
        #expect(after.status == 0, "\(after.stderr)")
        let layersBefore = try layerDigests(store: store, manifest: before.lastLine)
        let layersAfter = try layerDigests(store: store, manifest: after.lastLine)
        #expect(layersBefore.count == 3 && layersAfter.count == 3)
        #expect(layersBefore[0] == layersAfter[0], "dependencies layer changed")
        #expect(layersBefore[1] == layersAfter[1], "runtime layer changed")
        #expect(layersBefore[2] != layersAfter[2], "code layer did not change")
        // The unchanged layers' blobs are byte-identical: one file each in the shared blob area.
        let blobs = try FileManager.default.contentsOfDirectory(atPath: store + "/blobs/sha256")
        #expect(blobs.count == 4 /* layers */ + 2 /* configs */ + 2 /* manifests */)
    }

    @Test("rebuilding the same version with the same inputs is a no-op; other inputs are refused")
    func sameVersionTwice() throws {
        let archive = try TestContext.makeArchive()
        let context = try TestContext.make(.first, archive: archive, includeDeb: false, bigFile: false)
        let store = makeTemporaryDirectory("store") + "/store"
        let first = try imgbuild(["build", context.directory, "--store", store])
        let again = try imgbuild(["build", context.directory, "--store", store])
        #expect(first.status == 0 && again.status == 0)
        #expect(first.lastLine == again.lastLine)
        write("different\n", to: context.directory + "/code/lib/b.txt")
        let changed = try imgbuild(["build", context.directory, "--store", store])
        #expect(changed.status != 0)
        #expect(changed.stderr.contains("repro/app:1.0.0 already points at \(first.lastLine)"))
        #expect(changed.stderr.contains("release a new version"))
    }
}
