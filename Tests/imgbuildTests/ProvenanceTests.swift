import CommandLineTesting
import Foundation
import Testing
import TestScheduling

@Suite("Provenance (in-toto, SLSA v1)", .mayBlock)
struct ProvenanceTests {
    func statement(store: String, digest: String) throws -> (artifact: String, statement: [String: Any]) {
        let referrer = try StoredReferrer(store: store, subject: digest, artifactType: "application/vnd.in-toto+json")
        return (referrer.digest, try JSONSerialization.jsonObject(with: referrer.payload) as! [String: Any])
    }

    @Test("build --provenance records the Imagefile, every context file and dependency by digest, reproducibly")
    func provenance() throws {
        let store = makeTemporaryDirectory("prov-store")
        let build = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store, "--provenance", "--sbom"])
        #expect(build.status == 0, "\(build.stderr)")
        let digest = build.lastLine
        let (artifact, statement) = try self.statement(store: store, digest: digest)
        #expect(statement["_type"] as? String == "https://in-toto.io/Statement/v1")
        #expect(statement["predicateType"] as? String == "https://slsa.dev/provenance/v1")
        let subject = (statement["subject"] as? [[String: Any]])?.first
        #expect((subject?["digest"] as? [String: String])?["sha256"] == String(digest.dropFirst(7)))

        let predicate = statement["predicate"] as? [String: Any] ?? [:]
        let definition = predicate["buildDefinition"] as? [String: Any] ?? [:]
        let parameters = definition["externalParameters"] as? [String: Any] ?? [:]
        #expect(parameters["version"] as? String == "1.0.0" && parameters["compression"] as? String == "gzip" && parameters["sourceDateEpoch"] as? Int == 0)
        var inputs: [String: String] = [:]
        for dependency in definition["resolvedDependencies"] as? [[String: Any]] ?? [] {
            inputs[dependency["uri"] as! String] = (dependency["digest"] as? [String: String])?["sha256"]
        }
        func sha256(_ path: String) throws -> String { String(try run("/usr/bin/sha256sum", [path]).stdout.prefix(64)) }
        let context = repositoryRoot + "/Imagefiles/hello"
        #expect(inputs["file:Imagefile"] == (try sha256(context + "/Imagefile")))
        for file in ["bin/hello", "www/index.html", "www/healthz"] {
            #expect(inputs["file:" + file] == (try sha256(context + "/" + file)), "\(file) in \(inputs.keys.sorted())")
        }
        #expect(inputs["deb:../../fixtures/debs/busybox-static.deb"] == busyboxSHA256)
        let builder = (predicate["runDetails"] as? [String: Any])?["builder"] as? [String: Any]
        #expect((builder?["version"] as? [String: String])?["imgbuild"] != nil)

        // The in-toto attestation framework's own bindings accept the statement and its SLSA predicate.
        let file = makeTemporaryDirectory("prov-statement") + "/statement.json"
        try JSONSerialization.data(withJSONObject: statement).write(to: URL(fileURLWithPath: file))
        let checked = try run(attestationTool("python"), [repositoryRoot + "/fixtures/attestations/check_provenance.py", file])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")

        // The same build elsewhere gives the same statement, byte for byte; so does a rebuild into the same
        // store, whose layers are known unchanged from the context's snapshot without a walk.
        let other = makeTemporaryDirectory("prov-store")
        #expect(try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", other, "--provenance"]).lastLine == digest)
        #expect(try self.statement(store: other, digest: digest).artifact == artifact)
        let again = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", other, "--provenance"])
        #expect(again.lastLine == digest && again.stderr.contains("layer code: unchanged since it was last built"), "\(again.stderr)")
        #expect(try self.statement(store: other, digest: digest).artifact == artifact)
    }
}
