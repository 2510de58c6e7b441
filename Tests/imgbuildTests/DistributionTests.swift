import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// push, pull and copy against the real CNCF distribution registry and skopeo, on 127.0.0.1.
@Suite("Push and pull with real registries", .mayBlock)
struct DistributionTests {
    /// A store with a small image built in it: (store, digest).
    func builtImage(seed: String = "dist", version: String = "1.0.0+build.7") throws -> (store: String, digest: String, context: String) {
        let store = makeTemporaryDirectory("store") + "/store"
        let context = makeSmallContext(seed: seed, name: "team/app", version: version, bigFileMiB: 3)
        let build = try imgbuild(["build", context, "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        return (store, build.lastLine, context)
    }

    @Test("push to docker-registry; skopeo inspects and copies it with the same digest; pull back by digest; fsck clean")
    func pushInspectCopyPull() throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let (store, digest, _) = try builtImage()
        let push = try imgbuild(["push", "team/app:1.0.0+build.7", registry.url + "/team/app", "--store", store])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(push.lastLine == digest)

        // '+' travels as '_'.
        let remote = "docker://127.0.0.1:\(registry.port)/team/app:1.0.0_build.7"
        let inspect = try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", remote])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("\"Digest\": \"\(digest)\""))
        let layout = makeTemporaryDirectory("skopeo") + "/oci"
        let copy = try run("/usr/bin/skopeo", ["copy", "--src-tls-verify=false", remote, "oci:\(layout):copied"])
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(try run("/usr/bin/skopeo", ["inspect", "oci:\(layout):copied"]).stdout.contains("\"Digest\": \"\(digest)\""))

        let empty = makeTemporaryDirectory("pulled") + "/store"
        let byDigest = try imgbuild(["pull", registry.url + "/team/app@" + digest, "--store", empty])
        #expect(byDigest.status == 0, "\(byDigest.stderr)")
        #expect(byDigest.lastLine == digest)
        #expect(try imgbuild(["fsck", "--store", empty]).status == 0)
        #expect(try imgbuild(["inspect", "team/app@" + digest, "--store", empty]).status == 0)
        // A pinned image survives gc.
        #expect(try imgbuild(["gc", "--store", empty]).stdout.contains("removed 0 blob(s)"))

        let byVersion = try imgbuild(["pull", registry.url + "/team/app:1.0.0_build.7", "--as", "mirror/app", "--store", empty])
        #expect(byVersion.status == 0, "\(byVersion.stderr)")
        #expect(try imgbuild(["tags", "mirror/app", "--store", empty]).stdout == "1.0.0+build.7 \(digest)\n")
    }

    @Test("a second push sends zero blob bytes; after a code change only the changed layer and config go")
    func incrementalPush() throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let (store, digest, context) = try builtImage(seed: "incremental", version: "1.0.0")
        #expect(try imgbuild(["push", "team/app:1.0.0", registry.url + "/team/app", "--store", store]).status == 0)

        let proxy = try RegistryProxy(upstream: registry)
        defer { proxy.stop() }
        let again = try imgbuild(["push", "team/app:1.0.0", proxy.url + "/team/app", "--store", store])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(proxy.uploadedBlobBytes == 0)
        #expect(proxy.requests.filter { $0.method == "POST" }.isEmpty, "an upload was started")

        write("a one-line change\n", to: context + "/app.txt")
        let rebuilt = try imgbuild(["build", context, "--store", store, "--version", "1.0.1"])
        let layers = try layerDigests(store: store, manifest: rebuilt.lastLine)
        let config = (try readJSON(store: store, digest: rebuilt.lastLine)["config"] as! [String: Any])["digest"] as! String
        let push = try imgbuild(["push", "team/app:1.0.1", proxy.url + "/team/app", "--store", store])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(proxy.completedBlobUploads == [layers[1], config], "uploaded: \(proxy.completedBlobUploads)")
        let expectedBytes = try [layers[1], config].map { try FileManager.default.attributesOfItem(atPath: store + "/blobs/sha256/" + $0.dropFirst(7))[.size] as! Int }
        #expect(proxy.uploadedBlobBytes == expectedBytes.reduce(0, +))
        _ = digest
    }

    @Test("push to oci:DIR, then skopeo copies that layout into the registry")
    func layoutThenSkopeo() throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let (store, digest, _) = try builtImage(seed: "layout", version: "2.0.0")
        let layout = makeTemporaryDirectory("layout") + "/oci"
        let push = try imgbuild(["push", "team/app:2.0.0", "oci:" + layout, "--store", store])
        #expect(push.status == 0, "\(push.stderr)")
        let copy = try run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "oci:\(layout):2.0.0", "docker://127.0.0.1:\(registry.port)/from/layout:2.0.0"])
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://127.0.0.1:\(registry.port)/from/layout:2.0.0"]).stdout.contains(digest))
        // And imgbuild copies registry to registry (mounting across repositories) and layout to layout.
        let copied = try imgbuild(["copy", registry.url + "/from/layout:2.0.0", registry.url + "/other/app"])
        #expect(copied.status == 0 && copied.stderr.contains("mounted"), "\(copied.stderr)")
        let layout2 = makeTemporaryDirectory("layout2") + "/oci"
        #expect(try imgbuild(["copy", "oci:\(layout):2.0.0", "oci:" + layout2]).lastLine == digest)
    }

    @Test("copy streams from one registry to another, no local store involved")
    func registryToRegistry() throws {
        let first = try DistributionRegistry()
        let second = try DistributionRegistry()
        defer { first.stop(); second.stop() }
        let (store, digest, _) = try builtImage(seed: "r2r", version: "4.0.0")
        #expect(try imgbuild(["push", "team/app:4.0.0", first.url + "/team/app", "--store", store]).status == 0)
        let unused = makeTemporaryDirectory("unused") + "/store"
        let copy = try imgbuild(["copy", first.url + "/team/app:4.0.0", second.url + "/mirror/app", "--store", unused])
        #expect(copy.status == 0, "\(copy.stderr)")
        #expect(copy.lastLine == digest)
        #expect(!FileManager.default.fileExists(atPath: unused), "copy went through the local store")
        #expect(try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://127.0.0.1:\(second.port)/mirror/app:4.0.0"]).stdout.contains(digest))
    }

    @Test("a version that exists remotely with another digest is refused, and the remote tag stays")
    func remoteImmutability() throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let first = try builtImage(seed: "first", version: "3.0.0")
        let second = try builtImage(seed: "second", version: "3.0.0")
        #expect(try imgbuild(["push", "team/app:3.0.0", registry.url + "/team/app", "--store", first.store]).status == 0)
        let refused = try imgbuild(["push", "team/app:3.0.0", registry.url + "/team/app", "--store", second.store])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("team/app:3.0.0 already points at \(first.digest)") && refused.stderr.contains("versions are immutable"))
        #expect(try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://127.0.0.1:\(registry.port)/team/app:3.0.0"]).stdout.contains(first.digest))
    }

    @Test("basic auth (htpasswd): flags, docker config.json, wrong and missing credentials")
    func basicAuth() throws {
        let registry = try DistributionRegistry(auth: .htpasswd(["alice": "s3cret-pass"]))
        defer { registry.stop() }
        let (store, digest, _) = try builtImage(seed: "auth", version: "1.0.0")
        let target = registry.url + "/team/app"

        let anonymous = try imgbuild(["push", "team/app:1.0.0", target, "--store", store])
        #expect(anonymous.status != 0 && anonymous.stderr.contains("refused access") && anonymous.stderr.contains("requires a user name and password"))

        let wrong = try run("/bin/sh", ["-c", "echo wrong-pass | \"$0\" push team/app:1.0.0 \(target) --username alice --password-stdin --store \(store)", imgbuildBinary])
        #expect(wrong.status != 0 && wrong.stderr.contains("refused access") && wrong.stderr.contains("401"))
        #expect(!wrong.stderr.contains("wrong-pass"))

        let right = try run("/bin/sh", ["-c", "echo s3cret-pass | \"$0\" push team/app:1.0.0 \(target) --username alice --password-stdin --store \(store)", imgbuildBinary])
        #expect(right.status == 0, "\(right.stderr)")
        #expect(!right.stderr.contains("s3cret-pass"))

        let dockerConfig = makeTemporaryDirectory("docker")
        let auth = Data("alice:s3cret-pass".utf8).base64EncodedString()
        write(#"{"auths":{"127.0.0.1:\#(registry.port)":{"auth":"\#(auth)"}}}"#, to: dockerConfig + "/config.json")
        let pulled = makeTemporaryDirectory("pulled") + "/store"
        let pull = try imgbuild(["pull", target + ":1.0.0", "--store", pulled], environment: ["DOCKER_CONFIG": dockerConfig])
        #expect(pull.status == 0, "\(pull.stderr)")
        #expect(pull.lastLine == digest)
    }

    @Test("bearer tokens: the registry's token service is asked with the repository's scope")
    func bearerAuth() throws {
        let registry = try DistributionRegistry(auth: .token(user: "bob", password: "t0ken-pass"))
        defer { registry.stop() }
        let (store, digest, _) = try builtImage(seed: "bearer", version: "1.0.0")
        let target = registry.url + "/team/app"
        let anonymous = try imgbuild(["push", "team/app:1.0.0", target, "--store", store])
        #expect(anonymous.status != 0 && anonymous.stderr.contains("the token service answered 401"), "\(anonymous.stderr)")
        let push = try imgbuild(["push", "team/app:1.0.0", target, "--store", store],
                                environment: ["IMGBUILD_USERNAME": "bob", "IMGBUILD_PASSWORD": "t0ken-pass"])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(!push.stderr.contains("t0ken-pass"))
        let pulled = makeTemporaryDirectory("pulled") + "/store"
        let pull = try imgbuild(["pull", target + "@" + digest, "--store", pulled],
                                environment: ["IMGBUILD_USERNAME": "bob", "IMGBUILD_PASSWORD": "t0ken-pass"])
        #expect(pull.status == 0 && pull.lastLine == digest, "\(pull.stderr)")
    }

    @Test("HTTPS: a private CA with --ca-file works; without it the certificate is refused")
    func tls() throws {
        let registry = try DistributionRegistry(tls: true)
        defer { registry.stop() }
        let (store, digest, _) = try builtImage(seed: "tls", version: "1.0.0")
        let target = "https://127.0.0.1:\(registry.port)/team/app"
        let untrusted = try imgbuild(["push", "team/app:1.0.0", target, "--store", store])
        #expect(untrusted.status != 0)
        #expect(untrusted.stderr.contains("TLS certificate is not trusted (CERTIFICATE_VERIFY_FAILED)") && untrusted.stderr.contains("--ca-file"), "\(untrusted.stderr)")
        let trusted = try imgbuild(["push", "team/app:1.0.0", target, "--ca-file", registry.certificate, "--store", store])
        #expect(trusted.status == 0, "\(trusted.stderr)")
        #expect(trusted.lastLine == digest)
        // Plain HTTP to another machine needs --insecure (checked before any connection).
        let plain = try imgbuild(["push", "team/app:1.0.0", "http://192.0.2.1:5000/team/app", "--store", store])
        #expect(plain.status != 0 && plain.stderr.contains("plain HTTP to another machine") && plain.stderr.contains("--insecure"), "\(plain.stderr)")
    }

    @Test("a proxy that drops the connection mid-blob: the push retries and finishes")
    func dropThenRetry() throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let (store, digest, _) = try builtImage(seed: "drop", version: "1.0.0")
        let proxy = try RegistryProxy(upstream: registry, options: ["--drop-uploads", "2", "--drop-after", "100000"])
        defer { proxy.stop() }
        // Monolithic and chunked uploads both recover.
        for (repository, extra) in [("mono/app", [String]()), ("chunked/app", ["--chunk-size", "500000"])] {
            let push = try imgbuild(["push", "team/app:1.0.0", proxy.url + "/" + repository, "--store", store] + extra)
            #expect(push.status == 0, "\(repository): \(push.stderr)")
            #expect(try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://127.0.0.1:\(registry.port)/\(repository):1.0.0"]).stdout.contains(digest))
        }
        #expect(proxy.requests.contains { $0.status == "DROPPED" }, "the proxy dropped nothing")
    }

    @Test("503 and 429 answers are retried with backoff; a registry that keeps failing gives a clear error", arguments: ["503", "429"])
    func serverErrors(status: String) throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let (store, digest, _) = try builtImage(seed: "5xx-\(status)", version: "1.0.0")
        let flaky = try RegistryProxy(upstream: registry, options: ["--fail-first", "2", status])
        defer { flaky.stop() }
        let push = try imgbuild(["push", "team/app:1.0.0", flaky.url + "/team/app", "--store", store])
        #expect(push.status == 0, "\(push.stderr)")
        #expect(push.lastLine == digest)
        #expect(flaky.requests.filter { $0.status == status }.count == 2)

        let broken = try RegistryProxy(upstream: registry, options: ["--fail-first", "1000", status])
        defer { broken.stop() }
        let pull = try imgbuild(["pull", broken.url + "/team/app:1.0.0", "--store", makeTemporaryDirectory("s") + "/store"])
        #expect(pull.status != 0)
        #expect(pull.stderr.contains("failed after retries") && pull.stderr.contains("\(status) UNAVAILABLE: injected by the test proxy"), "\(pull.stderr)")
    }

    @Test("a manifest over 4 MiB is refused and nothing is stored")
    func oversizedManifest() throws {
        let layout = makeTemporaryDirectory("big-manifest") + "/oci"
        try FileManager.default.createDirectory(atPath: layout + "/blobs/sha256", withIntermediateDirectories: true)
        let config = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.utf8)
        let configDigest = try run("/bin/sh", ["-c", "printf '%s' '\(String(decoding: config, as: UTF8.self))' | sha256sum"]).stdout.prefix(64)
        try config.write(to: URL(fileURLWithPath: layout + "/blobs/sha256/" + configDigest))
        let padding = String(repeating: "x", count: 5 << 20)
        let manifest = Data(#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:\#(configDigest)","size":\#(config.count)},"layers":[],"annotations":{"padding":"\#(padding)"}}"#.utf8)
        let manifestPath = layout + "/blobs/sha256/manifest"
        try manifest.write(to: URL(fileURLWithPath: manifestPath))
        let digest = String(try run("/usr/bin/sha256sum", [manifestPath]).stdout.prefix(64))
        rename(manifestPath, layout + "/blobs/sha256/" + digest)
        write(#"{"imageLayoutVersion":"1.0.0"}"#, to: layout + "/oci-layout")
        write(#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:\#(digest)","size":\#(manifest.count),"annotations":{"org.opencontainers.image.ref.name":"1.0.0"}}]}"#,
              to: layout + "/index.json")
        let store = makeTemporaryDirectory("s") + "/store"
        let pull = try imgbuild(["pull", "oci:\(layout):1.0.0", "--as", "big/app", "--store", store])
        #expect(pull.status != 0)
        #expect(pull.stderr.contains("is over the 4 MiB limit"), "\(pull.stderr)")
        #expect(try imgbuild(["tags", "big/app", "--store", store]).status != 0)
    }

    @Test("a registry that keeps dropping uploads: the push fails cleanly and nothing is tagged")
    func dropForever() throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let (store, _, _) = try builtImage(seed: "forever", version: "1.0.0")
        let proxy = try RegistryProxy(upstream: registry, options: ["--drop-uploads", "1000", "--drop-after", "1000"])
        defer { proxy.stop() }
        let push = try imgbuild(["push", "team/app:1.0.0", proxy.url + "/team/app", "--store", store])
        #expect(push.status != 0)
        #expect(push.stderr.contains("failed after retries"), "\(push.stderr)")
        #expect(try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://127.0.0.1:\(registry.port)/team/app:1.0.0"]).status != 0)
    }

    @Test("corrupted bytes from a registry are refused; a missing tag is a clear error; the store is unchanged")
    func badBytes() throws {
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let (store, digest, _) = try builtImage(seed: "corrupt", version: "1.0.0")
        #expect(try imgbuild(["push", "team/app:1.0.0", registry.url + "/team/app", "--store", store]).status == 0)
        let proxy = try RegistryProxy(upstream: registry, options: ["--corrupt-blob-downloads"])
        defer { proxy.stop() }
        let target = makeTemporaryDirectory("target") + "/store"
        let pull = try imgbuild(["pull", proxy.url + "/team/app@" + digest, "--store", target])
        #expect(pull.status != 0)
        #expect(pull.stderr.contains("hash to") || pull.stderr.contains("hashes to"), "\(pull.stderr)")
        let missing = try imgbuild(["pull", registry.url + "/team/app:9.9.9", "--store", target])
        #expect(missing.status != 0 && missing.stderr.contains("team/app:9.9.9 was not found"))
        #expect(try imgbuild(["tags", "team/app", "--store", target]).status != 0, "a failed pull created the repository")
        // No blob of the image was kept: nothing in the store reaches a corrupt byte.
        #expect(try imgbuild(["fsck", "--store", target]).status == 0)
        let kept = (try? FileManager.default.contentsOfDirectory(atPath: target + "/blobs/sha256")) ?? []
        let layers = try layerDigests(store: store, manifest: digest)
        #expect(!kept.contains { name in layers.contains("sha256:" + name) && (try? run("/usr/bin/sha256sum", [target + "/blobs/sha256/" + name]).stdout.hasPrefix(name)) != true })
    }
}
