import Foundation
import LoadBalancer
import NIOCore
import NIOPosix
import Prometheus
import Synchronization
import Testing
import TestScheduling

/// The repository's root, found from this file's place.
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// A real HTTP/1.1 backend (`fixtures/http/echo_backend.py`) on a free loopback port.
private final class EchoBackend {
    let name: String
    let port: Int
    private let process = Process()

    init(_ name: String) throws {
        self.name = name
        let portFile = NSTemporaryDirectory() + "/echo-\(name)-\(UUID().uuidString)"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [repositoryRoot + "/fixtures/http/echo_backend.py", name, portFile]
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: portFile) {
            guard Date() < deadline, process.isRunning else { throw CocoaError(.fileReadNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "the echo backend did not start"]) }
            usleep(20_000)
        }
        port = Int(try String(contentsOfFile: portFile, encoding: .utf8))!
        try? FileManager.default.removeItem(atPath: portFile)
    }

    var backend: Backend { Backend(id: name, host: "127.0.0.1", port: port) }

    deinit {
        // SIGKILL: a child of the test runner may inherit a mask that blocks SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// What curl printed: the response heads (all of them, one per URL) and the bodies.
private struct CurlResult {
    var status: Int32
    var heads: String
    var body: String

    /// The JSON documents the echo backends answered, in order.
    var documents: [[String: Any]] {
        body.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }
}

/// Runs curl (a real client): one connection, reused for every URL given.
private func curl(_ arguments: [String]) throws -> CurlResult {
    let folder = NSTemporaryDirectory() + "/curl-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    process.arguments = ["-s", "--max-time", "10", "-D", folder + "/heads", "-w", "\n"] + arguments
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let body = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    // An empty file is not read: Foundation leaks the buffer it reads an empty file into (LeakSanitizer says so).
    let size = (try? FileManager.default.attributesOfItem(atPath: folder + "/heads")[.size] as? Int) ?? 0
    let heads = size > 0 ? (try? String(contentsOfFile: folder + "/heads", encoding: .utf8)) ?? "" : ""
    return CurlResult(status: process.terminationStatus, heads: heads.lowercased(), body: body)
}

/// The headers a backend received, by lower-cased name.
private func received(_ document: [String: Any]) -> [String: String] {
    var headers: [String: String] = [:]
    for pair in document["headers"] as? [[String]] ?? [] where pair.count == 2 { headers[pair[0]] = pair[1] }
    return headers
}

/// A TCP socket bound to a free port on 127.0.0.1 (not listening yet), and that port.
private func boundLoopbackSocket() -> (fd: Int32, port: Int) {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) } }
    return (socket, Int(UInt16(bigEndian: address.sin_port)))
}

/// A TCP connection to 127.0.0.1 made with plain sockets, for tests that watch what a front does with one.
private final class RawClient {
    let fd: Int32

    init?(port: Int) {
        fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
    }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// What arrives before the connection is quiet for `timeoutMilliseconds` (empty if nothing does).
    func receive(timeoutMilliseconds: Int32) -> String {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var waiting = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, received.isEmpty ? timeoutMilliseconds : 200) == 1 else { break }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received += buffer[..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// Ends the connection (the descriptor stays open until the client goes).
    func hangUp() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    deinit { close(fd) }
}

/// Reads each client's answer (each sent a request) and hangs up once it has one, which frees its slot at the
/// front, until all are answered or about 30 s pass; returns how many were answered and the most connections
/// the front held open at any check.
private func answerInTurn(_ clients: [RawClient], balancer: LoadBalancer) async throws -> (answered: Int, mostOpen: Int) {
    var waiting = Array(clients.indices)
    var mostOpen = 0
    for _ in 0..<300 where !waiting.isEmpty {
        mostOpen = max(mostOpen, balancer.openConnections)
        waiting.removeAll { index in
            guard clients[index].receive(timeoutMilliseconds: 20).hasPrefix("HTTP/1.1 200") else { return false }
            clients[index].hangUp()
            return true
        }
        try await Task.sleep(for: .milliseconds(10))
    }
    return (clients.count - waiting.count, mostOpen)
}

/// An idle timeout no delay of a busy machine reaches, for tests whose connections must stay open while they
/// check (before tests ran off the cooperative pool, the whole suite held them up for minutes, past the
/// default 60 s; four tests per core still run at once beside load tests).
private let testIdleTimeout = TimeAmount.seconds(3600)

/// A port on 127.0.0.1 where nothing listens (connections are refused).
private func closedPort() -> Int {
    let (socket, port) = boundLoopbackSocket()
    close(socket)
    return port
}

/// A load balancer on a free loopback port, stopped when the body ends.
private func withFront(_ backends: [Backend], idleSeconds: Int64 = 60, pool: BackendPool = BackendPool(),
                       _ body: (LoadBalancer, String) async throws -> Void) async throws {
    pool.setActive(backends)
    let balancer = LoadBalancer(pool: pool, idleTimeout: .seconds(idleSeconds))
    let port = try await balancer.start(host: "127.0.0.1", port: 0)
    do {
        try await body(balancer, "http://127.0.0.1:\(port)")
    } catch {
        await balancer.stop(timeout: .seconds(1))
        throw error
    }
    await balancer.stop(timeout: .seconds(1))
}

@Suite("Load balancer (real curl in front, Python http.server behind)", .mayBlock)
struct LoadBalancerTests {
    @Test("a listening socket handed to the load balancer keeps its backlog (NIO listens again with 128), before and after a handover")
    func backlogKept() async throws {
        let socket = try ListeningSocket.bind(host: "127.0.0.1", port: 0, backlog: 1024)
        #expect(ListeningSocket.backlog(of: socket) == 1024)
        let first = LoadBalancer(pool: BackendPool())
        _ = try await first.start(listeningSocket: socket)
        let handed = try #require(first.listeningSocketForHandover)
        #expect(ListeningSocket.backlog(of: handed) == 1024, "the queue a burst of connections waits in was cut to \(ListeningSocket.backlog(of: handed) ?? 0)")
        // The successor gets a duplicate of the same socket, as SCM_RIGHTS gives it.
        let second = LoadBalancer(pool: BackendPool())
        _ = try await second.start(listeningSocket: fcntl(handed, F_DUPFD_CLOEXEC, 0))
        await first.retire(timeout: .seconds(1))
        let kept = try #require(second.listeningSocketForHandover)
        #expect(ListeningSocket.backlog(of: kept) == 1024)
        await second.stop(timeout: .seconds(1))
    }

    @Test("a connection accepted just before the front retires, still being set up on its event loop, is served, not reset")
    func acceptedWhileRetiring() async throws {
        let backend = try EchoBackend("a")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let pool = BackendPool()
        pool.setActive([backend.backend])
        let balancer = LoadBalancer(pool: pool, group: group)
        // The listening channel takes the group's first loop, so the first connection goes to the second.
        let port = try await balancer.start(host: "127.0.0.1", port: 0)
        // That loop is held up, as a busy machine holds it: the connection is accepted, and its set-up waits.
        loops[1].execute { usleep(1_500_000) }
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        client.arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "http://127.0.0.1:\(port)/accepted"]
        let output = Pipe()
        client.standardOutput = output
        try client.run()
        try await Task.sleep(for: .milliseconds(500))
        await balancer.retire(timeout: .seconds(8))
        let code = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        #expect(client.terminationStatus == 0 && code == "200", "curl exited \(client.terminationStatus) with status \(code) (56: the connection was reset)")
        try await group.shutdownGracefully()
    }

    @Test("setAccepting(false) returns only once the listening channel has stopped accepting: a connection made right after waits in the kernel's queue, and is served when accepting resumes")
    func pauseTakesEffectBeforeItReturns() async throws {
        let backend = try EchoBackend("a")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = BackendPool()
        pool.setActive([backend.backend])
        let balancer = LoadBalancer(pool: pool, group: group)
        let port = try await balancer.start(host: "127.0.0.1", port: 0)
        // The listening channel's loop is held up, as a busy machine holds it, so the pause is still queued
        // behind this when a call that does not wait for it would already have returned.
        let loopReleased = Atomic<Bool>(false)
        group.next().execute {
            usleep(500_000)
            loopReleased.store(true, ordering: .relaxed)
        }
        await balancer.setAccepting(false)
        let releasedWhenPaused = loopReleased.load(ordering: .relaxed)
        #expect(releasedWhenPaused, "setAccepting(false) returned before the event loop had stopped accepting")
        let client = try #require(RawClient(port: port))
        client.send("GET /paused HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(client.receive(timeoutMilliseconds: 500).isEmpty, "a paused front answered a connection made after the pause")
        #expect(balancer.openConnections == 0, "a paused front accepted a connection")
        await balancer.setAccepting(true)
        let answer = client.receive(timeoutMilliseconds: 10_000)
        #expect(answer.hasPrefix("HTTP/1.1 200"), "the connection that waited was not served once accepting resumed: \(answer)")
        await balancer.stop(timeout: .seconds(1))
        try await group.shutdownGracefully()
    }

    @Test("a resume asked for once stopping has begun is not applied: a connection made then is not accepted")
    func resumeDuringStopIsIgnored() async throws {
        // An instance that never answers keeps a request in flight, so stop waits for it with accepting paused.
        let (fd, backendPort) = boundLoopbackSocket()
        defer { close(fd) }
        listen(fd, 8)
        let pool = BackendPool()
        pool.setActive([Backend(id: "hung", host: "127.0.0.1", port: backendPort)])
        let balancer = LoadBalancer(pool: pool, idleTimeout: testIdleTimeout)
        let port = try await balancer.start(host: "127.0.0.1", port: 0)
        let inFlight = try #require(RawClient(port: port))
        inFlight.send("GET /held HTTP/1.1\r\nHost: a\r\n\r\n")
        var waits = 0
        while pool.totalInFlight == 0, waits < 1000 {
            try await Task.sleep(for: .milliseconds(10))
            waits += 1
        }
        try #require(pool.totalInFlight == 1, "the held request never reached the pool")
        // A long timeout, so that the held connection is still open at the checks however slow the machine;
        // the held client goes at the end, which ends its request and the stop.
        let stopping = Task { await balancer.stop(timeout: .seconds(3600)) }
        // stop empties the pool after its pause has taken effect.
        waits = 0
        while !pool.active.isEmpty, waits < 1000 {
            try await Task.sleep(for: .milliseconds(10))
            waits += 1
        }
        try #require(pool.active.isEmpty, "stop did not begin")
        await balancer.setAccepting(true)
        let late = try #require(RawClient(port: port))
        late.send("GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
        let answer = late.receive(timeoutMilliseconds: 500)
        #expect(answer.isEmpty, "a front that was stopping accepted a connection and answered it: \(answer)")
        #expect(balancer.openConnections == 1, "a front that was stopping accepted a connection")
        inFlight.hangUp()
        await stopping.value
    }

    @Test("connections past maxConnections that arrive together wait in the kernel's queue (NIO accepts several per wake-up, whatever a handler says), and each is served once one closes")
    func limitHoldsUnderBurst() async throws {
        let backend = try EchoBackend("a")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pool = BackendPool()
        pool.setActive([backend.backend])
        let balancer = LoadBalancer(pool: pool, idleTimeout: testIdleTimeout, maxConnections: 2, group: group)
        let port = try await balancer.start(host: "127.0.0.1", port: 0)
        // The loop is held up while the connections arrive, so one wake-up finds them all in the queue.
        group.next().execute { usleep(300_000) }
        var clients: [RawClient] = []
        for index in 0..<6 {
            let client = try #require(RawClient(port: port))
            client.send("GET /\(index) HTTP/1.1\r\nHost: a\r\n\r\n")
            clients.append(client)
        }
        // By then the loop is free and has accepted what it would: the clients read nothing yet and keep their
        // connections (keep-alive), so every connection accepted is still open.
        try await Task.sleep(for: .milliseconds(700))
        #expect(balancer.openConnections <= 2, "the front accepted \(balancer.openConnections) connections with a limit of 2")
        let (answered, mostOpen) = try await answerInTurn(clients, balancer: balancer)
        #expect(mostOpen <= 2, "the front held \(mostOpen) connections open with a limit of 2")
        #expect(answered == 6, "\(6 - answered) connections that waited for a slot were never served")
        await balancer.stop(timeout: .seconds(1))
        try await group.shutdownGracefully()
    }

    @Test("a front that resumes accepting while at maxConnections takes no connection until one closes (NIO resumes reading without asking the pipeline)")
    func resumeAtLimit() async throws {
        let backend = try EchoBackend("a")
        let pool = BackendPool()
        pool.setActive([backend.backend])
        let balancer = LoadBalancer(pool: pool, idleTimeout: testIdleTimeout, maxConnections: 2)
        let port = try await balancer.start(host: "127.0.0.1", port: 0)
        var held: [RawClient] = []
        for index in 0..<2 {
            let client = try #require(RawClient(port: port))
            client.send("GET /held\(index) HTTP/1.1\r\nHost: a\r\n\r\n")
            let answer = client.receive(timeoutMilliseconds: 10_000)
            try #require(answer.hasPrefix("HTTP/1.1 200"), "a connection within the limit was not served: \(answer)")
            held.append(client)
        }
        await balancer.setAccepting(false)
        var queued: [RawClient] = []
        for index in 0..<3 {
            let client = try #require(RawClient(port: port))
            client.send("GET /queued\(index) HTTP/1.1\r\nHost: a\r\n\r\n")
            queued.append(client)
        }
        await balancer.setAccepting(true)
        var mostOpen = 0
        for _ in 0..<25 {
            mostOpen = max(mostOpen, balancer.openConnections)
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(mostOpen <= 2, "a front resumed at its limit of 2 held \(mostOpen) connections open")
        for client in held { client.hangUp() }
        let (answered, mostAfter) = try await answerInTurn(queued, balancer: balancer)
        #expect(answered == 3, "\(3 - answered) queued connections were never served")
        #expect(mostAfter <= 2, "the front held \(mostAfter) connections open with a limit of 2")
        await balancer.stop(timeout: .seconds(1))
    }

    @Test("forwards method, path and body; appends X-Forwarded-For; hop-by-hop headers stop at the proxy both ways")
    func forwarding() async throws {
        let backend = try EchoBackend("a")
        try await withFront([backend.backend]) { _, front in
            let result = try curl(["-X", "POST", "--data-binary", "hello", "-H", "Connection: keep-alive, X-Client-Hop",
                                   "-H", "X-Client-Hop: one", "-H", "Keep-Alive: 5", "-H", "Proxy-Authorization: Basic eDp5",
                                   "-H", "X-Forwarded-For: 10.0.0.1", "-H", "X-Kept: yes", front + "/some/path?q=1"])
            #expect(result.status == 0)
            let document = try #require(result.documents.first, "\(result.body)")
            #expect(document["method"] as? String == "POST")
            #expect(document["path"] as? String == "/some/path?q=1")
            #expect(document["bodyLength"] as? Int == 5)
            let headers = received(document)
            #expect(headers["x-forwarded-for"] == "10.0.0.1, 127.0.0.1")
            #expect(headers["x-kept"] == "yes")
            for hop in ["x-client-hop", "keep-alive", "proxy-authorization"] {
                #expect(headers[hop] == nil, "\(hop) reached the backend")
            }
            #expect(result.heads.hasPrefix("http/1.1 200"))
            #expect(result.heads.contains("x-backend: a"))
            #expect(!result.heads.contains("x-backend-hop"), "a header the backend's Connection names reached the client")
            #expect(!result.heads.contains("keep-alive: timeout"))
        }
    }

    @Test("a chunked body, a HEAD and a 204 are relayed whole, and the connection goes on serving after each")
    func framing() async throws {
        let backend = try EchoBackend("a")
        try await withFront([backend.backend]) { _, front in
            let result = try curl([front + "/chunked", front + "/no-content", front + "/after"])
            #expect(result.status == 0)
            #expect(result.documents.map { $0["path"] as? String } == ["/chunked", "/after"], "\(result.body)")
            #expect(result.heads.contains("http/1.1 204"))
            // HEAD of a chunked answer has no body: the proxy must not wait for one.
            let head = try curl(["-I", front + "/chunked"])
            #expect(head.status == 0 && head.heads.hasPrefix("http/1.1 200"), "\(head.heads)")
            #expect(head.documents.isEmpty && !head.body.contains("{"))
        }
    }

    @Test("a keep-alive connection stays on its backend; after a switch, new requests go to the new set")
    func stickinessAndSwitch() async throws {
        let a = try EchoBackend("a")
        let b = try EchoBackend("b")
        try await withFront([a.backend, b.backend]) { balancer, front in
            // One client connection, four requests: round-robin would alternate, keep-alive keeps one backend.
            let kept = try curl(Array(repeating: front + "/k", count: 4))
            let names = kept.documents.compactMap { $0["backend"] as? String }
            #expect(names.count == 4 && Set(names).count == 1, "\(names)")
            #expect(Set(kept.documents.compactMap { $0["clientPort"] as? Int }).count == 1, "one backend connection was reused")
            // New connections are spread over both.
            var seen: Set<String> = []
            for _ in 0..<4 { seen.formUnion(try curl([front + "/n"]).documents.compactMap { $0["backend"] as? String }) }
            #expect(seen == ["a", "b"])

            balancer.pool.setActive([b.backend])
            for _ in 0..<3 {
                #expect(try curl([front + "/after-switch"]).documents.first?["backend"] as? String == "b")
            }
            #expect(balancer.pool.totalInFlight == 0)
        }
    }

    @Test("a refused connection is retried on another backend, even for a POST; with none left the front says why")
    func refusedConnections() async throws {
        let a = try EchoBackend("a")
        let dead = Backend(id: "dead", host: "127.0.0.1", port: closedPort())
        try await withFront([dead, a.backend]) { balancer, front in
            for attempt in 0..<4 {
                let result = try curl(["-X", "POST", "--data-binary", "payload-\(attempt)", front + "/post"])
                #expect(result.documents.first?["backend"] as? String == "a", "attempt \(attempt): \(result.heads)\(result.body)")
                #expect(result.documents.first?["bodyLength"] as? Int == 9)
            }
            #expect(balancer.metrics.snapshot.retried == 2, "one request in two goes to the dead backend first: a retry does not move the rotation")
            #expect(balancer.metrics.snapshot.failed == 0)

            balancer.pool.setActive([dead])
            let nobodyAnswers = try curl([front + "/get"])
            #expect(nobodyAnswers.heads.hasPrefix("http/1.1 502"), "\(nobodyAnswers.heads)")
            #expect(nobodyAnswers.body.contains("no instance could answer the request"))

            balancer.pool.setActive([])
            let empty = try curl([front + "/get"])
            #expect(empty.heads.hasPrefix("http/1.1 503"), "\(empty.heads)")
            #expect(empty.body.contains("no healthy instance is serving this service"))
            #expect(balancer.pool.totalInFlight == 0)
        }
    }
}

extension LoadBalancerTests {
    @Test("a client that waits for 100 Continue gets it from the backend through the proxy, and its body arrives whole")
    func expectContinue() async throws {
        let backend = try EchoBackend("a")
        try await withFront([backend.backend]) { _, front in
            let body = String(repeating: "0123456789abcdef", count: 512)  // 8 KiB
            // curl waits up to --expect100-timeout for the interim answer; 30 s turns a swallowed 100 into
            // a failure (--max-time 10) instead of a silent one-second stall.
            let result = try curl(["--expect100-timeout", "30", "-H", "Expect: 100-continue", "--data-binary", body, front + "/upload"])
            #expect(result.status == 0, "curl exited \(result.status)")
            #expect(result.heads.hasPrefix("http/1.1 100 continue"), "\(result.heads)")
            #expect(result.heads.contains("http/1.1 200"))
            #expect(result.documents.first?["bodyLength"] as? Int == body.utf8.count)
        }
    }

    @Test("a request sent whole to an instance that never begins to answer gets 504 after the timeout, and the connection closes")
    func hungBackend() async throws {
        // Listens and never accepts: the kernel completes the connection, nobody reads the request.
        let (fd, port) = boundLoopbackSocket()
        defer { close(fd) }
        listen(fd, 8)
        let hung = Backend(id: "hung", host: "127.0.0.1", port: port)
        try await withFront([hung], idleSeconds: 1) { balancer, front in
            let result = try curl(["--max-time", "20", front + "/get"])
            #expect(result.heads.hasPrefix("http/1.1 504"), "\(result.heads)")
            #expect(result.body.contains("did not begin to answer"))
            #expect(balancer.metrics.snapshot.failed == 1)
            #expect(balancer.pool.totalInFlight == 0)
        }
    }
}

extension LoadBalancerTests {
    @Test("a canary split sends exactly its share to the canary, counts each side's answers, 5xx and latency, and a new window starts again")
    func canarySplit() async throws {
        let a = try EchoBackend("a")
        let b = try EchoBackend("b")
        try await withFront([a.backend]) { balancer, front in
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [b.backend], percent: 25, window: 1))
            // One keep-alive connection: the side is chosen per request, not per connection.
            let first = try curl(Array(repeating: front + "/k", count: 40))
            let names = first.documents.compactMap { $0["backend"] as? String }
            #expect(names.count == 40 && names.filter { $0 == "b" }.count == 10, "\(names)")
            var window = balancer.pool.window
            #expect(window.window == 1 && window.canary.requests == 10 && window.stable.requests == 30, "\(window)")
            #expect(window.canary.errors == 0 && window.stable.errors == 0)
            #expect(window.canary.p99Microseconds.map { $0 > 0 } == true && window.stable.p99Microseconds != nil)

            let failing = try curl(Array(repeating: front + "/status/503", count: 8))
            #expect(failing.documents.count == 8)
            window = balancer.pool.window
            #expect(window.canary.errors == 2 && window.stable.errors == 6, "5xx answers are errors of their side: \(window)")
            #expect(window.canary.requests == 12 && window.stable.requests == 36)

            // The same window again (a pool change that is not a new step) keeps the figures.
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [b.backend], percent: 25, window: 1))
            #expect(balancer.pool.window.canary.requests == 12)
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [b.backend], percent: 50, window: 2))
            #expect(balancer.pool.window.canary.requests == 0 && balancer.pool.window.stable.requests == 0, "a new step's window starts at zero")
            let half = try curl(Array(repeating: front + "/h", count: 10))
            #expect(half.documents.filter { $0["backend"] as? String == "b" }.count == 5)

            // A canary whose instance refuses connections: each refused attempt is a canary error, and the
            // request is answered by the old version.
            let dead = Backend(id: "dead", host: "127.0.0.1", port: closedPort())
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [dead], percent: 50, window: 3))
            let refused = try curl(Array(repeating: front + "/r", count: 6))
            #expect(refused.documents.count == 6 && refused.documents.allSatisfy { $0["backend"] as? String == "a" }, "\(refused.body)")
            #expect(balancer.pool.window.canary.errors == 3 && balancer.pool.window.canary.requests == 3, "\(balancer.pool.window)")
            #expect(balancer.metrics.snapshot.failed == 0, "no client saw a failure")

            balancer.pool.setActive([a.backend])
            #expect(balancer.pool.canary == nil)
            #expect(balancer.pool.totalInFlight == 0)
        }
    }
}

extension LoadBalancerTests {
    @Test("a sticky split gives each new client a cookie for the side that answered it, and keeps a client with one on its side")
    func stickySplit() async throws {
        let a = try EchoBackend("a")
        let b = try EchoBackend("b")
        try await withFront([a.backend]) { balancer, front in
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [b.backend], percent: 50, window: 1, sticky: true, rollout: 7))
            let jar = NSTemporaryDirectory() + "/jar-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: jar) }
            let first = try curl(["-c", jar, front + "/first"])
            let side = first.documents.first?["backend"] as? String
            #expect(first.heads.contains("set-cookie: imgdeploy-canary=\(side == "b" ? "new" : "old").7; path=/; httponly; samesite=lax"), "\(first.heads)")
            // Ten more connections with the cookie: the same side each time, and no new cookie.
            for index in 0..<10 {
                let again = try curl(["-b", jar, front + "/again-\(index)"])
                #expect(again.documents.first?["backend"] as? String == side, "request \(index)")
                #expect(!again.heads.contains("set-cookie"))
            }
            // Both cookie values are obeyed, among other cookies, with spaces, across steps (windows) of the
            // same rollout; unknown values, and those of another rollout, are ignored (the client then gets a
            // cookie for the side that answered).
            for window in [UInt64(1), 2] {
                balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [b.backend], percent: 50, window: window, sticky: true, rollout: 7))
                for _ in 0..<4 {
                    #expect(try curl(["-H", "Cookie: a=1; imgdeploy-canary=new.7 ;b=2", front + "/n"]).documents.first?["backend"] as? String == "b")
                    #expect(try curl(["-H", "Cookie: imgdeploy-canary=old.7", front + "/o"]).documents.first?["backend"] as? String == "a")
                }
            }
            var sides: Set<String> = []
            for _ in 0..<4 { sides.formUnion(try curl(["-H", "Cookie: imgdeploy-canary=new.6", front + "/x"]).documents.compactMap { $0["backend"] as? String }) }
            #expect(sides == ["a", "b"], "another rollout's cookie chooses nothing")
            for hostile in ["imgdeploy-canary=newer", "imgdeploy-canary=", "imgdeploy-canary", "Imgdeploy-Canary=new.7", ";;;", "imgdeploy-canary=new.", "imgdeploy-canary=new.77",
                            "imgdeploy-canary=new.7=", String(repeating: ";", count: 4000)] {
                let answer = try curl(["-H", "Cookie: \(hostile)", front + "/h"])
                #expect(answer.documents.count == 1 && answer.heads.contains("set-cookie: imgdeploy-canary="), "\(hostile): \(answer.heads)")
            }
            // Without a sticky split, no cookie is given and none is read.
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [b.backend], percent: 50, window: 3, rollout: 7))
            let plain = try curl(["-H", "Cookie: imgdeploy-canary=new.7", front + "/p", front + "/p"])
            #expect(!plain.heads.contains("set-cookie") && Set(plain.documents.compactMap { $0["backend"] as? String }) == ["a", "b"])
        }
    }
}

extension LoadBalancerTests {
    @Test("metrics: answers by release and status (unknown statuses by class), the front's own 503s, and only the latest releases' series kept")
    func metricsSeries() async throws {
        let a = try EchoBackend("a")
        let registry = PrometheusCollectorRegistry()
        let pool = BackendPool(metricsFactory: PrometheusMetricsFactory(registry: registry), service: "web")
        try await withFront([], pool: pool) { balancer, front in
            pool.setActive([Backend(id: "a", host: "127.0.0.1", port: a.port, release: "sha256:r0")])
            _ = try curl([front + "/k", front + "/status/503", front + "/status/599", front + "/status/418"])
            var text = registry.emitToString()
            for code in ["200", "503", "5xx", "4xx"] {
                #expect(text.contains("imgdeploy_requests_total{service=\"web\",digest=\"sha256:r0\",code=\"\(code)\"} 1"), "\(code): \(text)")
            }
            #expect(text.contains("imgdeploy_request_duration_seconds_count{service=\"web\",digest=\"sha256:r0\"} 4"), "\(text)")
            pool.setActive([])
            _ = try curl([front + "/none"])
            text = registry.emitToString()
            #expect(text.contains("imgdeploy_front_answers_total{service=\"web\",code=\"503\"} 1"), "\(text)")
            // A front outlives many releases: the series of all but the latest 16 go.
            for release in 1...16 {
                pool.setActive([Backend(id: "a", host: "127.0.0.1", port: a.port, release: "sha256:r\(release)")])
                _ = try curl([front + "/k"])
            }
            text = registry.emitToString()
            #expect(!text.contains("sha256:r0\""), "the oldest release's series are gone")
            #expect(text.contains("digest=\"sha256:r1\"") && text.contains("digest=\"sha256:r16\""))
            // A release that serves on beside many newer ones (a stable version through failed canaries) keeps its series.
            let stay = Backend(id: "stay", host: "127.0.0.1", port: a.port, release: "sha256:stay")
            for release in 17...34 {
                pool.setActive([stay, Backend(id: "n\(release)", host: "127.0.0.1", port: a.port, release: "sha256:r\(release)")])
                _ = try curl([front + "/1"])
                _ = try curl([front + "/2"])
            }
            text = registry.emitToString()
            #expect(text.contains("digest=\"sha256:stay\""), "the serving release's series stay")
            #expect(!text.contains("digest=\"sha256:r17\"") && text.contains("digest=\"sha256:r34\""))
            _ = balancer
        }
    }
}

extension LoadBalancerTests {
    @Test("a client that gives up on a request sent whole to a hung instance counts as that side's error; one that only sends slowly does not")
    func clientGivesUp() async throws {
        let (fd, port) = boundLoopbackSocket()
        defer { close(fd) }
        listen(fd, 8)
        let hung = Backend(id: "hung", host: "127.0.0.1", port: port)
        let a = try EchoBackend("a")
        try await withFront([a.backend]) { balancer, front in
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [hung], percent: 100, window: 1))
            // --max-time: curl gives up after its whole request went out and nothing came back.
            let gaveUp = try curl(["--max-time", "1", front + "/wait"])
            #expect(gaveUp.status == 28, "curl timed out: \(gaveUp.status)")
            try await Task.sleep(for: .milliseconds(200))
            #expect(balancer.pool.window.canary.requests == 1 && balancer.pool.window.canary.errors == 1, "\(balancer.pool.window)")
            // A client that announces a body it never finishes sending is not the instance's fault.
            balancer.pool.setActive([a.backend], canary: CanarySplit(backends: [hung], percent: 100, window: 2))
            let slow = try curl(["--max-time", "1", "-H", "Content-Length: 100000", "--data-binary", "only this", front + "/slow"])
            #expect(slow.status != 0)
            try await Task.sleep(for: .milliseconds(200))
            #expect(balancer.pool.window.canary.requests == 0, "\(balancer.pool.window)")
        }
    }
}
