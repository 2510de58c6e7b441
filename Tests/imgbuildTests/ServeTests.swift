import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// `imgbuild serve` on 127.0.0.1 over a store of its own, stopped by the test.
final class ServedRegistry {
    let port = freePort()
    let store: String
    private var process: BackgroundProcess!

    var url: String { "http://127.0.0.1:\(port)" }

    init(arguments: [String] = [], store: String = makeTemporaryDirectory("served") + "/store") throws {
        self.store = store
        process = try BackgroundProcess(imgbuildBinary, ["serve", "--listen", "127.0.0.1:\(port)", "--store", store] + arguments,
                                        log: store + "-serve.log")
        try waitForPort(port)
    }

    func stop() { process.stop() }

    /// Sends SIGTERM, as an operator or a service manager stops the server.
    func terminate() { kill(process.process.processIdentifier, SIGTERM) }

    /// Whether the server has exited within `seconds` (a hang shows as false, not as a stuck test).
    func exited(within seconds: Int) -> Bool {
        for _ in 0..<(seconds * 20) {
            if !process.process.isRunning { return true }
            usleep(50_000)
        }
        return !process.process.isRunning
    }
}

/// An HTTP exchange through curl: status, headers (lower-cased names), body.
struct Exchange {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// Sends one request with curl (`--path-as-is`, so `..` reaches the server as written).
func http(_ method: String, _ url: String, headers: [String: String] = [:], body: String? = nil, bodyFile: String? = nil) throws -> Exchange {
    var arguments = ["-s", "-i", "--path-as-is", "-X", method, url]
    if method == "HEAD" { arguments = ["-s", "-I", "--path-as-is", url] }
    for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
    if let body { arguments += ["--data-binary", body] }
    if let bodyFile { arguments += ["--data-binary", "@" + bodyFile] }
    let result = try run("/usr/bin/curl", arguments)
    var text = result.stdout
    // Skip "100 Continue" preambles.
    while text.hasPrefix("HTTP/1.1 100"), let end = text.range(of: "\r\n\r\n") { text = String(text[end.upperBound...]) }
    guard let headEnd = text.range(of: "\r\n\r\n") else { return Exchange(status: 0, headers: [:], body: text) }
    let lines = text[..<headEnd.lowerBound].split(separator: "\r\n")
    let status = Int(lines.first?.split(separator: " ")[1] ?? "0") ?? 0
    var fields: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return Exchange(status: status, headers: fields, body: String(text[headEnd.upperBound...]))
}

func sha256(_ text: String) -> String {
    let path = makeTemporaryDirectory("sum") + "/data"
    write(text, to: path)
    return "sha256:" + (try! run("/usr/bin/sha256sum", [path]).stdout.prefix(64))
}

@Suite("imgbuild serve", .mayBlock)
struct ServeTests {
    func builtImage(_ seed: String, version: String = "1.0.0") throws -> (store: String, digest: String) {
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", makeSmallContext(seed: seed, name: "team/app", version: version, bigFileMiB: 2), "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        return (store, build.lastLine)
    }

    @Test("skopeo copies in and out with the same digest; imgbuild push and pull too; immutability seen by both")
    func roundTrips() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let (store, digest) = try builtImage("serve")
        let layout = makeTemporaryDirectory("layout") + "/oci"
        #expect(try imgbuild(["export", "team/app:1.0.0", "oci:" + layout, "--store", store]).status == 0)
        let remote = "docker://127.0.0.1:\(server.port)/team/app:1.0.0"
        let copyIn = try run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "oci:\(layout):1.0.0", remote])
        #expect(copyIn.status == 0, "\(copyIn.stderr)")
        let out = makeTemporaryDirectory("out") + "/oci"
        let copyOut = try run("/usr/bin/skopeo", ["copy", "--src-tls-verify=false", remote, "oci:\(out):back"])
        #expect(copyOut.status == 0, "\(copyOut.stderr)")
        #expect(try run("/usr/bin/skopeo", ["inspect", "oci:\(out):back"]).stdout.contains("\"Digest\": \"\(digest)\""))

        #expect(try imgbuild(["push", "team/app:1.0.0", server.url + "/mirror/app", "--store", store]).lastLine == digest)
        let pulled = makeTemporaryDirectory("pulled") + "/store"
        #expect(try imgbuild(["pull", server.url + "/mirror/app:1.0.0", "--store", pulled]).lastLine == digest)
        #expect(try imgbuild(["fsck", "--store", pulled]).status == 0)
        #expect(try imgbuild(["fsck", "--store", server.store]).status == 0)

        // Another image as the same version: refused by the server (skopeo) and by imgbuild.
        let (otherStore, otherDigest) = try builtImage("other")
        let otherLayout = makeTemporaryDirectory("layout") + "/oci"
        #expect(try imgbuild(["export", "team/app:1.0.0", "oci:" + otherLayout, "--store", otherStore]).status == 0)
        let refused = try run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "oci:\(otherLayout):1.0.0", remote])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("versions are immutable"), "\(refused.stderr)")
        let pushRefused = try imgbuild(["push", "team/app:1.0.0", server.url + "/team/app", "--store", otherStore])
        #expect(pushRefused.status != 0 && pushRefused.stderr.contains("versions are immutable"))
        #expect(try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", remote]).stdout.contains(digest))
        _ = otherDigest
        // A mutable tag is refused.
        let latest = try run("/usr/bin/skopeo", ["copy", "--dest-tls-verify=false", "oci:\(layout):1.0.0", "docker://127.0.0.1:\(server.port)/team/app:latest"])
        #expect(latest.status != 0 && latest.stderr.contains("'latest' is not a version"))
    }

    @Test("every endpoint, positive and negative")
    func endpoints() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let base = server.url + "/v2"
        #expect(try http("GET", base + "/").status == 200)

        // Monolithic upload, HEAD, GET, Range.
        let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        let configDigest = sha256(config)
        let mono = try http("POST", base + "/app/blobs/uploads/?digest=\(configDigest)", headers: ["Content-Type": "application/octet-stream"], body: config)
        #expect(mono.status == 201 && mono.headers["docker-content-digest"] == configDigest)
        let head = try http("HEAD", base + "/app/blobs/\(configDigest)")
        #expect(head.status == 200 && head.headers["content-length"] == String(config.utf8.count))
        #expect(try http("GET", base + "/app/blobs/\(configDigest)").body == config)
        let partial = try http("GET", base + "/app/blobs/\(configDigest)", headers: ["Range": "bytes=2-15"])
        #expect(partial.status == 206 && partial.body == String(config.dropFirst(2).prefix(14)))
        #expect(partial.headers["content-range"] == "bytes 2-15/\(config.utf8.count)")
        #expect(try http("GET", base + "/app/blobs/\(configDigest)", headers: ["Range": "bytes=5000-6000"]).status == 416)
        let unknownBlob = try http("HEAD", base + "/app/blobs/sha256:" + String(repeating: "0", count: 64))
        #expect(unknownBlob.status == 404)
        let badDigest = try http("GET", base + "/app/blobs/sha256:xyz")
        #expect(badDigest.status == 400 && badDigest.body.contains("DIGEST_INVALID"))

        // Chunked upload: POST, PATCH with Content-Range, a wrong range (416), status, PUT.
        let layer = String(repeating: "layer-bytes-", count: 1000)
        let layerDigest = sha256(layer)
        let start = try http("POST", base + "/app/blobs/uploads/")
        #expect(start.status == 202)
        let location = server.url + (start.headers["location"] ?? "")
        let half = layer.utf8.count / 2
        let first = try http("PATCH", location, headers: ["Content-Type": "application/octet-stream", "Content-Range": "0-\(half - 1)"],
                             body: String(layer.prefix(half)))
        #expect(first.status == 202 && first.headers["range"] == "0-\(half - 1)")
        let wrong = try http("PATCH", location, headers: ["Content-Range": "0-10"], body: "01234567890")
        #expect(wrong.status == 416 && wrong.body.contains("BLOB_UPLOAD_INVALID"))
        let status = try http("GET", location)
        #expect(status.status == 204 && status.headers["range"] == "0-\(half - 1)")
        let badClose = try http("PUT", location + "?digest=sha256:" + String(repeating: "1", count: 64), body: String(layer.dropFirst(half)))
        #expect(badClose.status == 400 && badClose.body.contains("DIGEST_INVALID"))
        #expect(try http("HEAD", base + "/app/blobs/sha256:" + String(repeating: "1", count: 64)).status == 404, "an unverified blob became visible")
        // Again, correctly.
        let again = try http("POST", base + "/app/blobs/uploads/")
        let location2 = server.url + (again.headers["location"] ?? "")
        #expect(try http("PATCH", location2, body: String(layer.prefix(half))).status == 202)
        let close = try http("PUT", location2 + "?digest=\(layerDigest)", body: String(layer.dropFirst(half)))
        #expect(close.status == 201 && close.headers["docker-content-digest"] == layerDigest)
        // Cancel a session.
        let cancel = try http("POST", base + "/app/blobs/uploads/")
        let location3 = server.url + (cancel.headers["location"] ?? "")
        #expect(try http("DELETE", location3).status == 204)
        let gone = try http("GET", location3)
        #expect(gone.status == 404 && gone.body.contains("BLOB_UPLOAD_UNKNOWN"))
        // Cross-repository mount.
        let mount = try http("POST", base + "/other/blobs/uploads/?mount=\(layerDigest)&from=app")
        #expect(mount.status == 201 && mount.headers["location"] == "/v2/other/blobs/\(layerDigest)")

        // Manifests.
        let manifest = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(configDigest)","size":\#(config.utf8.count)},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\#(layerDigest)","size":\#(layer.utf8.count)}]}"#
        let manifestDigest = sha256(manifest)
        let type = ["Content-Type": "application/vnd.oci.image.manifest.v1+json"]
        let missing = manifest.replacingOccurrences(of: layerDigest, with: "sha256:" + String(repeating: "2", count: 64))
        #expect(try http("PUT", base + "/app/manifests/1.0.0", headers: type, body: missing).body.contains("MANIFEST_BLOB_UNKNOWN"))
        let invalid = try http("PUT", base + "/app/manifests/1.0.0", headers: type, body: "{not json")
        #expect(invalid.status == 400 && invalid.body.contains("MANIFEST_INVALID"))
        let bigPath = makeTemporaryDirectory("big") + "/manifest.json"
        write(String(repeating: " ", count: 5 << 20), to: bigPath)
        #expect(try http("PUT", base + "/app/manifests/1.0.0", headers: type, bodyFile: bigPath).status == 413)
        let put = try http("PUT", base + "/app/manifests/1.0.0_build.3", headers: type, body: manifest)
        #expect(put.status == 201 && put.headers["docker-content-digest"] == manifestDigest)
        #expect(try http("PUT", base + "/app/manifests/1.0.0_build.3", headers: type, body: manifest).status == 201, "the same digest again is idempotent")
        let byTag = try http("GET", base + "/app/manifests/1.0.0_build.3")
        #expect(byTag.status == 200 && byTag.body == manifest && byTag.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json")
        #expect(try http("HEAD", base + "/app/manifests/\(manifestDigest)").headers["docker-content-digest"] == manifestDigest)
        #expect(try http("GET", base + "/app/manifests/9.9.9").status == 404)
        let other = manifest.replacingOccurrences(of: #""layers":["#, with: #""annotations":{"x":"y"},"layers":["#)
        let moved = try http("PUT", base + "/app/manifests/1.0.0_build.3", headers: type, body: other)
        #expect(moved.status == 409 && moved.body.contains("TAG_INVALID") && moved.body.contains("versions are immutable"))
        let latest = try http("PUT", base + "/app/manifests/latest", headers: type, body: other)
        #expect(latest.status == 400 && latest.body.contains("TAG_INVALID"))
        #expect(try imgbuild(["tags", "app", "--store", server.store]).stdout == "1.0.0+build.3 \(manifestDigest)\n")

        // An image index over the manifest, by digest and by version.
        let index = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(manifestDigest)","size":\#(manifest.utf8.count),"platform":{"architecture":"amd64","os":"linux"}}]}"#
        let indexDigest = sha256(index)
        let indexType = ["Content-Type": "application/vnd.oci.image.index.v1+json"]
        #expect(try http("PUT", base + "/app/manifests/\(indexDigest)", headers: indexType, body: index).status == 201)
        #expect(try http("PUT", base + "/app/manifests/1.1.0", headers: indexType, body: index).status == 201)
        let indexGet = try http("GET", base + "/app/manifests/1.1.0")
        #expect(indexGet.headers["content-type"] == "application/vnd.oci.image.index.v1+json" && indexGet.headers["docker-content-digest"] == indexDigest)
        let dangling = index.replacingOccurrences(of: manifestDigest, with: "sha256:" + String(repeating: "3", count: 64))
        #expect(try http("PUT", base + "/app/manifests/1.2.0", headers: indexType, body: dangling).body.contains("MANIFEST_BLOB_UNKNOWN"))
        #expect(try http("PUT", base + "/app/manifests/1.3.0", headers: type, body: index).body.contains("MANIFEST_INVALID"), "Content-Type must match")

        // An artifact referring to the image: a non-version tag is allowed for it; the referrers API lists it.
        let emptyDigest = sha256("{}")
        #expect(try http("POST", base + "/app/blobs/uploads/?digest=\(emptyDigest)", body: "{}").status == 201)
        let artifact = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"\#(emptyDigest)","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(manifestDigest)","size":\#(manifest.utf8.count)}}"#
        let artifactDigest = sha256(artifact)
        let tagName = "sha256-" + manifestDigest.dropFirst(7) + ".sbom"
        let artifactPut = try http("PUT", base + "/app/manifests/" + tagName, headers: type, body: artifact)
        #expect(artifactPut.status == 201 && artifactPut.headers["oci-subject"] == manifestDigest)
        let referrers = try http("GET", base + "/app/referrers/\(manifestDigest)")
        #expect(referrers.status == 200 && referrers.body.contains(artifactDigest) && referrers.body.contains("application/vnd.example.sbom"))
        let filtered = try http("GET", base + "/app/referrers/\(manifestDigest)?artifactType=application/vnd.example.other")
        #expect(filtered.headers["oci-filters-applied"] == "artifactType" && !filtered.body.contains(artifactDigest))

        // Tags and catalog with pagination.
        let page = try http("GET", base + "/app/tags/list?n=2")
        #expect(page.body == #"{"name":"app","tags":["1.0.0_build.3","1.1.0"]}"#)
        #expect(page.headers["link"] == "</v2/app/tags/list?n=2&last=1.1.0>; rel=\"next\"")
        #expect(try http("GET", base + "/app/tags/list?n=2&last=1.1.0").body == #"{"name":"app","tags":["\#(tagName)"]}"#)
        #expect(try http("GET", base + "/_catalog").body == #"{"repositories":["app"]}"#)

        // Refusals.
        #expect(try http("DELETE", base + "/app/manifests/\(manifestDigest)").status == 405)
        #expect(try http("DELETE", base + "/app/blobs/\(layerDigest)").status == 405)
        let traversal = try http("GET", base + "/../etc/blobs/\(layerDigest)")
        #expect(traversal.status == 400 || traversal.status == 404)
        let encoded = try http("GET", base + "/app%2F..%2Fx/manifests/1.0.0")
        #expect(encoded.status == 400 && encoded.body.contains("NAME_INVALID"))
        #expect(try http("GET", base + "/Bad_Name!/tags/list").body.contains("NAME_INVALID"))
        #expect(try imgbuild(["fsck", "--store", server.store]).status == 0)
        // One structured line per request.
        let log = try String(contentsOfFile: server.store + "-serve.log", encoding: .utf8)
        #expect(log.contains("method=PUT path=/v2/app/manifests/1.0.0_build.3 status=201"))
        #expect(log.contains("method=DELETE path=/v2/app/blobs/\(layerDigest) status=405"))
    }

    @Test("htpasswd protects writes, reads stay anonymous; --read-only refuses writes")
    func authAndReadOnly() throws {
        let directory = makeTemporaryDirectory("htpasswd")
        let entry = try run("/usr/bin/htpasswd", ["-Bbn", "carol", "pa55word"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        write(entry + "\n", to: directory + "/htpasswd")
        let server = try ServedRegistry(arguments: ["--htpasswd", directory + "/htpasswd"])
        defer { server.stop() }
        let (store, digest) = try builtImage("auth")
        let denied = try http("POST", server.url + "/v2/team/app/blobs/uploads/")
        #expect(denied.status == 401 && denied.headers["www-authenticate"] == "Basic realm=\"imgbuild\"")
        let anonymous = try imgbuild(["push", "team/app:1.0.0", server.url + "/team/app", "--store", store])
        #expect(anonymous.status != 0 && anonymous.stderr.contains("requires a user name and password"))
        let push = try imgbuild(["push", "team/app:1.0.0", server.url + "/team/app", "--store", store],
                                environment: ["IMGBUILD_USERNAME": "carol", "IMGBUILD_PASSWORD": "pa55word"])
        #expect(push.status == 0, "\(push.stderr)")
        let pulled = makeTemporaryDirectory("pulled") + "/store"
        #expect(try imgbuild(["pull", server.url + "/team/app:1.0.0", "--store", pulled]).lastLine == digest, "anonymous reads")
        server.stop()

        let readOnly = try ServedRegistry(arguments: ["--read-only"], store: server.store)
        defer { readOnly.stop() }
        let refused = try http("POST", readOnly.url + "/v2/team/app/blobs/uploads/")
        #expect(refused.status == 405 && refused.body.contains("read-only"))
        #expect(try http("GET", readOnly.url + "/v2/team/app/manifests/1.0.0").status == 200)
    }

    @Test("HTTPS with --tls-cert/--tls-key; clients trust it with --ca-file")
    func tls() throws {
        let directory = makeTemporaryDirectory("serve-tls")
        let made = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                                                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", directory + "/key.pem", "-out", directory + "/cert.pem"])
        #expect(made.status == 0)
        let server = try ServedRegistry(arguments: ["--tls-cert", directory + "/cert.pem", "--tls-key", directory + "/key.pem", "--quiet"])
        defer { server.stop() }
        let (store, digest) = try builtImage("tls")
        let target = "https://127.0.0.1:\(server.port)/team/app"
        #expect(try imgbuild(["push", "team/app:1.0.0", target, "--ca-file", directory + "/cert.pem", "--store", store]).lastLine == digest)
        #expect(try run("/usr/bin/skopeo", ["inspect", "--cert-dir", directory, "--tls-verify=false", "docker://127.0.0.1:\(server.port)/team/app:1.0.0"]).stdout.contains(digest))
        #expect(try http("GET", "http://127.0.0.1:\(server.port)/v2/").status != 200, "plain HTTP must not be served on the TLS port")
    }

    @Test("a body shorter than its Content-Length leaves nothing half-written")
    func shortBody() throws {
        let server = try ServedRegistry(arguments: ["--idle-timeout", "2"])
        defer { server.stop() }
        let start = try http("POST", server.url + "/v2/short/blobs/uploads/")
        let location = start.headers["location"] ?? ""
        #expect(try http("PATCH", server.url + location, body: "0123456789").headers["range"] == "0-9")
        // 100 bytes announced, 40 sent, then the client stops writing.
        let script = """
        import socket
        s = socket.create_connection(("127.0.0.1", \(server.port)))
        s.sendall(b"PATCH \(location) HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 100\\r\\n\\r\\n" + b"x" * 40)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        try:
            print(s.recv(4096)[:12])
        except Exception as e:
            print("error", e)
        """
        _ = try run("/usr/bin/env", ["python3", "-c", script])
        let status = try http("GET", server.url + location)
        #expect(status.status == 204 && status.headers["range"] == "0-9", "the partial chunk was kept: \(status.headers)")
        let digest = sha256("0123456789")
        #expect(try http("PUT", server.url + location + "?digest=\(digest)").status == 201)
    }

    @Test("an idle connection that never finishes its request is closed (slowloris)")
    func slowloris() throws {
        let server = try ServedRegistry(arguments: ["--idle-timeout", "2"])
        defer { server.stop() }
        let script = """
        import socket, sys, time
        s = socket.create_connection(("127.0.0.1", \(server.port)))
        s.sendall(b"GET /v2/ HTTP/1.1\\r\\nHost: x\\r\\n")
        s.settimeout(15)
        start = time.time()
        data = s.recv(4096)
        print("closed" if data == b"" or b"408" in data or b"400" in data else "answered", round(time.time() - start))
        """
        let result = try run("/usr/bin/env", ["python3", "-c", script])
        #expect(result.stdout.hasPrefix("closed"), "\(result.stdout) \(result.stderr)")
        #expect(try http("GET", server.url + "/v2/").status == 200, "the server still serves others")
    }

    @Test("a bounded load: parallel pushes and blob GETs, zero errors, fsck clean")
    func load() throws {
        let server = try ServedRegistry(arguments: ["--quiet"])
        defer { server.stop() }
        var images: [(store: String, digest: String, name: String)] = []
        for index in 0..<6 {
            let (store, digest) = try builtImage("load \(index)")
            images.append((store, digest, "load/app\(index)"))
        }
        // 6 pushes at once.
        let pushes = images.map { image -> Process in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: imgbuildBinary)
            process.arguments = ["push", "team/app:1.0.0", server.url + "/" + image.name, "--store", image.store, "-q"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            return process
        }
        for process in pushes { try process.run() }
        for process in pushes { process.waitUntilExit() }
        #expect(pushes.allSatisfy { $0.terminationStatus == 0 })
        // 240 blob GETs, 12 at a time, each checked against its digest.
        let layers = try layerDigests(store: images[0].store, manifest: images[0].digest)
        let urls = (0..<40).flatMap { _ in layers.map { "\(server.url)/v2/\(images[0].name)/blobs/\($0)" } } + (0..<80).map { _ in "\(server.url)/v2/" }
        let list = makeTemporaryDirectory("urls") + "/list"
        write(urls.joined(separator: "\n") + "\n", to: list)
        let gets = try run("/bin/sh", ["-c", "xargs -P 12 -n 1 curl -s -f -o /dev/null -w '%{http_code}\\n' < \(list)"])
        let codes = gets.stdout.split(separator: "\n")
        #expect(codes.count == urls.count && codes.allSatisfy { $0 == "200" }, "\(Dictionary(grouping: codes, by: { $0 }).mapValues(\.count))")
        // Pulls verify every byte.
        for image in images.prefix(3) {
            #expect(try imgbuild(["pull", server.url + "/" + image.name + "@" + image.digest, "--store", makeTemporaryDirectory("p") + "/store"]).lastLine == image.digest)
        }
        #expect(try imgbuild(["fsck", "--store", server.store]).status == 0)
    }
}

@Suite("imgbuild serve under concurrency and shutdown", .mayBlock)
struct ServeConcurrencyTests {
    /// Runs the same curl command line in `count` parallel processes; returns the HTTP status codes.
    func parallel(_ count: Int, _ arguments: (Int) -> [String]) throws -> [String] {
        let processes = (0..<count).map { index -> (Process, Pipe) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}"] + arguments(index)
            let out = Pipe()
            process.standardOutput = out
            return (process, out)
        }
        for (process, _) in processes { try process.run() }
        return processes.map { process, out in
            let code = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return code
        }
    }

    @Test("8 concurrent uploads of one blob all succeed; 8 concurrent PUTs of one version: exactly one digest wins")
    func races() throws {
        let server = try ServedRegistry(arguments: ["--quiet"])
        defer { server.stop() }
        let base = server.url + "/v2/race"
        let blob = String(repeating: "same bytes ", count: 50_000)
        let blobPath = makeTemporaryDirectory("blob") + "/data"
        write(blob, to: blobPath)
        let blobDigest = sha256(blob)
        let uploads = try parallel(8) { _ in ["-X", "POST", "--data-binary", "@" + blobPath, base + "/blobs/uploads/?digest=\(blobDigest)"] }
        #expect(uploads.allSatisfy { $0 == "201" }, "\(uploads)")
        #expect(try http("GET", base + "/blobs/\(blobDigest)").body == blob)

        let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        let configDigest = sha256(config)
        #expect(try http("POST", base + "/blobs/uploads/?digest=\(configDigest)", body: config).status == 201)
        let manifests = (0..<8).map { index -> String in
            let text = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(configDigest)","size":\#(config.utf8.count)},"layers":[],"annotations":{"n":"\#(index)"}}"#
            let path = makeTemporaryDirectory("m") + "/manifest.json"
            write(text, to: path)
            return path
        }
        let puts = try parallel(8) { index in
            ["-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.manifest.v1+json", "--data-binary", "@" + manifests[index], base + "/manifests/2.0.0"]
        }
        #expect(puts.filter { $0 == "201" }.count == 1, "\(puts)")
        #expect(puts.filter { $0 == "409" }.count == 7, "\(puts)")
        let winner = puts.firstIndex(of: "201").map { try! String(contentsOfFile: manifests[$0], encoding: .utf8) }
        #expect(try http("GET", base + "/manifests/2.0.0").body == winner)
        #expect(try imgbuild(["fsck", "--store", server.store]).status == 0)
    }

    @Test("an upload a client abandons is removed by gc once the server has stopped")
    func abandonedUpload() throws {
        let server = try ServedRegistry(arguments: ["--quiet"])
        let start = try http("POST", server.url + "/v2/gone/blobs/uploads/")
        #expect(start.status == 202)
        #expect(try http("PATCH", server.url + (start.headers["location"] ?? ""), body: "half an upload").status == 202)
        server.stop()
        let gc = try imgbuild(["gc", "--store", server.store])
        #expect(gc.status == 0 && gc.stdout.contains("removed 1 temporary file(s)"), "\(gc.stdout)\(gc.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: server.store + "/uploads"))?.isEmpty ?? true)
    }

    @Test("SIGTERM finishes the requests in flight, then the server stops")
    func gracefulShutdown() throws {
        let server = try ServedRegistry(arguments: ["--quiet"])
        defer { server.stop() }
        // 32 MiB: more than the kernel's socket buffers hold, so the server is still writing while the
        // client pauses.
        let blobPath = makeTemporaryDirectory("blob") + "/data"
        try TestContext.mixedData(megabytes: 32).write(to: URL(fileURLWithPath: blobPath))
        let digest = "sha256:" + (try run("/usr/bin/sha256sum", [blobPath]).stdout.prefix(64))
        #expect(try run("/usr/bin/curl", ["-s", "-f", "-X", "POST", "--data-binary", "@" + blobPath, server.url + "/v2/slow/blobs/uploads/?digest=\(digest)"]).status == 0)
        // The client reads 64 KiB, says "started", pauses 2 s, then reads the rest and checks its digest.
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", "-c", """
        import hashlib, socket, sys, time
        s = socket.create_connection(("127.0.0.1", \(server.port)))
        s.sendall(b"GET /v2/slow/blobs/\(digest) HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        data = b""
        while len(data) < 65536:
            data += s.recv(65536)
        print("started", flush=True)
        time.sleep(2)
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
            if b"\\r\\n\\r\\n" in data and len(data.split(b"\\r\\n\\r\\n", 1)[1]) >= \((32 << 20)):
                break
        body = data.split(b"\\r\\n\\r\\n", 1)[1]
        print("sha256:" + hashlib.sha256(body).hexdigest(), len(body))
        """]
        let out = Pipe()
        client.standardOutput = out
        try client.run()
        var seen = ""
        while !seen.contains("started") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        #expect(seen.contains("started"))
        let pid = try run("/bin/sh", ["-c", "pgrep -f 'imgbuild serve --listen 127.0.0.1:\(server.port)'"]).stdout.split(separator: "\n").first.map(String.init)
        #expect(pid != nil)
        if let pid, let value = Int32(pid) { kill(value, SIGTERM) }
        let rest = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        #expect(rest.contains("\(digest) \(32 << 20)"), "the response in flight was cut: \(rest)")
        // New connections are refused once it has stopped.
        usleep(500_000)
        #expect(try run("/usr/bin/curl", ["-s", "-f", "--max-time", "2", server.url + "/v2/"]).status != 0)
    }
}
