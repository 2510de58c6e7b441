import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// `imgbuild serve` against clients that do not play by the rules, over raw sockets. After each attack
/// the server must still answer and its store must pass fsck.
@Suite("imgbuild serve against hostile clients", .mayBlock)
struct HostileRegistryTests {
    static let emptyDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    func expectHealthy(_ server: ServedRegistry, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(server.answers(), "the server stopped answering", sourceLocation: sourceLocation)
        let fsck = try imgbuild(["fsck", "--store", server.store])
        #expect(fsck.status == 0, "fsck: \(fsck.stdout)\(fsck.stderr)", sourceLocation: sourceLocation)
    }

    /// Opens an upload session; returns its Location path.
    func openSession(_ server: ServedRegistry, _ name: String) throws -> String {
        let start = try http("POST", server.url + "/v2/\(name)/blobs/uploads/")
        #expect(start.status == 202)
        return start.headers["location"] ?? ""
    }

    @Test("a zero-byte blob is pushed, HEADed, fetched, referenced and range-read like any other")
    func emptyBlob() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let pushed = try server.raw("POST /v2/empty/blobs/uploads/?digest=\(Self.emptyDigest) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        #expect(pushed?.status == 201)
        for _ in 0..<2 {  // twice: a crash would show on the second
            let head = try server.raw("HEAD /v2/empty/blobs/\(Self.emptyDigest) HTTP/1.1\r\nHost: x\r\n\r\n", head: true)
            #expect(head?.status == 200 && head?.headers["content-length"] == "0", "\(String(describing: head))")
            let get = try server.raw("GET /v2/empty/blobs/\(Self.emptyDigest) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(get?.status == 200 && get?.body.isEmpty == true && get?.headers["docker-content-digest"] == Self.emptyDigest)
        }
        let range = try server.raw("GET /v2/empty/blobs/\(Self.emptyDigest) HTTP/1.1\r\nHost: x\r\nRange: bytes=0-\r\n\r\n")
        #expect(range?.status == 416 && range?.headers["content-range"] == "bytes */0")
        // A chunked session that ends with no bytes at all.
        let location = try openSession(server, "empty")
        #expect(try http("PUT", server.url + location + "?digest=\(Self.emptyDigest)").status == 201)
        // An artifact whose config is the empty blob (as the OCI spec's empty descriptors often are).
        let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        #expect(try http("POST", server.url + "/v2/empty/blobs/uploads/?digest=\(sha256(config))", body: config).status == 201)
        let manifest = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(sha256(config))","size":\#(config.utf8.count)},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\#(Self.emptyDigest)","size":0}]}"#
        let put = try http("PUT", server.url + "/v2/empty/manifests/1.0.0", headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"], body: manifest)
        #expect(put.status == 201, "\(put.body)")
        server.stop()
        let restarted = try ServedRegistry(store: server.store)
        defer { restarted.stop() }
        #expect(try restarted.raw("GET /v2/empty/blobs/\(Self.emptyDigest) HTTP/1.1\r\nHost: x\r\n\r\n")?.status == 200)
        try expectHealthy(restarted)
    }

    @Test("a PUT cannot commit while a PATCH still streams into the same upload, and an aborted PATCH changes nothing committed")
    func interleavedUpload() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let first = Data("0123456789".utf8), rest = Data(repeating: UInt8(ascii: "x"), count: 90)
        let location = try openSession(server, "race")
        let patch = try RawConnection(port: server.port)
        patch.send("PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        patch.send(first)
        // Wait until the server has written the first ten bytes.
        var stands = ""
        for _ in 0..<100 where stands != "0-9" {
            stands = try http("GET", server.url + location).headers["range"] ?? ""
            usleep(50_000)
        }
        #expect(stands == "0-9")
        let early = try http("PUT", server.url + location + "?digest=\(sha256("0123456789"))")
        #expect(early.status == 409, "a second writer was let in: \(early.status) \(early.body)")
        #expect(try http("DELETE", server.url + location).status == 409)
        patch.send(rest)
        let patched = patch.readAnswer()
        #expect(patched?.status == 202 && patched?.headers["range"] == "0-99")
        let whole = "0123456789" + String(repeating: "x", count: 90)
        #expect(try http("PUT", server.url + location + "?digest=\(sha256(whole))").status == 201)
        #expect(try http("GET", server.url + "/v2/race/blobs/\(sha256(whole))").body == whole)
        #expect(try http("HEAD", server.url + "/v2/race/blobs/\(sha256("0123456789"))").status == 404)

        // A PATCH that is aborted half-way leaves the session where it stood, and nothing committed moves.
        let second = try openSession(server, "race")
        #expect(try http("PATCH", server.url + second, body: "abc").status == 202)
        let aborted = try RawConnection(port: server.port)
        aborted.send("PATCH \(second) HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        aborted.send(Data(repeating: 0x41, count: 100))
        for _ in 0..<100 where (try http("GET", server.url + second).headers["range"]) != "0-102" { usleep(50_000) }
        #expect(try http("PUT", server.url + second + "?digest=\(sha256("abc"))").status == 409)
        aborted.abort()
        var after = ""
        for _ in 0..<100 where after != "0-2" {
            after = try http("GET", server.url + second).headers["range"] ?? ""
            usleep(50_000)
        }
        #expect(after == "0-2", "the aborted chunk was kept")
        #expect(try http("PUT", server.url + second + "?digest=\(sha256("abc"))").status == 201)
        #expect(try http("GET", server.url + "/v2/race/blobs/\(sha256(whole))").body == whole)
        try expectHealthy(server)
    }

    @Test("malformed Content-Range, Range, digests, names and methods get clear 4xx answers, never a crash")
    func malformedHeaders() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let location = try openSession(server, "bad")
        for header in ["0-/", "-", "/", "0-", "5-4", "a-b", "99999999999999999999-1", "bytes 0-/", "bytes 0-9223372036854775807/*"] {
            let answer = try server.raw("PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Range: \(header)\r\nContent-Length: 1\r\n\r\nA")
            #expect(answer?.status == 400, "Content-Range '\(header)': \(String(describing: answer?.status))")
            #expect(server.answers(), "Content-Range '\(header)' took the server down")
        }
        // A last chunk that does not continue the upload: 416 with where it stands, not a digest error.
        #expect(try http("PATCH", server.url + location, body: "0123").status == 202)
        let gap = try server.raw("PUT \(location)?digest=\(sha256("0123zz")) HTTP/1.1\r\nHost: x\r\nContent-Range: 6-7\r\nContent-Length: 2\r\n\r\nzz")
        #expect(gap?.status == 416 && gap?.headers["range"] == "0-3", "\(String(describing: gap))")
        let disagrees = try server.raw("PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Range: 4-9\r\nContent-Length: 2\r\n\r\nzz")
        #expect(disagrees?.status == 416)
        // A chunked body shorter than its Content-Range is refused and leaves the session where it stood.
        let short = try server.raw("PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Range: 4-9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n")
        #expect(short?.status == 400, "\(String(describing: short?.status))")
        #expect(try http("GET", server.url + location).headers["range"] == "0-3")
        // A transfer coding other than chunked is refused, not stored still encoded.
        let gzipped = try server.raw("PATCH \(location) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n")
        #expect(gzipped.map { $0.status == 501 || $0.status == 400 } ?? true, "\(String(describing: gzipped?.status))")
        #expect(try http("GET", server.url + location).headers["range"] == "0-3")
        // A well-formed digest of another algorithm names nothing here: 404, not 400.
        let sha512 = "sha512:" + String(repeating: "ab", count: 64)
        #expect(try http("GET", server.url + "/v2/bad/blobs/\(sha512)").status == 404)
        #expect(try http("HEAD", server.url + "/v2/bad/blobs/\(sha512)").status == 404)
        #expect(try http("GET", server.url + "/v2/bad/blobs/sha256:nothex").status == 400)
        // 405 answers say what is allowed.
        let delete = try http("DELETE", server.url + "/v2/bad/blobs/\(sha256("x"))")
        #expect(delete.status == 405 && delete.headers["allow"] == "GET, HEAD", "\(delete.headers)")
        #expect(try http("POST", server.url + "/v2/bad/tags/list").headers["allow"] == "GET, HEAD")
        // Range: the RFC's rules — an end past the blob is clamped, a start past it is refused.
        let body = "0123456789"
        #expect(try http("POST", server.url + "/v2/bad/blobs/uploads/?digest=\(sha256(body))", body: body).status == 201)
        let clamped = try http("GET", server.url + "/v2/bad/blobs/\(sha256(body))", headers: ["Range": "bytes=5-100"])
        #expect(clamped.status == 206 && clamped.body == "56789" && clamped.headers["content-range"] == "bytes 5-9/10")
        #expect(try http("GET", server.url + "/v2/bad/blobs/\(sha256(body))", headers: ["Range": "bytes=10-"]).status == 416)
        // Oversized and odd request lines and headers.
        let long = String(repeating: "a/", count: 4000)
        #expect((try server.raw("GET /v2/\(long)manifests/1.0.0 HTTP/1.1\r\nHost: x\r\n\r\n")?.status ?? 400) >= 400)
        _ = try server.raw("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "b", count: 200_000))\r\n\r\n")
        _ = try server.raw("GARBAGE\r\n\r\n")
        _ = try server.raw("GET /v2/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n")
        _ = try server.raw("POST /v2/bad/blobs/uploads/?digest=\(sha256("x")) HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n")
        try expectHealthy(server)
    }

    @Test("upload sessions belong to their repository and are bounded in number")
    func sessionsBound() throws {
        let server = try ServedRegistry(arguments: ["--upload-session-limit", "3"])
        defer { server.stop() }
        let location = try openSession(server, "owner")
        let id = location.split(separator: "/").last.map(String.init) ?? ""
        #expect(try http("PATCH", server.url + "/v2/thief/blobs/uploads/\(id)", body: "x").status == 404)
        #expect(try http("GET", server.url + "/v2/thief/blobs/uploads/\(id)").status == 404)
        #expect(try http("PUT", server.url + "/v2/thief/blobs/uploads/\(id)?digest=\(Self.emptyDigest)").status == 404)
        _ = try openSession(server, "owner")
        _ = try openSession(server, "owner")
        let refused = try http("POST", server.url + "/v2/owner/blobs/uploads/")
        #expect(refused.status == 429 && refused.body.contains("upload sessions are open"), "\(refused.status) \(refused.body)")
        #expect(try http("DELETE", server.url + location).status == 204)
        #expect(try http("POST", server.url + "/v2/owner/blobs/uploads/").status == 202)
        try expectHealthy(server)
    }

    @Test("connections past --max-connections wait for one to close instead of taking the server's files")
    func connectionLimit() throws {
        let server = try ServedRegistry(arguments: ["--max-connections", "4", "--quiet"])
        defer { server.stop() }
        // Four keep-alive connections, each proven admitted by an answer.
        var held: [RawConnection] = []
        for _ in 0..<4 {
            let connection = try RawConnection(port: server.port)
            connection.send("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(connection.readAnswer()?.status == 200)
            held.append(connection)
        }
        let waiting = try RawConnection(port: server.port, timeout: 2)
        waiting.send("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(waiting.readAnswer() == nil, "a fifth connection was served while four were open")
        held.removeFirst()  // closes one: the waiting connection is admitted and answered
        var answer: RawConnection.Answer?
        for _ in 0..<15 where answer == nil { answer = waiting.readAnswer() }
        #expect(answer?.status == 200)
    }

    @Test("a manifest that types a blob as a manifest must point at one; gc is not disabled by a bad node")
    func typedReferences() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        let junk = "this is not JSON"
        for blob in [config, junk] {
            #expect(try http("POST", server.url + "/v2/typed/blobs/uploads/?digest=\(sha256(blob))", body: blob).status == 201)
        }
        func manifest(_ layerType: String, size: Int) -> String {
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(sha256(config))","size":\#(config.utf8.count)},"layers":[{"mediaType":"\#(layerType)","digest":"\#(sha256(junk))","size":\#(size)}]}"#
        }
        let headers = ["Content-Type": "application/vnd.oci.image.manifest.v1+json"]
        let typedAsManifest = try http("PUT", server.url + "/v2/typed/manifests/1.0.0", headers: headers,
                                       body: manifest("application/vnd.oci.image.manifest.v1+json", size: junk.utf8.count))
        #expect(typedAsManifest.status == 400 && typedAsManifest.body.contains("MANIFEST_INVALID"), "\(typedAsManifest.body)")
        let wrongSize = try http("PUT", server.url + "/v2/typed/manifests/1.0.0", headers: headers,
                                 body: manifest("application/vnd.oci.image.layer.v1.tar", size: 3))
        #expect(wrongSize.status == 400, "\(wrongSize.body)")
        #expect(try http("PUT", server.url + "/v2/typed/manifests/1.0.0", headers: headers,
                         body: manifest("application/vnd.oci.image.layer.v1.tar", size: junk.utf8.count)).status == 201)
        server.stop()
        let gc = try imgbuild(["gc", "--store", server.store])
        #expect(gc.status == 0, "\(gc.stderr)")
    }

    @Test("a client that asks for a blob and never reads it loses its connection after the idle timeout")
    func stalledDownload() throws {
        let server = try ServedRegistry(arguments: ["--idle-timeout", "2", "--max-connections", "1", "--quiet"])
        defer { server.stop() }
        let blob = makeTemporaryDirectory("stall") + "/blob"
        try TestContext.mixedData(megabytes: 16).write(to: URL(fileURLWithPath: blob))
        let digest = "sha256:" + (try run("/usr/bin/sha256sum", [blob]).stdout.prefix(64))
        #expect(try run("/usr/bin/curl", ["-s", "-f", "-X", "POST", "--data-binary", "@" + blob, server.url + "/v2/stall/blobs/uploads/?digest=\(digest)"]).status == 0)
        let stalled = try RawConnection(port: server.port)
        var small: Int32 = 4096
        _ = stalled.withDescriptor { setsockopt($0, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size)) }
        stalled.send("GET /v2/stall/blobs/\(digest) HTTP/1.1\r\nHost: x\r\n\r\n")
        // The only connection slot is held by a client that reads nothing; the next one waits for it.
        let next = try RawConnection(port: server.port, timeout: 2)
        next.send("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        var answer: RawConnection.Answer?
        for _ in 0..<20 where answer == nil { answer = next.readAnswer() }
        #expect(answer?.status == 200, "a client that never reads held the server's only connection")
    }

    @Test("repository names that would land on another repository's folders are refused")
    func reservedNames() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        for name in ["foo/tags", "foo/artifacts", "foo/index.json", "foo/blobs", "a/b/referrers"] {
            let answer = try http("POST", server.url + "/v2/\(name)/blobs/uploads/")
            #expect(answer.status == 400 && answer.body.contains("NAME_INVALID"), "\(name): \(answer.status) \(answer.body)")
        }
        #expect(try http("POST", server.url + "/v2/tags/blobs/uploads/").status == 202, "a first component may be any name")
        try expectHealthy(server)
    }

    @Test("a manifest's config must be an image config, its layers must exist even when one shares the subject's digest, and moving tags must name their subject")
    func manifestContents() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let headers = ["Content-Type": "application/vnd.oci.image.manifest.v1+json"]
        let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
        for blob in [config, "{}"] {
            #expect(try http("POST", server.url + "/v2/c/blobs/uploads/?digest=\(sha256(blob))", body: blob).status == 201)
        }
        func manifest(config: String, layers: String = "[]", subject: String? = nil) -> String {
            #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(sha256(config))","size":\#(config.utf8.count)},"layers":\#(layers)\#(subject.map { #","subject":\#($0)"# } ?? "")}"#
        }
        let emptyConfig = try http("PUT", server.url + "/v2/c/manifests/1.0.0", headers: headers, body: manifest(config: "{}"))
        #expect(emptyConfig.status == 400 && emptyConfig.body.contains("not an image config"), "\(emptyConfig.body)")
        let ghost = "sha256:" + String(repeating: "ab", count: 32)
        let ghostDescriptor = #"{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"\#(ghost)","size":12345}"#
        let hidden = try http("PUT", server.url + "/v2/c/manifests/1.0.1", headers: headers,
                              body: manifest(config: config, layers: "[\(ghostDescriptor)]", subject: ghostDescriptor))
        #expect(hidden.status == 400 && hidden.body.contains("MANIFEST_BLOB_UNKNOWN"), "\(hidden.body)")
        // A referrer may be pushed before its subject, but only under a tag that names that subject.
        let referrer = manifest(config: config, subject: ghostDescriptor)
        #expect(try http("PUT", server.url + "/v2/c/manifests/latest", headers: headers, body: referrer).status == 400)
        #expect(try http("PUT", server.url + "/v2/c/manifests/sha256-\(ghost.dropFirst(7)).sig", headers: headers, body: referrer).status == 201)
        try expectHealthy(server)
    }

    @Test("a read-only server started on the same store leaves the writable server's uploads alone")
    func secondServerKeepsUploads() throws {
        let server = try ServedRegistry()
        defer { server.stop() }
        let location = try openSession(server, "shared")
        #expect(try http("PATCH", server.url + location, body: "0123456789").status == 202)
        let reader = try ServedRegistry(arguments: ["--read-only"], store: server.store)
        defer { reader.stop() }
        let status = try http("GET", server.url + location)
        #expect(status.status == 204 && status.headers["range"] == "0-9", "\(status.status) \(status.headers)")
        #expect(try http("PUT", server.url + location + "?digest=\(sha256("0123456789"))").status == 201)
    }

    @Test("manifest bodies received at once are bounded: a crowd of slow senders gets 429, not gigabytes held")
    func manifestCrowd() throws {
        let server = try ServedRegistry(arguments: ["--quiet"])
        defer { server.stop() }
        var slow: [RawConnection] = []
        for _ in 0..<32 {
            let connection = try RawConnection(port: server.port)
            connection.send("PUT /v2/crowd/manifests/1.0.0 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 4000000\r\n\r\n{")
            slow.append(connection)
        }
        var refused: RawConnection.Answer?
        for _ in 0..<50 where refused?.status != 429 {
            usleep(100_000)
            refused = try server.raw("PUT /v2/crowd/manifests/1.0.0 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1\r\n\r\n{")
        }
        #expect(refused?.status == 429)
        slow.removeAll()
        #expect(server.answers())
    }

    @Test("a serve on another address than loopback refuses to start without a user file")
    func anonymousPushRefused() throws {
        let store = makeTemporaryDirectory("open") + "/store"
        let result = try imgbuild(["serve", "--listen", "0.0.0.0:\(freePort())", "--store", store])
        #expect(result.status != 0 && result.stderr.contains("--htpasswd"), "\(result.stderr)")
    }
}

/// Shutting down against clients that hold requests open.
@Suite("imgbuild serve shutdown against hostile clients", .mayBlock)
struct HostileShutdownTests {
    @Test("an upload cut by the idle timeout does not hold SIGTERM")
    func idleClosedUpload() throws {
        let server = try ServedRegistry(arguments: ["--idle-timeout", "1", "--drain-timeout", "600", "--quiet"])
        defer { server.stop() }
        let location = try http("POST", server.url + "/v2/idle/blobs/uploads/").headers["location"] ?? ""
        let stalled = try RawConnection(port: server.port)
        stalled.send("PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        #expect(stalled.waitForClose(), "the idle timeout did not close the stalled upload")
        server.terminate()
        #expect(server.exited(within: 60), "SIGTERM hung on an upload the idle timeout had closed")
    }

    @Test("a body sent a byte at a time cannot hold SIGTERM past the drain timeout")
    func tricklingBody() throws {
        let server = try ServedRegistry(arguments: ["--drain-timeout", "2", "--quiet"])
        defer { server.stop() }
        let location = try http("POST", server.url + "/v2/trickle/blobs/uploads/").headers["location"] ?? ""
        let trickle = try RawConnection(port: server.port)
        trickle.send("PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        trickle.send("a")
        usleep(300_000)
        server.terminate()
        var exited = false
        for _ in 0..<240 where !exited {  // at most 60 s of trickling, then the test gives up
            trickle.send("a")
            exited = server.exited(within: 0) 
            usleep(250_000)
        }
        #expect(exited, "a trickling client held the server up")
    }
}

/// Password checks that cannot be used to take the server's CPU or to learn user names.
@Suite("imgbuild serve password checks", .mayBlock)
struct PasswordCheckTests {
    @Test("bad passwords: known and unknown users are refused alike, a flood is bounded (429), reads still answer")
    func flood() throws {
        let directory = makeTemporaryDirectory("auth")
        let file = directory + "/htpasswd"
        #expect(try run("/usr/bin/htpasswd", ["-B", "-C", "12", "-b", "-c", file, "pusher", "right"]).status == 0)
        let server = try ServedRegistry(arguments: ["--htpasswd", file, "--quiet"])
        defer { server.stop() }
        let uploads = server.url + "/v2/app/blobs/uploads/"
        #expect(try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-u", "pusher:wrong", uploads]).stdout == "401")
        #expect(try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-u", "nobody:wrong", uploads]).stdout == "401")
        // 48 bad attempts at once: at most 16 wait for bcrypt, the rest are turned away at once.
        var arguments = ["-s", "--parallel", "--parallel-immediate", "--parallel-max", "48", "-X", "POST", "-u", "pusher:wrong"]
        for index in 0..<48 { arguments += ["-o", "/dev/null", "-w", "%{http_code}\n", uploads + "?n=\(index)"] }
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        flood.arguments = arguments
        let out = Pipe()
        flood.standardOutput = out
        flood.standardError = FileHandle.nullDevice
        try flood.run()
        usleep(200_000)
        #expect(server.answers(), "reads stopped answering under a password flood")
        let codes = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
        flood.waitUntilExit()
        #expect(codes.count == 48)
        #expect(codes.allSatisfy { $0 == "401" || $0 == "429" }, "\(codes)")
        #expect(codes.contains("429"), "no attempt was turned away: bcrypt ran for all \(codes.count)")
        let pushed = try run("/usr/bin/curl", ["-s", "-D", "-", "-o", "/dev/null", "-X", "POST", "-u", "pusher:right", uploads])
        #expect(pushed.stdout.hasPrefix("HTTP/1.1 202"))
        // The session's owner can see where it stands; nobody else can.
        let location = pushed.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("location:") }.map { String($0.dropFirst(9)).trimmingCharacters(in: .whitespaces) } ?? ""
        #expect(try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "pusher:right", server.url + location]).stdout == "204")
        #expect(try run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", server.url + location]).stdout == "401")
    }
}
