import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// Exported images are read by real OCI tools: skopeo, umoci and GNU tar.
@Suite("Real peers read what imgbuild writes", .mayBlock)
struct PeerToolTests {
    static let epoch = "1700000000"

    /// Builds the test context (without the Debian package, so the expected tree is small and exact).
    func buildContext() throws -> (store: String, digest: String) {
        let archive = try TestContext.makeArchive()
        let context = try TestContext.make(.second, archive: archive, includeDeb: false, bigFile: false)
        let store = makeTemporaryDirectory("store") + "/store"
        let result = try imgbuild(["build", context.directory, "--store", store, "--source-date-epoch", PeerToolTests.epoch])
        #expect(result.status == 0, "\(result.stderr)")
        return (store, result.lastLine)
    }

    @Test("skopeo inspects an exported layout and umoci unpacks exactly the expected files and modes")
    func skopeoAndUmoci() throws {
        let (store, digest) = try buildContext()
        let layout = makeTemporaryDirectory("layout") + "/oci"
        let export = try imgbuild(["export", "repro/app:1.0.0", "oci:" + layout, "--store", store])
        #expect(export.status == 0, "\(export.stderr)")

        let inspect = try run("/usr/bin/skopeo", ["inspect", "oci:\(layout):1.0.0"])
        #expect(inspect.status == 0, "skopeo: \(inspect.stderr)")
        let info = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        #expect(info?["Digest"] as? String == digest)
        #expect(info?["Architecture"] as? String == "amd64")
        #expect((info?["Layers"] as? [String])?.count == 3)

        let bundle = makeTemporaryDirectory("bundle") + "/bundle"
        var arguments = ["unpack", "--image", "\(layout):1.0.0", bundle]
        if getuid() != 0 { arguments.insert("--rootless", at: 1) }
        let unpack = try run("/usr/bin/umoci", arguments)
        #expect(unpack.status == 0, "umoci: \(unpack.stderr)")

        let listing = try run("/bin/sh", ["-c", "cd \(bundle)/rootfs && find . -mindepth 1 -printf '%y %m %U:%G %p\\n' | LC_ALL=C sort"])
        let expected = """
        d 755 0:0 ./app
        d 755 0:0 ./app/bin
        d 755 0:0 ./app/lib
        d 755 0:0 ./etc
        d 755 0:0 ./etc/app
        d 755 0:0 ./etc/app/nested
        d 755 0:0 ./etc/app/nested/deep
        d 755 0:0 ./opt
        d 755 0:0 ./opt/vendor
        d 755 0:0 ./opt/vendor/bin
        d 755 0:0 ./opt/vendor/share
        f 644 0:0 ./app/lib/Zeta.txt
        f 644 0:0 ./app/lib/a.txt
        f 644 0:0 ./app/lib/b.txt
        f 644 0:0 ./app/lib/hard-a.txt
        f 644 0:0 ./app/lib/ümlaut.txt
        f 644 0:0 ./etc/app/app.conf
        f 644 0:0 ./etc/app/nested/deep/values.txt
        f 644 0:0 ./opt/vendor/share/data.txt
        f 755 0:0 ./app/bin/app
        f 755 0:0 ./opt/vendor/bin/vendored
        l 777 0:0 ./app/lib/link-to-a
        """
        let actual = listing.stdout.split(separator: "\n").sorted().joined(separator: "\n")
        let want = expected.split(separator: "\n").sorted().joined(separator: "\n")
        #expect(actual == want)
        // The excluded file is absent; the hard link shares the inode of its target.
        #expect(!FileManager.default.fileExists(atPath: bundle + "/rootfs/app/scratch.tmp"))
        let links = try run("/usr/bin/stat", ["-c", "%i", bundle + "/rootfs/app/lib/a.txt", bundle + "/rootfs/app/lib/hard-a.txt"])
        let inodes = links.stdout.split(separator: "\n")
        #expect(inodes.count == 2 && inodes[0] == inodes[1])
    }

    @Test("the store's repository folder is itself an OCI layout that skopeo reads")
    func storeIsLayout() throws {
        let (store, digest) = try buildContext()
        let inspect = try run("/usr/bin/skopeo", ["inspect", "oci:\(store)/repositories/repro/app:1.0.0"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains(digest))
    }

    @Test("tar -tvf of every layer: sorted names, mtime = SOURCE_DATE_EPOCH, uid/gid 0")
    func tarListing() throws {
        let (store, digest) = try buildContext()
        let layers = try layerDigests(store: store, manifest: digest)
        #expect(layers.count == 3)
        for layer in layers {
            let path = store + "/blobs/sha256/" + layer.dropFirst(7)
            let listing = try run("/bin/tar", ["--numeric-owner", "--full-time", "-tvzf", path], environment: ["TZ": "UTC"])
            #expect(listing.status == 0, "\(listing.stderr)")
            let lines = listing.stdout.split(separator: "\n").map(String.init)
            #expect(!lines.isEmpty)
            var names: [String] = []
            for line in lines {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                #expect(fields[1] == "0/0", "owner of \(line)")
                #expect(fields[3] == "2023-11-14" && fields[4] == "22:13:20", "mtime of \(line)")
                var name = String(fields[5])
                if name.hasSuffix("/") { name.removeLast() }
                names.append(name)
            }
            let sorted = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            #expect(names == sorted, "layer \(layer) is not sorted by path bytes")
        }
    }

    @Test("gzip and zstd layers decompress with the real gzip and zstd tools")
    func decompressors() throws {
        let archive = try TestContext.makeArchive()
        let context = try TestContext.make(.first, archive: archive, includeDeb: false, bigFile: false)
        for (compression, tool) in [("gzip", "/bin/gzip"), ("zstd", "/usr/bin/zstd")] {
            let store = makeTemporaryDirectory("store") + "/store"
            let build = try imgbuild(["build", context.directory, "--store", store, "--compression", compression])
            #expect(build.status == 0, "\(build.stderr)")
            let manifest = try readJSON(store: store, digest: build.lastLine)
            let config = try readJSON(store: store, digest: (manifest["config"] as! [String: Any])["digest"] as! String)
            let diffIDs = (config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
            for (index, layer) in (manifest["layers"] as! [[String: Any]]).enumerated() {
                #expect((layer["mediaType"] as! String).hasSuffix("+" + compression))
                let path = store + "/blobs/sha256/" + (layer["digest"] as! String).dropFirst(7)
                let sum = try run("/bin/sh", ["-c", "\(tool) -dc < \(path) | sha256sum"])
                #expect(sum.status == 0)
                #expect("sha256:" + sum.stdout.prefix(64) == diffIDs[index], "diff_id of layer \(index) (\(compression))")
            }
        }
    }
}
