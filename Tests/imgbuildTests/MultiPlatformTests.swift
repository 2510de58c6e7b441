import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// One Imagefile, every platform: `platforms:` builds an OCI image index, which real tools (skopeo,
/// umoci, file, Debian's registry) read and copy, and every imgbuild command handles.
@Suite("Multi-platform images", .mayBlock, .serialized)
struct MultiPlatformTests {
    static let example = repositoryRoot + "/Imagefiles/hello-multiarch"
    #if arch(x86_64)
    static let hostIsAMD64 = true
    #else
    static let hostIsAMD64 = false
    #endif

    /// The example built into a store of its own: the store and the index digest `build` printed.
    func builtExample(cache: String? = nil) throws -> (store: String, index: String) {
        let store = makeTemporaryDirectory("multi") + "/store"
        let build = try imgbuild(["build", Self.example, "--store", store], environment: cache.map { ["IMGBUILD_CACHE": $0] } ?? [:])
        #expect(build.status == 0, "\(build.stderr)")
        return (store, build.lastLine)
    }

    /// The index's manifests: platform (`os/architecture`) → manifest digest.
    func children(store: String, index: String) throws -> [String: String] {
        let json = try readJSON(store: store, digest: index)
        #expect(json["mediaType"] as? String == "application/vnd.oci.image.index.v1+json")
        var result: [String: String] = [:]
        for entry in json["manifests"] as! [[String: Any]] {
            let platform = entry["platform"] as! [String: Any]
            result["\(platform["os"]!)/\(platform["architecture"]!)"] = entry["digest"] as? String
        }
        return result
    }

    @Test("hello-multiarch builds an index of an amd64 and an arm64 image; the context layers are one blob in both; skopeo, umoci and file agree")
    func buildsIndex() throws {
        let (store, index) = try builtExample()
        let platforms = try children(store: store, index: index)
        #expect(platforms.keys.sorted() == ["linux/amd64", "linux/arm64"])
        let amd64 = try layerDigests(store: store, manifest: platforms["linux/amd64"]!)
        let arm64 = try layerDigests(store: store, manifest: platforms["linux/arm64"]!)
        #expect(amd64.count == 3 && arm64.count == 3)
        #expect(amd64[0] != arm64[0], "each platform has its own busybox")
        #expect(Array(amd64[1...]) == Array(arm64[1...]), "runtime and code are the same bytes on every platform")
        // Each image's config declares its platform.
        for (platform, manifest) in platforms {
            let config = try readJSON(store: store, digest: (try readJSON(store: store, digest: manifest)["config"] as! [String: Any])["digest"] as! String)
            #expect("\(config["os"]!)/\(config["architecture"]!)" == platform)
        }
        // The version names the index; tags, resolve and inspect return it.
        #expect(try imgbuild(["resolve", "hello-multiarch@^1", "--store", store]).lastLine.hasSuffix(index))
        let inspect = try imgbuild(["inspect", "hello-multiarch:1.0.0", "--store", store])
        #expect((try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as! [String: Any])["index"] != nil)
        let one = try imgbuild(["inspect", "hello-multiarch:1.0.0", "--platform", "linux/arm64", "--store", store])
        #expect(one.status == 0, "\(one.stderr)")
        #expect((try JSONSerialization.jsonObject(with: Data(one.stdout.utf8)) as! [String: Any])["digest"] as? String == platforms["linux/arm64"])
        let missing = try imgbuild(["inspect", "hello-multiarch:1.0.0", "--platform", "linux/s390x", "--store", store])
        #expect(missing.status != 0 && missing.stderr.contains("has no image for linux/s390x: it has linux/amd64, linux/arm64"), "\(missing.stderr)")

        // skopeo reads the store's layout: the index, and each platform's image through it.
        let layout = "oci:\(store)/repositories/hello-multiarch:1.0.0"
        let raw = try run("/usr/bin/skopeo", ["inspect", "--raw", layout])
        #expect(raw.status == 0, "\(raw.stderr)")
        for digest in platforms.values { #expect(raw.stdout.contains(digest)) }
        for (architecture, expected) in [("amd64", "x86-64"), ("arm64", "ARM aarch64")] {
            let picked = try run("/usr/bin/skopeo", ["inspect", "--override-arch", architecture, layout])
            #expect(picked.stdout.contains("\"Architecture\": \"\(architecture)\""), "\(picked.stdout)")
            // One platform copied out by skopeo, unpacked by umoci: its busybox is that architecture's.
            let work = makeTemporaryDirectory("unpack-\(architecture)")
            let copy = try run("/usr/bin/skopeo", ["copy", "--override-arch", architecture, layout, "oci:\(work)/layout:one"])
            #expect(copy.status == 0, "\(copy.stderr)")
            let unpack = try run("/usr/bin/umoci", ["unpack", "--rootless", "--image", "\(work)/layout:one", "\(work)/bundle"])
            #expect(unpack.status == 0, "\(unpack.stderr)")
            let file = try run("/usr/bin/file", ["\(work)/bundle/rootfs/bin/busybox"])
            #expect(file.stdout.contains(expected), "\(file.stdout)")
        }

        // The tests ran on both platforms before the tag: file checks on each.
        let test = try imgbuild(["test", "hello-multiarch:1.0.0", "--store", store])
        #expect(test.status == 0, "\(test.stdout)\(test.stderr)")
        #expect(test.stdout.contains("✓ linux/amd64: file /bin/busybox exists") && test.stdout.contains("✓ linux/arm64: file /bin/busybox exists"), "\(test.stdout)")
    }

    @Test("the index digest is reproducible: another store and another cache give the same bytes")
    func reproducible() throws {
        let first = try builtExample()
        let second = try builtExample(cache: makeTemporaryDirectory("other-cache"))
        #expect(first.index == second.index)
        #expect(try readJSON(store: first.store, digest: first.index)["mediaType"] as? String == "application/vnd.oci.image.index.v1+json")
        #expect(try children(store: first.store, index: first.index) == children(store: second.store, index: second.index))
    }

    @Test("push to docker-registry, skopeo copy --all to it and back and on to imgbuild serve, pull by version: the index digest travels; --platform sends one image")
    func travels() throws {
        let (store, index) = try builtExample()
        let platforms = try children(store: store, index: index)
        let sbom = try imgbuild(["sbom", "hello-multiarch:1.0.0", "--store", store])
        #expect(sbom.status == 0 && sbom.stdout.split(separator: "\n").count == 2, "an SBOM per platform: \(sbom.stdout)\(sbom.stderr)")
        let registry = try DistributionRegistry()
        let served = try ServedRegistry()
        defer { registry.stop(); served.stop() }

        let push = try imgbuild(["push", "hello-multiarch:1.0.0", registry.url + "/team/multi", "--store", store, "--format", "json"])
        #expect(push.status == 0, "\(push.stderr)")
        let pushed = try JSONSerialization.jsonObject(with: Data(push.stdout.utf8)) as! [String: Any]
        #expect(pushed["digest"] as? String == index)
        // The test record of the index and the SBOM of each platform's image travel with it.
        #expect(pushed["referrers"] as? Int == 3, "\(push.stdout)")
        let raw = try run("/usr/bin/skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://127.0.0.1:\(registry.port)/team/multi:1.0.0"])
        #expect(raw.status == 0 && raw.stdout.contains("application/vnd.oci.image.index.v1+json"), "\(raw.stderr)")

        // skopeo carries every platform from the store's layout to Debian's registry and back: the same index.
        let skopeoRepository = "docker://127.0.0.1:\(registry.port)/skopeo/multi:1.0.0"
        let there = try run("/usr/bin/skopeo", ["copy", "--all", "--dest-tls-verify=false", "oci:\(store)/repositories/hello-multiarch:1.0.0", skopeoRepository])
        #expect(there.status == 0, "\(there.stderr)")
        let returned = makeTemporaryDirectory("skopeo-back") + "/layout"
        let returning = try run("/usr/bin/skopeo", ["copy", "--all", "--src-tls-verify=false", skopeoRepository, "oci:\(returned):1.0.0"])
        #expect(returning.status == 0, "\(returning.stderr)")
        let layoutIndex = try String(contentsOfFile: returned + "/index.json", encoding: .utf8)
        #expect(layoutIndex.contains(index), "\(layoutIndex)")

        // skopeo carries every platform from Debian's registry to imgbuild serve: the same index digest.
        let copy = try run("/usr/bin/skopeo", ["copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                                               "docker://127.0.0.1:\(registry.port)/team/multi:1.0.0", "docker://127.0.0.1:\(served.port)/copied/multi:1.0.0"])
        #expect(copy.status == 0, "\(copy.stderr)")
        let servedRaw = try run("/usr/bin/skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://127.0.0.1:\(served.port)/copied/multi:1.0.0"])
        #expect(servedRaw.status == 0 && sha256(servedRaw.stdout) == index, "imgbuild serve returns the index's own bytes")
        for architecture in ["amd64", "arm64"] {
            let inspect = try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--override-arch", architecture, "docker://127.0.0.1:\(served.port)/copied/multi:1.0.0"])
            #expect(inspect.stdout.contains(index) && inspect.stdout.contains("\"Architecture\": \"\(architecture)\""), "\(inspect.stdout)\(inspect.stderr)")
        }

        // Pulled back from imgbuild serve into a new store: the same index, every child, fsck clean.
        let back = makeTemporaryDirectory("back") + "/store"
        let pull = try imgbuild(["pull", "127.0.0.1:\(served.port)/copied/multi:1.0.0", "--as", "multi", "--store", back])
        #expect(pull.status == 0, "\(pull.stderr)")
        #expect(pull.lastLine == index)
        #expect(try children(store: back, index: index) == platforms)
        #expect(try imgbuild(["fsck", "--store", back]).status == 0)

        // One platform only: its image manifest, by its own digest.
        let one = try imgbuild(["push", "hello-multiarch:1.0.0", registry.url + "/team/arm", "--platform", "linux/arm64", "--store", store])
        #expect(one.status == 0, "\(one.stderr)")
        #expect(one.lastLine == platforms["linux/arm64"])
        #expect(one.stderr.contains("note: only the linux/arm64 image of \(index) is copied"), "\(one.stderr)")
        let absent = try imgbuild(["push", "hello-multiarch:1.0.0", registry.url + "/team/s390x", "--platform", "linux/s390x", "--store", store])
        #expect(absent.status != 0 && absent.stderr.contains("has no image for linux/s390x: it has linux/amd64, linux/arm64"), "\(absent.stderr)")
        // A one-platform image is sent as it is for its own platform, and refused for another.
        let amd64 = try imgbuild(["push", "hello-multiarch@" + platforms["linux/amd64"]!, registry.url + "/team/amd:1.0.0", "--platform", "linux/amd64", "--store", store])
        #expect(amd64.status == 0 && amd64.lastLine == platforms["linux/amd64"], "\(amd64.stderr)")
        let other = try imgbuild(["push", "hello-multiarch@" + platforms["linux/amd64"]!, registry.url + "/team/amd:2.0.0", "--platform", "linux/arm64", "--store", store])
        #expect(other.status != 0 && other.stderr.contains("has no image for linux/arm64: it has linux/amd64"), "\(other.stderr)")
    }

    @Test("command tests run on the host's platform only, and the report says so of the others",
          .enabled(if: getuid() == 0 && Self.hostIsAMD64, "runc needs root, as CI has; the expectations name amd64 as the host"))
    func commandsOnHostOnly() throws {
        let context = makeTemporaryDirectory("multi-commands")
        try FileManager.default.removeItem(atPath: context)
        try FileManager.default.copyItem(atPath: Self.example, toPath: context)
        var imagefile = try String(contentsOfFile: context + "/Imagefile", encoding: .utf8)
        imagefile = imagefile.replacingOccurrences(of: "../../fixtures", with: repositoryRoot + "/fixtures")
            + "  commands:\n    - { run: [\"/bin/busybox\", \"uname\", \"-m\"], output: \"x86_64\" }\n"
        write(imagefile, to: context + "/Imagefile")
        let store = makeTemporaryDirectory("multi-commands-store") + "/store"
        let build = try imgbuild(["build", context, "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        #expect(build.stderr.contains("✓ linux/amd64: command [\"/bin/busybox\", \"uname\", \"-m\"]"), "\(build.stderr)")
        #expect(build.stderr.contains("– linux/arm64: command [\"/bin/busybox\", \"uname\", \"-m\"] not run: commands run on linux/amd64 only"), "\(build.stderr)")
        let test = try imgbuild(["test", "hello-multiarch:1.0.0", "--store", store])
        #expect(test.status == 0 && test.stdout.contains("passed: 9 tests (1 left for another platform)"), "\(test.stdout)\(test.stderr)")

        // An index without the host's platform cannot run its commands: refused, not passed.
        write(imagefile.replacingOccurrences(of: "platforms: [linux/amd64, linux/arm64]", with: "platforms: [linux/arm64]")
              .replacingOccurrences(of: "    platform: linux/amd64\n", with: "    platform: linux/arm64\n")
              .replacingOccurrences(of: "  - deb: \(repositoryRoot)/fixtures/debs/busybox-static.deb\n    sha256: 3d3fdbe91d4660c873e14b092c213fe81c1da6362daa236eb25d0171eb108744\n    platform: linux/arm64\n", with: ""),
              to: context + "/Imagefile")
        let before = snapshot(store)
        let armOnly = try imgbuild(["build", context, "--store", store, "--version", "2.0.0"])
        #expect(armOnly.status != 0 && armOnly.stderr.contains("the tests have commands, which run on this machine's platform (linux/amd64) only, and 'platforms' does not build it"),
                "\(armOnly.stderr)")
        #expect(snapshot(store) == before, "refused before anything was written")
    }

    @Test("an index as base: each platform builds on the base's image for it; a base without a wanted platform is refused")
    func indexAsBase() throws {
        let (store, index) = try builtExample()
        let base = try children(store: store, index: index)
        let context = makeTemporaryDirectory("on-index")
        write("on top\n", to: context + "/top.txt")
        let imagefile = "name: team/on-index\nversion: 1.0.0\nbase: hello-multiarch@\(index)\ncode:\n  - copy: top.txt\n    to: /top.txt\n"

        write(imagefile + "platforms: [linux/arm64, linux/amd64]\n", to: context + "/Imagefile")
        let build = try imgbuild(["build", context, "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        let built = try children(store: store, index: build.lastLine)
        for platform in ["linux/amd64", "linux/arm64"] {
            let baseLayers = try layerDigests(store: store, manifest: base[platform]!)
            let layers = try layerDigests(store: store, manifest: built[platform]!)
            #expect(Array(layers.prefix(baseLayers.count)) == baseLayers && layers.count == baseLayers.count + 1, "\(platform)")
        }

        // One platform on an index base: an image manifest on the base's image for that platform.
        write(imagefile + "platform: linux/arm64\n", to: context + "/Imagefile")
        let single = try imgbuild(["build", context, "--store", store, "--version", "1.0.1"])
        #expect(single.status == 0, "\(single.stderr)")
        #expect(try readJSON(store: store, digest: single.lastLine)["mediaType"] as? String == "application/vnd.oci.image.manifest.v1+json")
        #expect(try layerDigests(store: store, manifest: single.lastLine).prefix(3) == layerDigests(store: store, manifest: base["linux/arm64"]!)[...])

        write(imagefile + "platforms: [linux/amd64, linux/s390x]\n", to: context + "/Imagefile")
        let before = snapshot(store)
        let refused = try imgbuild(["build", context, "--store", store, "--version", "1.0.2"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("its index has no image for linux/s390x (it has linux/amd64, linux/arm64)"), "\(refused.stderr)")
        #expect(snapshot(store) == before, "a refused build changed the store")
    }
}
