import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// References as docker, skopeo and crane write them: `HOST[:PORT]/PATH[:TAG|@DIGEST]` and `docker://…`,
/// against the real distribution registry, `imgbuild serve` and skopeo, on 127.0.0.1.
@Suite("Docker-style references", .mayBlock)
struct ReferenceTests {
    func builtImage(seed: String) throws -> (store: String, digest: String) {
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", makeSmallContext(seed: seed, name: "team/app", version: "1.0.0", bigFileMiB: 1), "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        return (store, build.lastLine)
    }

    @Test("push and pull with HOST:PORT/REPO[:TAG|@DIGEST] and docker://, against docker-registry and imgbuild serve", arguments: ["distribution", "serve"])
    func pushAndPull(server kind: String) throws {
        let (store, digest) = try builtImage(seed: "refs-\(kind)")
        let distribution = kind == "distribution" ? try DistributionRegistry() : nil
        let served = kind == "serve" ? try ServedRegistry() : nil
        defer { distribution?.stop(); served?.stop() }
        let port = distribution?.port ?? served!.port

        let push = try imgbuild(["push", "team/app:1.0.0", "127.0.0.1:\(port)/team/app", "--store", store])
        #expect(push.status == 0 && push.lastLine == digest, "\(push.stderr)")
        let inspect = try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "docker://127.0.0.1:\(port)/team/app:1.0.0"])
        #expect(inspect.stdout.contains("\"Digest\": \"\(digest)\""), "\(inspect.stderr)")

        let pulled = makeTemporaryDirectory("pulled") + "/store"
        let byTag = try imgbuild(["pull", "localhost:\(port)/team/app:1.0.0", "--store", pulled])
        #expect(byTag.status == 0 && byTag.lastLine == digest, "\(byTag.stderr)")
        #expect(try imgbuild(["tags", "team/app", "--store", pulled]).stdout == "1.0.0 \(digest)\n")
        let byDigest = try imgbuild(["pull", "docker://127.0.0.1:\(port)/team/app@\(digest)", "--as", "mirror/app", "--store", pulled])
        #expect(byDigest.status == 0 && byDigest.lastLine == digest, "\(byDigest.stderr)")
        // A registry-to-registry copy with both ends written docker's way.
        let copy = try imgbuild(["copy", "127.0.0.1:\(port)/team/app:1.0.0", "docker://127.0.0.1:\(port)/other/app:1.0.0", "--store", pulled])
        #expect(copy.status == 0 && copy.lastLine == digest, "\(copy.stderr)")
        #expect(try imgbuild(["fsck", "--store", pulled]).status == 0)
    }

    @Test("a registry on this machine that speaks TLS is reached over HTTPS: trusted with --ca-file, refused without, never retried as plain HTTP")
    func httpsFirst() throws {
        let registry = try DistributionRegistry(tls: true)
        defer { registry.stop() }
        let (store, digest) = try builtImage(seed: "refs-tls")
        let target = "127.0.0.1:\(registry.port)/team/app"
        let untrusted = try imgbuild(["push", "team/app:1.0.0", target, "--store", store])
        #expect(untrusted.status != 0 && untrusted.stderr.contains("CERTIFICATE_VERIFY_FAILED") && untrusted.stderr.contains("https://127.0.0.1"),
                "\(untrusted.stderr)")
        let trusted = try imgbuild(["push", "team/app:1.0.0", target, "--ca-file", registry.certificate, "--store", store])
        #expect(trusted.status == 0 && trusted.lastLine == digest, "\(trusted.stderr)")
    }

    @Test("a store repository named like a registry is ambiguous: the error says how to write each, and each spelling works")
    func ambiguous() throws {
        let (store, digest) = try builtImage(seed: "refs-ambiguous")
        let layout = makeTemporaryDirectory("layout") + "/oci"
        #expect(try imgbuild(["push", "team/app:1.0.0", "oci:\(layout)", "--store", store]).status == 0)
        // A repository whose first component has a dot, as a pull --as may name it.
        let pulled = try imgbuild(["pull", "oci:\(layout):1.0.0", "--as", "example.com/app", "--store", store])
        #expect(pulled.status == 0, "\(pulled.stderr)")
        // copy could mean either: refused, with both spellings.
        let refused = try imgbuild(["copy", "example.com/app:1.0.0", "oci:\(layout)-2", "--store", store])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("names the registry example.com") && refused.stderr.contains("docker://example.com/app:1.0.0")
            && refused.stderr.contains("store:example.com/app:1.0.0"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: layout + "-2"), "nothing was written")
        let explicit = try imgbuild(["copy", "store:example.com/app:1.0.0", "oci:\(layout)-2", "--store", store])
        #expect(explicit.status == 0 && explicit.lastLine == digest, "\(explicit.stderr)")
        // push's source is always the store, and export's: no ambiguity, no network.
        let pushed = try imgbuild(["push", "example.com/app:1.0.0", "oci:\(layout)-3", "--store", store])
        #expect(pushed.status == 0 && pushed.lastLine == digest, "\(pushed.stderr)")
        #expect(try imgbuild(["export", "example.com/app:1.0.0", "oci:\(layout)-4", "--store", store]).status == 0)
        // push's destination is never the store.
        let nowhere = try imgbuild(["push", "example.com/app:1.0.0", "127.0.0.1:5000", "--store", store])
        #expect(nowhere.status != 0 && nowhere.stderr.contains("is not a registry or a layout"), "\(nowhere.stderr)")
    }

    @Test("name:tag@digest pulls by the digest, as docker reads it; an uppercase host is the same host")
    func digestWithTag() throws {
        let (store, digest) = try builtImage(seed: "refs-both")
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        #expect(try imgbuild(["push", "team/app:1.0.0", "127.0.0.1:\(registry.port)/team/app", "--store", store]).status == 0)
        let pulled = makeTemporaryDirectory("pulled") + "/store"
        let both = try imgbuild(["pull", "LOCALHOST:\(registry.port)/team/app:1.0.0@\(digest)", "--store", pulled])
        #expect(both.status == 0 && both.lastLine == digest, "\(both.stderr)")
    }

    @Test("bad references get a clear error before any connection", arguments: [
        ("127.0.0.1:99999/team/app:1.0.0", "is not a registry host"),
        ("127.0.0.1:5000/Team/App:1.0.0", "is not a valid repository name"),
        ("docker://127.0.0.1:5000/team/app:", "the tag after ':' is empty"),
        ("localhost:5000/team/app@sha256:abc", "sha256"),
        ("127.0.0.1:5000/team/app:v1#x", "is not a tag"),
    ])
    func badReferences(reference: String, message: String) throws {
        let result = try imgbuild(["pull", reference, "--store", makeTemporaryDirectory("store") + "/store"])
        #expect(result.status != 0 && result.stderr.contains(message), "\(result.stderr)")
    }
}
