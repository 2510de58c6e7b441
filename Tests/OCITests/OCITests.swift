import Foundation
import OCI
import Testing
import TestScheduling

@Suite("Digests", .mayBlock)
struct DigestTests {
    @Test("SHA-256 of known vectors through libcrypto")
    func vectors() {
        #expect(Digest.of(Data()).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.of(Data("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Streaming in uneven pieces gives the same digest as one update.
        let data = Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let hasher = SHA256Hasher()
        var offset = 0
        for size in [1, 7, 4096, 65_537, 10_000] where offset < data.count {
            let end = min(data.count, offset + size)
            hasher.update(data[offset..<end])
            offset = end
        }
        hasher.update(data[offset...])
        #expect(hasher.finalize() == Digest.of(data))
    }

    @Test("file digests stream and count bytes")
    func fileDigest() throws {
        let path = NSTemporaryDirectory() + "digest-\(UUID())"
        let data = Data(repeating: 0x61, count: 3 << 20 + 5)
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (digest, size) = try Digest.ofFile(atPath: path)
        #expect(size == Int64(data.count))
        #expect(digest == Digest.of(data))
    }

    @Test("parsing accepts sha256:<64 lowercase hex> only", arguments: [
        ("sha256:" + String(repeating: "a", count: 64), true),
        ("sha256:" + String(repeating: "A", count: 64), false),
        ("sha256:" + String(repeating: "a", count: 63), false),
        ("sha512:" + String(repeating: "a", count: 128), false),
        (String(repeating: "a", count: 64), false),
        ("sha256:" + String(repeating: "g", count: 64), false),
        ("", false),
    ])
    func parse(text: String, valid: Bool) {
        #expect(((try? Digest(parsing: text)) != nil) == valid)
    }

    @Test("errors say what a digest must look like")
    func parseErrors() {
        #expect(throws: Digest.ParseError.missingAlgorithm("abc")) { try Digest(parsing: "abc") }
        #expect((try? Digest(parsing: "md5:00")) == nil)
        do { _ = try Digest(parsing: "sha256:xyz") } catch { #expect(error.description.contains("64 lowercase hex digits")) }
    }
}

@Suite("Canonical JSON and OCI documents", .mayBlock)
struct DocumentTests {
    @Test("keys are sorted, no white space, slashes unescaped")
    func canonical() throws {
        struct Sample: Encodable { var zebra = 1; var alpha = "a/b"; var middle = ["y": 2, "x": 1] }
        let text = String(decoding: try CanonicalJSON.encode(Sample()), as: UTF8.self)
        #expect(text == #"{"alpha":"a/b","middle":{"x":1,"y":2},"zebra":1}"#)
    }

    @Test("a manifest has the spec's fields and media types; optional fields are omitted")
    func manifestShape() throws {
        let config = Descriptor(mediaType: MediaType.imageConfig, digest: Digest.of(Data("{}".utf8)), size: 2)
        let manifest = ImageManifest(config: config, layers: [], annotations: [AnnotationKey.version: "1.0.0"])
        let object = try JSONSerialization.jsonObject(with: CanonicalJSON.encode(manifest)) as! [String: Any]
        #expect(object["schemaVersion"] as? Int == 2)
        #expect(object["mediaType"] as? String == "application/vnd.oci.image.manifest.v1+json")
        #expect(object["subject"] == nil && object["artifactType"] == nil)
        #expect((object["config"] as? [String: Any])?["digest"] as? String == config.digest.description)
    }

    @Test("the config uses diff_ids, created_by, empty_layer and upper-case execution keys")
    func configShape() throws {
        var execution = ImageConfig.Execution()
        execution.entrypoint = ["/app"]
        execution.exposedPorts = ["8080/tcp": EmptyObject()]
        let config = ImageConfig(created: "1970-01-01T00:00:00Z", platform: Platform(os: "linux", architecture: "arm64", variant: "v8"),
                                 config: execution, rootfs: .init(diffIDs: [Digest.of(Data())]),
                                 history: [.init(created: nil, createdBy: "x", emptyLayer: true)])
        let text = String(decoding: try CanonicalJSON.encode(config), as: UTF8.self)
        #expect(text.contains(#""rootfs":{"diff_ids":["sha256:e3b0"#))
        #expect(text.contains(#""type":"layers""#))
        #expect(text.contains(#""created_by":"x","empty_layer":true"#))
        #expect(text.contains(#""config":{"Entrypoint":["/app"],"ExposedPorts":{"8080/tcp":{}}}"#))
        #expect(text.contains(#""architecture":"arm64""#) && text.contains(#""variant":"v8""#))
        let decoded = try CanonicalJSON.decode(ImageConfig.self, from: Data(text.utf8))
        #expect(decoded == config)
    }

    @Test("manifests and indexes are told apart")
    func anyManifest() throws {
        let index = ImageIndex(manifests: [])
        guard case .index = try AnyManifest(decoding: CanonicalJSON.encode(index)) else { Issue.record("not an index"); return }
        #expect(throws: AnyManifest.DecodeError.self) { try AnyManifest(decoding: Data(#"{"schemaVersion":1}"#.utf8)) }
        #expect(throws: AnyManifest.DecodeError.self) { try AnyManifest(decoding: Data("not json".utf8)) }
    }

    @Test("RFC 3339 timestamps in UTC", arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"), (1_700_000_000, "2023-11-14T22:13:20Z"),
        (951_782_400, "2000-02-29T00:00:00Z"), (253_402_300_799, "9999-12-31T23:59:59Z"),
    ])
    func rfc3339(seconds: Int64, text: String) {
        #expect(RFC3339.string(fromEpochSeconds: seconds) == text)
    }
}

@Suite("Names and references", .mayBlock)
struct ReferenceTests {
    @Test("repository names follow the distribution spec grammar", arguments: [
        ("hello", true), ("team/hello", true), ("a.b_c__d--e/f", true), ("a0/b1/c2", true),
        ("Hello", false), ("hello/", false), ("/hello", false), ("a___b", false), ("a..b", false),
        ("a_-b", false), ("-a", false), ("a b", false), ("", false), ("a//b", false),
        (String(repeating: "a", count: 256), false),
    ])
    func names(name: String, valid: Bool) {
        #expect(RepositoryName.isValid(name) == valid)
    }

    @Test("references by tag and by digest")
    func references() throws {
        let tagged = try Reference(parsing: "team/hello:1.4.0+build.1")
        #expect(tagged.name.value == "team/hello" && tagged.target == .tag("1.4.0+build.1"))
        let digest = "sha256:" + String(repeating: "0", count: 64)
        let pinned = try Reference(parsing: "hello@" + digest)
        #expect(pinned.target == .digest(try Digest(parsing: digest)))
        #expect(pinned.description == "hello@" + digest)
        #expect(throws: Reference.ParseError.missingTarget("hello")) { try Reference(parsing: "hello") }
        #expect(throws: Reference.ParseError.self) { try Reference(parsing: "hello@sha256:12") }
        #expect(throws: Reference.ParseError.self) { try Reference(parsing: "Hello:1.0.0") }
    }

    @Test("platforms parse as os/arch[/variant]")
    func platforms() {
        #expect(Platform(parsing: "linux/amd64") == Platform(os: "linux", architecture: "amd64"))
        #expect(Platform(parsing: "linux/arm64/v8")?.variant == "v8")
        #expect(Platform(parsing: "linux") == nil && Platform(parsing: "linux//") == nil && Platform(parsing: "a/b/c/d") == nil)
    }
}
