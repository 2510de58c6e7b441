import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// `fixtures/hostile/raw_backend.py` on a free loopback port, logging every request it receives.
final class RawBackend {
    let port: Int
    let log: String
    private let process: BackgroundProcess

    init(_ mode: String) throws {
        let directory = makeTemporaryDirectory("raw-backend")
        log = directory + "/requests.log"
        let portFile = directory + "/port"
        process = try BackgroundProcess("/usr/bin/python3", [repositoryRoot + "/fixtures/hostile/raw_backend.py", portFile, log, mode],
                                        log: directory + "/stderr.log")
        var found: Int?
        for _ in 0..<200 where found == nil {
            found = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            if found == nil { usleep(25_000) }
        }
        port = found ?? 0
    }

    /// The requests the backend saw, one `METHOD TARGET bodylen=N` each.
    var requests: [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func stop() { process.stop() }
}

/// `imgdeploy proxy` on a free loopback port in front of the given backends.
final class Front {
    let port = freePort()
    let process: BackgroundProcess

    init(backends: [Int], arguments: [String] = []) throws {
        let log = makeTemporaryDirectory("front") + "/front.log"
        process = try BackgroundProcess(imgdeployBinary, ["proxy", "--listen", "127.0.0.1:\(port)"]
                                        + backends.flatMap { ["--backend", "127.0.0.1:\($0)"] } + arguments, log: log)
        try waitForPort(port)
    }

    /// Sends bytes on a fresh connection and reads one answer.
    func send(_ request: String) throws -> RawConnection.Answer? {
        let connection = try RawConnection(port: port)
        connection.send(request)
        return connection.readAnswer()
    }

    /// The resident memory of the front, in KiB.
    var residentKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    func stop() { process.stop() }
}

/// The load balancer's front against clients and backends that do not play by the rules, over raw
/// sockets. Nothing a client sends may reach a backend as a request of its own (smuggling), be lost, or
/// make the front hold memory, descriptors or in-flight counts without bound.
@Suite("imgdeploy front against hostile clients", .mayBlock)
struct HostileFrontTests {
    static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

    @Test("a Connection header that names Content-Length, Transfer-Encoding or Host cannot strip a request's framing")
    func connectionNamesFraming() throws {
        let backend = try RawBackend("cl")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let byLength = try front.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\nContent-Length: \(Self.smuggled.utf8.count)\r\n\r\n" + Self.smuggled)
        #expect(byLength?.status == 200)
        let chunk = String(Self.smuggled.utf8.count, radix: 16)
        let byChunks = try front.send("GET /b HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n\(chunk)\r\n\(Self.smuggled)\r\n0\r\n\r\n")
        #expect(byChunks?.status == 200)
        usleep(300_000)
        let seen = backend.requests
        #expect(!seen.contains { $0.contains("/smuggled") }, "a request was smuggled to the backend: \(seen)")
        #expect(seen.contains("GET /a bodylen=\(Self.smuggled.utf8.count)") && seen.contains("GET /b bodylen=\(Self.smuggled.utf8.count)"), "\(seen)")
    }

    @Test("an instance that sends its answer's head and dies before the body: a GET goes to another instance, a POST gets 502, no client sees half an answer")
    func headThenDeath() throws {
        let dying = try RawBackend("headonly")
        defer { dying.stop() }
        let healthy = try RawBackend("cl")
        defer { healthy.stop() }
        let front = try Front(backends: [dying.port, healthy.port])
        defer { front.stop() }
        for index in 0..<4 {
            let answer = try front.send("GET /\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(answer?.status == 200 && answer.map { String(decoding: $0.body, as: UTF8.self) } == "you asked GET /\(index) bodylen=0",
                    "\(String(describing: answer))")
        }
        for index in 0..<4 {
            let answer = try front.send("POST /p\(index) HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
            #expect(answer?.status == 200 || answer?.status == 502, "\(String(describing: answer))")
            if answer?.status == 200 { #expect(answer.map { String(decoding: $0.body, as: UTF8.self) } == "you asked POST /p\(index) bodylen=1") }
        }
    }

    @Test("an instance that took part of a 300 KB POST and died: 502, and the POST never reaches a second instance; a GET goes on to the healthy one")
    func uploadTakenThenDeath() throws {
        let dying = try RawBackend("takeanddie")
        defer { dying.stop() }
        let healthy = try RawBackend("cl")
        defer { healthy.stop() }
        let front = try Front(backends: [dying.port, healthy.port])
        defer { front.stop() }
        let body = String(repeating: "u", count: 300_000)
        var failed = 0
        for index in 0..<6 {
            let answer = try front.send("POST /up\(index) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
            #expect(answer?.status == 200 || answer?.status == 502, "\(String(describing: answer))")
            if answer?.status == 502 { failed += 1 }
            for round in 0..<2 {
                let get = try front.send("GET /g\(index)-\(round) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(get?.status == 200, "a GET is sent again to the healthy instance: \(String(describing: get))")
            }
        }
        usleep(300_000)
        let taken = Set(dying.requests.filter { $0.hasPrefix("POST") }.map { String($0.split(separator: " ")[1]) })
        let served = Set(healthy.requests.filter { $0.hasPrefix("POST") }.map { String($0.split(separator: " ")[1]) })
        #expect(taken.isDisjoint(with: served), "a POST the dying instance took was sent again: \(taken.intersection(served))")
        #expect(failed == taken.count && failed > 0, "each POST the dying instance took got a 502 (\(failed) for \(taken.sorted()))")
    }

    @Test("an instance whose kernel never acknowledges a byte and then resets or closes: each POST, whole or written in two parts, of 10 KB to 300 KB, reaches the healthy instance once and intact",
          .enabled(if: getuid() == 0, "a network namespace and an iptables rule need root, as CI has"))
    func neverAcknowledged() throws {
        let result = try run("/usr/bin/unshare", ["-n", "/usr/bin/python3", repositoryRoot + "/fixtures/hostile/never_acknowledged.py", imgdeployBinary])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stderr)")
        let requests = object["requests"] as? [[String: Any]] ?? []
        let seen = object["seen"] as? [[String: Any]] ?? []
        #expect(requests.count == 24)
        for request in requests {
            let target = request["target"] as? String ?? "?"
            let expected = "\(request["length"] as? Int ?? -1) \(request["sha256"] as? String ?? "?")"
            #expect((request["status"] as? String)?.hasPrefix("HTTP/1.1 200") == true && request["answer"] as? String == expected,
                    "\(target): \(request["status"] ?? "") \(request["answer"] ?? "")")
            let deliveries = seen.filter { $0["target"] as? String == target }
            #expect(deliveries.count == 1, "\(target) reached the healthy instance \(deliveries.count) times")
        }
    }

    @Test("a backend that answers before the body arrives: the rest of the body never becomes a request")
    func earlyAnswer() throws {
        let backend = try RawBackend("early")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let connection = try RawConnection(port: front.port)
        let body = String(repeating: "x", count: 77)
        connection.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 77\r\n\r\n")
        #expect(connection.readAnswer()?.status == 401)
        connection.send(body)
        connection.send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: \(Self.smuggled.utf8.count)\r\n\r\n" + Self.smuggled)
        let second = connection.readAnswer()
        #expect(second?.status == 401, "the second request got \(String(describing: second?.status))")
        usleep(300_000)
        let seen = backend.requests
        #expect(!seen.contains { $0.contains("/smuggled") }, "a request was smuggled to the backend: \(seen)")
        #expect(seen.contains("POST /b bodylen=\(Self.smuggled.utf8.count)"), "\(seen)")
    }

    @Test("an answer after which the connection closes while the client still sends reaches the client whole: an early 401 to an HTTP/1.0 upload of 2 MB, a 400 with 1 MB sent behind it")
    func lingeringClose() throws {
        let backend = try RawBackend("early")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let body = Data(repeating: UInt8(ascii: "x"), count: 2_000_000)

        let upload = try RawConnection(port: front.port, timeout: 10)
        #expect(upload.send("POST /upload HTTP/1.0\r\nHost: x\r\nContent-Length: \(body.count)\r\n\r\n"))
        #expect(upload.send(body.prefix(64_000)))
        // The answer comes, and the front ends the connection, before the rest of the body is sent.
        usleep(300_000)
        #expect(upload.send(body.dropFirst(64_000)), "the rest of the body was refused (the front reset the connection)")
        let early = upload.readAnswer()
        #expect(early?.status == 401 && early?.body == Data("answered early".utf8), "\(String(describing: early))")
        #expect(upload.waitForClose(orderly: true), "the connection ended with a reset, not after the answer")

        let refused = try RawConnection(port: front.port, timeout: 10)
        #expect(refused.send("GET /bare HTTP/1.1\nHost: x\n\n"))
        usleep(300_000)
        #expect(refused.send(body.prefix(1_000_000)), "the bytes behind the refused request were refused with a reset")
        let answer = refused.readAnswer()
        #expect(answer?.status == 400 && answer?.headers["connection"] == "close", "\(String(describing: answer))")
        #expect(refused.waitForClose(orderly: true), "the connection ended with a reset, not after the answer")
    }

    @Test("a client that takes nothing of its last answer (Connection: close) loses its connection after the idle timeout, and the next client gets its slot",
          .enabled(if: getuid() == 0, "a network namespace of its own needs root, as CI has"),
          arguments: [100_000, 900_000])
    func lastAnswerNotTaken(size: Int) throws {
        // 100 KB: the front reads the whole answer and waits to write it; 900 KB: it stops reading the instance.
        let work = makeTemporaryDirectory("last-answer")
        let result = try run("/usr/bin/unshare", ["-n", repositoryRoot + "/fixtures/hostile/last_answer_not_taken.sh", imgdeployBinary,
                                                  String(size), work])
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "served",
                "the next client was not served while one took nothing of its answer: \(result.stdout)\(result.stderr)")
    }

    @Test("a body that arrives before the backend connection is up reaches the backend whole", arguments: [70_000, 300_000])
    func bodyBeforeConnect(size: Int) throws {
        let backend = try RawBackend("cl")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let body = String(repeating: "b", count: size)
        let byLength = try front.send("POST /length HTTP/1.1\r\nHost: x\r\nContent-Length: \(size)\r\n\r\n" + body)
        #expect(byLength.map { String(decoding: $0.body, as: UTF8.self) } == "you asked POST /length bodylen=\(size)")
        let chunked = try front.send("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\(String(size, radix: 16))\r\n\(body)\r\n0\r\n\r\n")
        #expect(chunked.map { String(decoding: $0.body, as: UTF8.self) } == "you asked POST /chunked bodylen=\(size)")
    }

    @Test("requests pipelined behind a 502 are answered, and the in-flight count does not leak (SIGTERM ends at once)")
    func pipelinedAfterBadGateway() throws {
        let front = try Front(backends: [freePort()])  // nothing listens there
        defer { front.stop() }
        let connection = try RawConnection(port: front.port)
        connection.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readAnswer()?.status == 502)
        #expect(connection.readAnswer()?.status == 502, "the pipelined request was lost")
        kill(front.process.process.processIdentifier, SIGTERM)
        var exited = false
        // The front waits up to 10 s for requests in flight; with none left it stops at once.
        for _ in 0..<100 where !exited {
            exited = !front.process.process.isRunning
            usleep(50_000)
        }
        #expect(exited, "SIGTERM waited for a request that had already been answered")
    }

    @Test("an upload to a backend that does not read is held back, not buffered in memory")
    func uploadBackpressure() throws {
        let backend = try RawBackend("noread")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let before = front.residentKiB
        let connection = try RawConnection(port: front.port)
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        _ = connection.withDescriptor { setsockopt($0, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) }
        connection.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: \(300 << 20)\r\n\r\n")
        let chunk = Data(repeating: 0x75, count: 1 << 20)
        var sent = 0
        while sent < 300, connection.send(chunk) { sent += 1 }
        let grown = front.residentKiB - before
        #expect(sent < 300, "all 300 MiB were taken while the backend read nothing")
        #expect(grown < 100 << 10, "the front grew by \(grown) KiB holding an upload the backend does not read")
    }

    @Test("an HTTP/1.0 keep-alive client gets a body it can delimit: no chunked framing, the connection closes after it")
    func http10Client() throws {
        let backend = try RawBackend("chunked")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let connection = try RawConnection(port: front.port)
        connection.send("GET /old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        var raw = Data()
        while true {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = connection.withDescriptor { recv($0, &buffer, buffer.count, 0) }
            if count <= 0 { break }
            raw.append(contentsOf: buffer[0..<count])
        }
        let text = String(decoding: raw, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.0 200"), "\(text)")
        #expect(!text.lowercased().contains("transfer-encoding"), "\(text)")
        #expect(text.hasSuffix("\r\n\r\nyou asked GET /old bodylen=0"), "\(text)")
    }

    @Test("a head the grammar refuses gets 400 (431, 505, 405) and a closed connection; nothing of it reaches the backend", arguments: [
        ("GET /fold HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n GET /smuggled HTTP/1.1\r\n\r\n", 400),
        ("GET /bare HTTP/1.1\nHost: x\n\n", 400),
        ("POST /both HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("POST /old HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("GET /space HTTP/1.1\r\nHost : x\r\n\r\n", 400),
        ("GET /nohost HTTP/1.1\r\n\r\n", 400),
        ("GET /h2 HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "b", count: 90_000) + "\r\n\r\n", 431),
        ("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 405),
    ])
    func refusedHeads(request: String, status: Int) throws {
        let backend = try RawBackend("cl")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let connection = try RawConnection(port: front.port, timeout: 10)
        connection.send(request + "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = connection.readAnswer()
        #expect(answer?.status == status, "\(String(describing: answer))")
        #expect(answer?.headers["connection"] == "close")
        #expect(connection.waitForClose(), "the connection stayed open after a request whose end is unknown")
        usleep(200_000)
        #expect(backend.requests.isEmpty, "the backend saw \(backend.requests)")
    }

    @Test("a head sent a byte at a time, and three requests pipelined in one write, are each relayed once and answered in order")
    func trickledAndPipelined() throws {
        let backend = try RawBackend("cl")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let trickled = try RawConnection(port: front.port, timeout: 10)
        for byte in "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc".utf8 {
            trickled.send(Data([byte]))
            usleep(2_000)
        }
        #expect(trickled.readAnswer().map { String(decoding: $0.body, as: UTF8.self) } == "you asked POST /slow bodylen=3")
        let pipelined = try RawConnection(port: front.port, timeout: 10)
        pipelined.send((1...3).map { "POST /\($0) HTTP/1.1\r\nHost: x\r\nContent-Length: \($0)\r\n\r\n" + String(repeating: "p", count: $0) }.joined())
        for index in 1...3 {
            #expect(pipelined.readAnswer().map { String(decoding: $0.body, as: UTF8.self) } == "you asked POST /\(index) bodylen=\(index)")
        }
        #expect(backend.requests == ["POST /slow bodylen=3", "POST /1 bodylen=1", "POST /2 bodylen=2", "POST /3 bodylen=3"])
    }

    @Test("bytes a backend sends past its answer never reach the client as the answer to its next request")
    func backendSaysTooMuch() throws {
        let backend = try RawBackend("extra")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let connection = try RawConnection(port: front.port, timeout: 10)
        connection.send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readAnswer().map { String(decoding: $0.body, as: UTF8.self) } == "you asked GET /1 bodylen=0")
        usleep(100_000)
        connection.send("GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(connection.readAnswer().map { String(decoding: $0.body, as: UTF8.self) } == "you asked GET /2 bodylen=0")
    }

    @Test("an answer delimited by the backend closing reaches an HTTP/1.1 client whole, and its connection closes after it")
    func closeDelimitedAnswer() throws {
        let backend = try RawBackend("close")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let connection = try RawConnection(port: front.port, timeout: 10)
        connection.send("GET /all HTTP/1.1\r\nHost: x\r\n\r\n")
        var raw = Data()
        while true {
            var buffer = [UInt8](repeating: 0, count: 65536)
            let count = connection.withDescriptor { recv($0, &buffer, buffer.count, 0) }
            if count <= 0 { break }
            raw.append(contentsOf: buffer[0..<count])
        }
        let text = String(decoding: raw, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.lowercased().contains("\r\nconnection: close\r\n"), "\(text.prefix(200))")
        #expect(text.hasSuffix("\r\n\r\nyou asked GET /all bodylen=0 " + String(repeating: "z", count: 100_000)), "the body was cut: \(raw.count) bytes")
    }

    @Test("a chunked upload whose framing breaks half-way gets 400 and never completes as a request at the backend")
    func brokenChunkedUpload() throws {
        let backend = try RawBackend("cl")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port])
        defer { front.stop() }
        let connection = try RawConnection(port: front.port, timeout: 10)
        connection.send("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        usleep(200_000)
        connection.send("zz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n")
        #expect(connection.readAnswer()?.status == 400)
        #expect(connection.waitForClose())
        usleep(200_000)
        #expect(backend.requests.isEmpty, "the backend saw \(backend.requests)")
    }

    /// Runs a scenario of `fixtures/hostile/front_attacks.py` against the front and returns what it saw.
    private func attack(_ scenario: String) throws -> [String: Any] {
        let result = try run("/usr/bin/python3", [repositoryRoot + "/fixtures/hostile/front_attacks.py", imgdeployBinary, scenario])
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return try #require(object, "\(result.stdout)\(result.stderr)")
    }

    @Test("a backend connection still being made when its client leaves is closed once it is made, not kept")
    func clientLeavesDuringConnect() throws {
        let seen = try attack("pending-connect")
        #expect((seen["accepted"] as? Int ?? 0) > 0, "the backend never saw the front's connections: \(seen)")
        #expect(seen["left_open"] as? Int == 0, "connections kept open for clients that had gone: \(seen)")
    }

    @Test("a head of 70,000 bytes in two writes is read whole, and a Connection header with 20,000 options gets 400")
    func largeHeads() throws {
        #expect(try attack("split-head")["status"] as? Int == 200)
        let flood = try attack("connection-flood")
        #expect(flood["status"] as? Int == 400 && flood["after"] as? Int == 200, "\(flood)")
    }

    @Test("clients that take nothing of their answers, or send a head a byte at a time, lose their slot after the timeout")
    func slotsGivenBack() throws {
        let stalled = try attack("stalled-readers")
        #expect(stalled["third_status"] as? Int == 200, "two clients that never read held the front's two slots: \(stalled)")
        let slow = try attack("slow-heads")
        #expect(slow["legit_status"] as? Int == 200, "two slow heads held the front's two slots: \(slow)")
        #expect(slow["tricklers"] as? [String] == ["408", "408"], "\(slow)")
    }

    @Test("an instance that begins an answer and then sends nothing is cut off after the idle timeout, not held open for good")
    func silentAnswer() throws {
        let seen = try attack("silent-answer")
        #expect(seen["got_head"] as? Bool == true && seen["closed"] as? Bool == true, "\(seen)")
    }

    @Test("a GET on a kept-alive backend connection the backend closed instead of answering goes again on a new one; a POST does not")
    func staleKeepAlive() throws {
        #expect(try attack("stale-keepalive")["statuses"] as? [Int] == [200, 200, 502, 200])
    }

    @Test("idle and half-sent requests are closed after the idle timeout; connections past the limit wait")
    func idleAndLimit() throws {
        let backend = try RawBackend("cl")
        defer { backend.stop() }
        let front = try Front(backends: [backend.port], arguments: ["--idle-timeout", "1", "--max-connections", "2"])
        defer { front.stop() }
        let half = try RawConnection(port: front.port)
        half.send("GET /half HTTP/1.1\r\nHost:")
        #expect(half.waitForClose(), "a half-sent request held its connection")
        let first = try RawConnection(port: front.port), second = try RawConnection(port: front.port)
        for connection in [first, second] {
            connection.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(connection.readAnswer()?.status == 200)
        }
        let third = try RawConnection(port: front.port, timeout: 2)
        third.send("GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
        var answer = third.readAnswer()
        // The first two go idle and are closed; then the third is admitted and answered.
        for _ in 0..<10 where answer == nil { answer = third.readAnswer() }
        #expect(answer?.status == 200)
    }
}
