import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// The examples in Imagefiles/ build as they are committed.
@Suite("Examples", .mayBlock, .serialized)
struct ExampleTests {
    /// `python3 -m http.server` on 127.0.0.1 over `directory` (fixtures/served), stopped when the test ends.
    final class FixtureServer {
        let process = Process()

        init(port: Int, directory: String = repositoryRoot + "/fixtures/served") throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Wait until it answers (bounded: 10 s).
            for _ in 0..<100 {
                if (try? run("/usr/bin/env", ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', \(port)), 1)"]))?.status == 0 { return }
                usleep(100_000)
            }
            throw CocoaError(.fileReadUnknown)
        }

        func stop() {
            // SIGKILL: a child spawned from a dispatch worker thread inherits its blocked SIGTERM.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        deinit { if process.isRunning { stop() } }
    }

    @Test("Imagefiles/hello builds: busybox from the .deb, the page with its version, /healthz")
    func hello() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        let inspect = try imgbuild(["inspect", "hello:1.0.0", "--store", store])
        #expect(inspect.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as! [String: Any]
        #expect(json["digest"] as? String == build.lastLine)
        let config = (json["config"] as! [String: Any])["config"] as! [String: Any]
        #expect(config["Entrypoint"] as? [String] == ["/app/hello"])
        #expect((config["Labels"] as? [String: String])?["dev.imgbuild.health.http"] == "/healthz")
        let layers = try layerDigests(store: store, manifest: build.lastLine)
        #expect(layers.count == 3)
        let files = try run("/bin/sh", ["-c", layers.map { "tar -tzf \(store)/blobs/sha256/\($0.dropFirst(7))" }.joined(separator: "; ")])
        for path in ["bin/busybox", "srv/www/index.html", "srv/www/healthz", "app/hello"] {
            #expect(files.stdout.split(separator: "\n").contains(Substring(path)), "\(path) missing")
        }
        let page = try run("/bin/sh", ["-c", "tar -xzOf \(store)/blobs/sha256/\(layers[1].dropFirst(7)) srv/www/index.html"])
        #expect(page.stdout.contains("hello 1.0.0"))
    }

    @Test("the hello image runs: its entrypoint serves /healthz and the page with its version", .enabled(if: getuid() == 0))
    func helloServes() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        #expect(try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store]).status == 0)
        let layout = makeTemporaryDirectory("layout") + "/oci"
        #expect(try imgbuild(["export", "hello:1.0.0", "oci:" + layout, "--store", store]).status == 0)
        let bundle = makeTemporaryDirectory("bundle") + "/bundle"
        #expect(try run("/usr/bin/umoci", ["unpack", "--image", layout + ":1.0.0", bundle]).status == 0)
        let port = freePort()
        let service = try BackgroundProcess("/usr/sbin/chroot", [bundle + "/rootfs", "/app/hello"], log: bundle + ".log", environment: ["PORT": String(port), "HOST": "127.0.0.1"])
        defer { service.stop() }
        try waitForPort(port)
        let health = try run("/usr/bin/curl", ["-s", "-f", "http://127.0.0.1:\(port)/healthz"])
        #expect(health.stdout == "ok\n")
        #expect(try run("/usr/bin/curl", ["-s", "-f", "http://127.0.0.1:\(port)/"]).stdout.contains("hello 1.0.0"))
    }

    @Test("Imagefiles/full builds with every section; the URL dependency is fetched once, then cached")
    func full() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let cache = makeTemporaryDirectory("cache")
        let server = try FixtureServer(port: 8733)
        let first = try imgbuild(["build", repositoryRoot + "/Imagefiles/full", "--store", store], environment: ["IMGBUILD_CACHE": cache])
        server.stop()
        #expect(first.status == 0, "\(first.stderr)")
        #expect(FileManager.default.fileExists(atPath: cache + "/downloads/sha256/24edba28609386093ac7050437b377b16aa8328602e0d649fb2ab4d76ce93ed6"))

        // The server is gone: the cache serves the same bytes, and the digest is the same.
        let store2 = makeTemporaryDirectory("store") + "/store"
        let second = try imgbuild(["build", repositoryRoot + "/Imagefiles/full", "--store", store2], environment: ["IMGBUILD_CACHE": cache])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(first.lastLine == second.lastLine)

        let manifest = try readJSON(store: store, digest: first.lastLine)
        let annotations = manifest["annotations"] as? [String: String]
        #expect(annotations?["org.opencontainers.image.version"] == "2.3.0-rc.1+build.7")
        #expect(annotations?["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z")
        let config = try readJSON(store: store, digest: (manifest["config"] as! [String: Any])["digest"] as! String)
        let run_ = config["config"] as! [String: Any]
        #expect(run_["Cmd"] as? [String] == ["--port", "8080"])
        #expect(run_["User"] as? String == "1000:1000")
        #expect(run_["WorkingDir"] as? String == "/app")
        #expect((run_["ExposedPorts"] as? [String: Any]).map { Set($0.keys) } == ["8080/tcp", "9090/udp"])
        #expect((run_["Volumes"] as? [String: Any]).map { Set($0.keys) } == ["/var/lib/full"])
        // Its SBOM (a Debian package, an archive and a download) is one the SPDX validator accepts.
        try expectValidSBOM(store: store, reference: "examples/full:2.3.0-rc.1+build.7", packages: ["busybox-static"])
        #expect(run_["StopSignal"] as? String == "SIGTERM")
        #expect(config["created"] as? String == "2023-11-14T22:13:20Z")
        let history = config["history"] as! [[String: Any]]
        #expect(history.map { $0["created_by"] as? String } == ["imgbuild: dependencies", "imgbuild: runtime", "imgbuild: code", "imgbuild: config"])
        #expect(history.last?["empty_layer"] as? Bool == true)

        let layers = try layerDigests(store: store, manifest: first.lastLine)
        let code = try run("/bin/tar", ["--numeric-owner", "-tvzf", store + "/blobs/sha256/" + layers[2].dropFirst(7)])
        #expect(code.stdout.contains("1000/1000") && code.stdout.contains("app/static/index.html"))
        #expect(!code.stdout.contains("cache.tmp") && !code.stdout.contains("app/notes"), "excluded files are in the layer")
        #expect(code.stdout.contains("-rwxr-x--- 1000/1000"), "mode 0750 and owner 1000:1000 of app/bin/run.sh (its user must run it)")
        let deps = try run("/bin/tar", ["-tzf", store + "/blobs/sha256/" + layers[0].dropFirst(7)])
        for path in ["bin/busybox", "opt/tool/bin/tool", "opt/greeting/greeting.txt"] {
            #expect(deps.stdout.split(separator: "\n").contains(Substring(path)), "\(path) missing")
        }
    }

    @Test("a URL whose bytes differ from the pinned digest is refused and not cached")
    func urlMismatch() throws {
        let context = makeTemporaryDirectory("url")
        let wrong = String(repeating: "0", count: 64)
        write("name: bad/url\nversion: 1.0.0\ndependencies:\n  - url: http://127.0.0.1:8733/greeting.tar.zst\n    sha256: \(wrong)\n    to: /opt\n",
              to: context + "/Imagefile")
        let cache = makeTemporaryDirectory("cache")
        let server = try FixtureServer(port: 8733)
        defer { server.stop() }
        let result = try imgbuild(["build", context, "--store", makeTemporaryDirectory("s") + "/store"], environment: ["IMGBUILD_CACHE": cache])
        #expect(result.status != 0)
        #expect(result.stderr.contains("Imagefile:4:5:"))
        #expect(result.stderr.contains("expects sha256:\(wrong)"))
        #expect(result.stderr.contains("is sha256:24edba28609386093ac7050437b377b16aa8328602e0d649fb2ab4d76ce93ed6"))
        #expect(FileManager.default.subpaths(atPath: cache + "/downloads/sha256")?.isEmpty ?? true)
    }
}

@Suite("Base images", .mayBlock)
struct BaseImageTests {
    @Test("an image built on a base named by digest keeps the base's layers and config and adds its own")
    func onBase() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let base = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store])
        #expect(base.status == 0, "\(base.stderr)")
        let context = makeTemporaryDirectory("derived")
        write("""
        name: hello-extra
        version: 1.0.0
        base: hello@\(base.lastLine)
        code:
          - copy: extra.txt
            to: /srv/www/extra.txt
        config:
          env: { EXTRA: "yes", PORT: "9090" }

        """, to: context + "/Imagefile")
        write("extra\n", to: context + "/extra.txt")
        let derived = try imgbuild(["build", context, "--store", store])
        #expect(derived.status == 0, "\(derived.stderr)")
        let baseLayers = try layerDigests(store: store, manifest: base.lastLine)
        let layers = try layerDigests(store: store, manifest: derived.lastLine)
        #expect(layers.count == baseLayers.count + 1)
        #expect(Array(layers.prefix(baseLayers.count)) == baseLayers)
        let manifest = try readJSON(store: store, digest: derived.lastLine)
        #expect((manifest["annotations"] as? [String: String])?["org.opencontainers.image.base.digest"] == base.lastLine)
        let config = try readJSON(store: store, digest: (manifest["config"] as! [String: Any])["digest"] as! String)
        let execution = config["config"] as! [String: Any]
        #expect(execution["Entrypoint"] as? [String] == ["/app/hello"], "the base's entrypoint is kept")
        #expect(execution["Env"] as? [String] == ["PORT=9090", "HELLO_VERSION=1.0.0", "EXTRA=yes"], "env merged by name in place, the Imagefile winning")
        #expect(((config["rootfs"] as! [String: Any])["diff_ids"] as! [String]).count == layers.count)
        #expect((config["history"] as! [[String: Any]]).count > 3)

        let missing = makeTemporaryDirectory("missing-base")
        write("name: x\nversion: 1.0.0\nbase: hello@sha256:\(String(repeating: "0", count: 64))\n", to: missing + "/Imagefile")
        let refused = try imgbuild(["build", missing, "--store", store])
        #expect(refused.status != 0 && refused.stderr.contains("base image hello@sha256:0000") && refused.stderr.contains("is not in the store"), "\(refused.stderr)")
    }
}
