import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// A store holding the hello example and two key pairs.
private struct SigningFixture {
    let store = makeTemporaryDirectory("sign-store")
    let keys = makeTemporaryDirectory("keys")
    let digest: String

    init() throws {
        let build = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store])
        guard build.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: build.stderr]) }
        digest = build.lastLine
        for name in ["alice", "mallory"] {
            let made = try imgbuild(["keygen", keys + "/" + name])
            guard made.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: made.stderr]) }
        }
    }

    /// The signature manifest, payload and signature bytes of the image's first signature, read from the store.
    func signatureParts() throws -> (manifestPath: String, manifest: [String: Any], payload: Data, signature: Data) {
        let referrer = try StoredReferrer(store: store, subject: digest, artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json")
        let layer = try #require((referrer.manifest["layers"] as? [[String: Any]])?.first)
        let annotation = try #require((layer["annotations"] as? [String: String])?["dev.cosignproject.cosign/signature"])
        let signature = try #require(Data(base64Encoded: annotation))
        return (referrer.manifestPath(store: store), referrer.manifest, referrer.payload, signature)
    }

    /// Writes a blob into the store the way an attacker with write access would, returning its digest.
    func plant(_ data: Data) throws -> String {
        let hex = sha256Hex(data)
        try data.write(to: URL(fileURLWithPath: store + "/blobs/sha256/" + hex))
        return "sha256:" + hex
    }
}

private func sha256Hex(_ data: Data) -> String {
    let file = makeTemporaryDirectory("hash") + "/data"
    try! data.write(to: URL(fileURLWithPath: file))
    return String(try! run("/usr/bin/sha256sum", [file]).stdout.prefix(64))
}

@Suite("Signatures: keygen, sign, verify", .mayBlock)
struct SigningTests {
    @Test("a signature verifies with openssl on the payload and with imgbuild verify; another key is refused")
    func signAndVerify() throws {
        let fixture = try SigningFixture()
        let signed = try imgbuild(["sign", "hello:1.0.0", "--key", fixture.keys + "/alice.key", "--store", fixture.store])
        #expect(signed.status == 0, "\(signed.stderr)")

        let parts = try fixture.signatureParts()
        #expect((parts.manifest["subject"] as? [String: Any])?["digest"] as? String == fixture.digest)
        #expect(parts.manifest["artifactType"] as? String == "application/vnd.dev.cosign.artifact.sig.v1+json")
        let payloadText = String(decoding: parts.payload, as: UTF8.self)
        #expect(payloadText.contains("\"docker-manifest-digest\":\"\(fixture.digest)\"") && payloadText.contains("\"docker-reference\":\"hello\""))
        let folder = makeTemporaryDirectory("openssl")
        try parts.payload.write(to: URL(fileURLWithPath: folder + "/payload.json"))
        try parts.signature.write(to: URL(fileURLWithPath: folder + "/signature.der"))
        let openssl = try run("/usr/bin/openssl", ["dgst", "-sha256", "-verify", fixture.keys + "/alice.pub", "-signature", folder + "/signature.der", folder + "/payload.json"])
        #expect(openssl.status == 0 && openssl.stdout.contains("Verified OK"), "\(openssl.stdout)\(openssl.stderr)")
        let wrongKey = try run("/usr/bin/openssl", ["dgst", "-sha256", "-verify", fixture.keys + "/mallory.pub", "-signature", folder + "/signature.der", folder + "/payload.json"])
        #expect(wrongKey.status != 0, "openssl itself rejects the other key")

        let good = try imgbuild(["verify", "hello:1.0.0", "--key", fixture.keys + "/alice.pub", "--store", fixture.store])
        #expect(good.status == 0 && good.stdout.contains("verified hello@\(fixture.digest)"), "\(good.stderr)")
        let other = try imgbuild(["verify", "hello:1.0.0", "--key", fixture.keys + "/mallory.pub", "--store", fixture.store])
        #expect(other.status != 0 && other.stderr.contains("signed by another key"), "\(other.stderr)")
        let tag = try run("/bin/cat", [fixture.store + "/repositories/hello/artifacts/sha256-\(fixture.digest.dropFirst(7)).sig"])
        #expect(tag.status == 0 && tag.stdout.contains("sha256:"), "the cosign tag scheme is written too")
    }

    @Test("refused: no signature, a signature over another digest, a re-encoded payload, a truncated payload, a private key given as public")
    func tampering() throws {
        let fixture = try SigningFixture()
        let unsigned = try imgbuild(["verify", "hello:1.0.0", "--key", fixture.keys + "/alice.pub", "--store", fixture.store])
        #expect(unsigned.status != 0 && unsigned.stderr.contains("has no signature"), "\(unsigned.stderr)")
        let wrongKind = try imgbuild(["verify", "hello:1.0.0", "--key", fixture.keys + "/alice.key", "--store", fixture.store])
        #expect(wrongKind.status != 0 && wrongKind.stderr.contains("expected a PEM public key"), "\(wrongKind.stderr)")

        #expect(try imgbuild(["sign", "hello:1.0.0", "--key", fixture.keys + "/alice.key", "--store", fixture.store]).status == 0)
        let parts = try fixture.signatureParts()
        let original = try Data(contentsOf: URL(fileURLWithPath: parts.manifestPath))
        let layerDigest = ((parts.manifest["layers"] as! [[String: Any]])[0]["digest"] as! String)

        // A payload that names another digest, validly signed by alice, put in place of the real one.
        let otherDigest = "sha256:" + String(repeating: "ab", count: 32)
        let forged = Data(String(decoding: parts.payload, as: UTF8.self).replacingOccurrences(of: fixture.digest, with: otherDigest).utf8)
        let folder = makeTemporaryDirectory("forge")
        try forged.write(to: URL(fileURLWithPath: folder + "/payload.json"))
        #expect(try run("/usr/bin/openssl", ["dgst", "-sha256", "-sign", fixture.keys + "/alice.key", "-out", folder + "/sig", folder + "/payload.json"]).status == 0)
        let forgedSignature = try Data(contentsOf: URL(fileURLWithPath: folder + "/sig")).base64EncodedString()
        let cases: [(String, Data, String?)] = [
            ("another digest", forged, forgedSignature),
            ("re-encoded", Data(String(decoding: parts.payload, as: UTF8.self).replacingOccurrences(of: ",", with: ", ").utf8), nil),
            ("truncated", parts.payload.prefix(parts.payload.count / 2), nil),
        ]
        for (name, payload, signature) in cases {
            let payloadDigest = try fixture.plant(payload)
            var text = String(decoding: original, as: UTF8.self).replacingOccurrences(of: layerDigest, with: payloadDigest)
                .replacingOccurrences(of: "\"size\":\(parts.payload.count)", with: "\"size\":\(payload.count)")
            if let signature {
                let current = parts.signature.base64EncodedString()
                text = text.replacingOccurrences(of: current.replacingOccurrences(of: "/", with: "\\/"), with: signature)
                    .replacingOccurrences(of: current, with: signature)
            }
            // The forged signature manifest, planted as a blob and listed as the image's only referrer.
            let manifestDigest = try fixture.plant(Data(text.utf8))
            let referrers = fixture.store + "/repositories/hello/referrers/sha256-" + fixture.digest.dropFirst(7)
            for file in try FileManager.default.contentsOfDirectory(atPath: referrers) { try FileManager.default.removeItem(atPath: referrers + "/" + file) }
            let record = "{\"artifactType\":\"application/vnd.dev.cosign.artifact.sig.v1+json\",\"digest\":\"\(manifestDigest)\",\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":\(text.utf8.count)}"
            try Data(record.utf8).write(to: URL(fileURLWithPath: referrers + "/sha256-" + manifestDigest.dropFirst(7)))
            let result = try imgbuild(["verify", "hello:1.0.0", "--key", fixture.keys + "/alice.pub", "--store", fixture.store])
            #expect(result.status != 0, "\(name) is refused")
            let expected = name == "another digest" ? "signs another digest" : "does not match the payload"
            #expect(result.stderr.contains(expected), "\(name): \(result.stderr)")
        }
        #expect(try imgbuild(["sign", "hello:1.0.0", "--key", fixture.keys + "/alice.key", "--store", fixture.store]).status == 0)
        #expect(try imgbuild(["verify", "hello:1.0.0", "--key", fixture.keys + "/alice.pub", "--store", fixture.store]).status == 0)
    }
}

@Suite("Signatures travel with their images", .mayBlock)
struct ReferrerTransferTests {
    @Test("push to imgbuild serve lists the signature through the referrers API; pull brings it back and it verifies")
    func throughServe() throws {
        let fixture = try SigningFixture()
        #expect(try imgbuild(["sign", "hello:1.0.0", "--key", fixture.keys + "/alice.key", "--store", fixture.store]).status == 0)
        let server = try ServedRegistry()
        defer { server.stop() }
        let push = try imgbuild(["push", "hello:1.0.0", server.url + "/hello", "--store", fixture.store])
        #expect(push.status == 0 && push.stderr.contains("referrer (application/vnd.dev.cosign.artifact.sig.v1+json) copied"), "\(push.stderr)")
        let listing = try http("GET", server.url + "/v2/hello/referrers/" + fixture.digest)
        #expect(listing.status == 200 && listing.body.contains("application/vnd.dev.cosign.artifact.sig.v1+json"), "\(listing.body)")

        let pulled = makeTemporaryDirectory("pulled")
        #expect(try imgbuild(["pull", server.url + "/hello@" + fixture.digest, "--store", pulled]).status == 0)
        let verified = try imgbuild(["verify", "hello@" + fixture.digest, "--key", fixture.keys + "/alice.pub", "--store", pulled])
        #expect(verified.status == 0, "\(verified.stderr)")

        let bare = makeTemporaryDirectory("pulled-bare")
        #expect(try imgbuild(["pull", server.url + "/hello@" + fixture.digest, "--store", bare, "--no-referrers"]).status == 0)
        let unsigned = try imgbuild(["verify", "hello@" + fixture.digest, "--key", fixture.keys + "/alice.pub", "--store", bare])
        #expect(unsigned.status != 0 && unsigned.stderr.contains("has no signature"), "--no-referrers leaves it behind")
    }

    @Test("push to the distribution registry (no referrers API) uses the sha256-<hex>.sig tag; pull brings it back")
    func throughTagScheme() throws {
        let fixture = try SigningFixture()
        #expect(try imgbuild(["sign", "hello:1.0.0", "--key", fixture.keys + "/alice.key", "--store", fixture.store]).status == 0)
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        #expect(try imgbuild(["push", "hello:1.0.0", registry.url + "/hello", "--store", fixture.store]).status == 0)
        let noAPI = try http("GET", registry.url + "/v2/hello/referrers/" + fixture.digest)
        #expect(noAPI.status == 404, "this registry has no referrers API")
        let tags = try http("GET", registry.url + "/v2/hello/tags/list")
        #expect(tags.body.contains("sha256-\(fixture.digest.dropFirst(7)).sig"), "\(tags.body)")

        let pulled = makeTemporaryDirectory("pulled")
        let pull = try imgbuild(["pull", registry.url + "/hello:1.0.0", "--store", pulled])
        #expect(pull.status == 0 && pull.stderr.contains("referrer"), "\(pull.stderr)")
        let verified = try imgbuild(["verify", "hello:1.0.0", "--key", fixture.keys + "/alice.pub", "--store", pulled])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(try imgbuild(["fsck", "--store", pulled]).status == 0)
    }
}
