import CommandLineTesting
import Foundation
import Testing
import TestScheduling

@Suite("SBOM (SPDX 2.3)", .mayBlock)
struct SBOMTests {
    /// The SPDX document of the image's SBOM, read from the store.
    func document(store: String, digest: String) throws -> (artifact: String, document: [String: Any]) {
        let referrer = try StoredReferrer(store: store, subject: digest, artifactType: "application/spdx+json")
        return (referrer.digest, try JSONSerialization.jsonObject(with: referrer.payload) as! [String: Any])
    }

    @Test("the SBOM lists every file of the hello image with digests that match the unpacked rootfs, and the Debian package")
    func filesAndPackages() throws {
        let store = makeTemporaryDirectory("sbom-store")
        let digest = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store]).lastLine
        let made = try imgbuild(["sbom", "hello:1.0.0", "--store", store])
        #expect(made.status == 0, "\(made.stderr)")
        let (artifact, spdx) = try document(store: store, digest: digest)
        #expect(spdx["spdxVersion"] as? String == "SPDX-2.3" && spdx["dataLicense"] as? String == "CC0-1.0")

        // umoci unpacks the same image; every regular file and its SHA-256 must be listed, and nothing else.
        let layout = makeTemporaryDirectory("sbom-layout")
        #expect(try imgbuild(["export", "hello:1.0.0", "oci:\(layout):1.0.0", "--store", store]).status == 0)
        let bundle = makeTemporaryDirectory("sbom-bundle") + "/b"
        #expect(try run("/usr/bin/umoci", ["unpack", "--image", "\(layout):1.0.0", bundle]).status == 0)
        let listing = try run("/bin/sh", ["-c", "cd \(bundle)/rootfs && find . -type f -print0 | sort -z | xargs -0 sha256sum"])
        var unpacked: [String: String] = [:]
        for line in listing.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            unpacked[String(parts[1]).trimmingCharacters(in: .whitespaces)] = String(parts[0])
        }
        var listed: [String: String] = [:]
        for file in spdx["files"] as? [[String: Any]] ?? [] {
            let sha256 = (file["checksums"] as? [[String: String]])?.first { $0["algorithm"] == "SHA256" }?["checksumValue"]
            let sha1 = (file["checksums"] as? [[String: String]])?.first { $0["algorithm"] == "SHA1" }?["checksumValue"]
            #expect(sha1?.count == 40, "SPDX 2.3 wants SHA-1 on every file")
            listed[file["fileName"] as! String] = sha256
        }
        #expect(!unpacked.isEmpty && listed == unpacked, "listed \(listed.count), unpacked \(unpacked.count)")
        #expect(listed["./bin/busybox"] != nil && listed["./var/lib/dpkg/status.d/busybox-static"] != nil)

        let packages = spdx["packages"] as? [[String: Any]] ?? []
        let image = packages.first { $0["SPDXID"] as? String == "SPDXRef-Image" }
        #expect(((image?["checksums"] as? [[String: String]])?.first?["checksumValue"]) == String(digest.dropFirst(7)))
        #expect(image?["versionInfo"] as? String == "1.0.0")
        let busybox = packages.first { $0["name"] as? String == "busybox-static" }
        #expect(busybox?["versionInfo"] as? String == "1:1.35.0-4+deb12u1+b1")
        #expect(busybox?["licenseDeclared"] as? String == "GPL-2.0-only", "from its copyright file's common-licenses reference")
        #expect(((busybox?["externalRefs"] as? [[String: String]])?.first?["referenceLocator"])?.contains("arch=amd64") == true)

        // Reproducible: another store, another build, the same SBOM artifact.
        let other = makeTemporaryDirectory("sbom-store")
        #expect(try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", other]).lastLine == digest)
        #expect(try imgbuild(["sbom", "hello:1.0.0", "--store", other]).status == 0)
        #expect(try self.document(store: other, digest: digest).artifact == artifact)
    }

    @Test("the SBOM travels with push and pull, through the referrers API and the .sbom tag")
    func travels() throws {
        let store = makeTemporaryDirectory("sbom-store")
        let digest = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store]).lastLine
        #expect(try imgbuild(["sbom", "hello:1.0.0", "--store", store]).status == 0)
        let server = try ServedRegistry()
        defer { server.stop() }
        #expect(try imgbuild(["push", "hello:1.0.0", server.url + "/hello", "--store", store]).status == 0)
        let listing = try http("GET", server.url + "/v2/hello/referrers/\(digest)?artifactType=application/spdx%2Bjson")
        #expect(listing.status == 200 && listing.body.contains("application/spdx+json"), "\(listing.body)")
        let registry = try DistributionRegistry()
        defer { registry.stop() }
        #expect(try imgbuild(["push", "hello:1.0.0", registry.url + "/hello", "--store", store]).status == 0)
        #expect(try http("GET", registry.url + "/v2/hello/tags/list").body.contains("sha256-\(digest.dropFirst(7)).sbom"))
        let pulled = makeTemporaryDirectory("sbom-pulled")
        #expect(try imgbuild(["pull", registry.url + "/hello:1.0.0", "--store", pulled]).status == 0)
        #expect(try document(store: pulled, digest: digest).document["spdxVersion"] as? String == "SPDX-2.3")
    }

    @Test("the hello example's SBOM passes the SPDX project's validator, and sbom --print writes the document alone on stdout")
    func spdxValidator() throws {
        let store = makeTemporaryDirectory("sbom-store")
        #expect(try imgbuild(["build", repositoryRoot + "/Imagefiles/hello", "--store", store]).status == 0)
        try expectValidSBOM(store: store, reference: "hello:1.0.0", packages: ["busybox-static"])
    }
}

/// Makes the image's SBOM with `sbom --print` and checks that standard output is that one JSON document,
/// that the SPDX project's `pyspdxtools` accepts it, and that it lists `packages`.
func expectValidSBOM(store: String, reference: String, packages: [String]) throws {
    let printed = try imgbuild(["sbom", reference, "--print", "--store", store])
    #expect(printed.status == 0 && printed.stderr.contains("sbom of "), "\(printed.stderr)")
    let path = makeTemporaryDirectory("sbom-doc") + "/sbom.spdx.json"
    write(printed.stdout, to: path)
    let parsed = try run("/usr/bin/python3", ["-m", "json.tool", path])
    #expect(parsed.status == 0, "stdout is one JSON document: \(parsed.stderr)")
    let validated = try run(attestationTool("pyspdxtools"), ["-i", path])
    #expect(validated.status == 0 && !validated.stderr.contains("invalid"), "\(validated.stdout)\(validated.stderr)")
    let document = try JSONSerialization.jsonObject(with: Data(printed.stdout.utf8)) as? [String: Any] ?? [:]
    let listed = Set((document["packages"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
    #expect(listed.isSuperset(of: packages), "packages listed: \(listed)")
}
