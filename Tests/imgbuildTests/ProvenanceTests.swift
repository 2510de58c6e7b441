import Foundation
import Testing

@Suite("Provenance (in-toto, SLSA v1)")
struct ProvenanceTests {
    func statement(store: String, digest: String) throws -> (artifact: String, statement: [String: Any]) {
        let folder = store + "/repositories/hello/referrers/sha256-" + digest.dropFirst(7)
        for record in try FileManager.default.contentsOfDirectory(atPath: folder) {
            let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: store + "/blobs/sha256/" + record.dropFirst(7)))) as! [String: Any]
            guard manifest["artifactType"] as? String == "application/vnd.in-toto+json" else { continue }
            let layer = (manifest["layers"] as! [[String: Any]])[0]
            let data = try Data(contentsOf: URL(fileURLWithPath: store + "/blobs/sha256/" + (layer["digest"] as! String).dropFirst(7)))
            return ("sha256:" + record.dropFirst(7), try JSONSerialization.jsonObject(with: data) as! [String: Any])
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "no provenance referrer in \(folder)"])
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

        // The same build elsewhere gives the same statement, byte for byte.
        let other = makeTemporaryDirectory("prov-store")
        #expect(try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", other, "--provenance"]).lastLine == digest)
        #expect(try self.statement(store: other, digest: digest).artifact == artifact)
    }
}
