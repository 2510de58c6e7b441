import HTTPFraming
import Testing
import TestScheduling

/// Parses `text` as a request head, as the front does.
private func request(_ text: String) throws -> (RequestHead, [HeaderField], [UInt8])? {
    let bytes = Array(text.utf8)
    var scanner = HeadScanner(limit: 80 * 1024)
    var fields: [HeaderField] = []
    return try bytes.withUnsafeBytes { raw -> (RequestHead, [HeaderField], [UInt8])? in
        guard let end = try scanner.end(in: raw) else { return nil }
        return (try RequestHead.parse(raw, length: end, fields: &fields), fields, bytes)
    }
}

private func response(_ text: String, toHead: Bool = false) throws -> (ResponseHead, [HeaderField], [UInt8]) {
    let bytes = Array(text.utf8)
    var scanner = HeadScanner(limit: 80 * 1024)
    var fields: [HeaderField] = []
    return try bytes.withUnsafeBytes { raw -> (ResponseHead, [HeaderField], [UInt8]) in
        guard let end = try scanner.end(in: raw) else { throw FramingError.malformedStatusLine }
        return (try ResponseHead.parse(raw, length: end, toHead: toHead, fields: &fields), fields, bytes)
    }
}

/// The request head a backend would receive.
private func forwarded(_ text: String, from address: String = "10.0.0.9") throws -> String {
    let (head, fields, bytes) = try #require(try request(text))
    var out: [UInt8] = []
    bytes.withUnsafeBytes { ForwardedHead.request($0, head: head, fields: fields, clientAddress: address, into: &out) }
    return String(decoding: out, as: UTF8.self)
}

/// Feeds `body` to a reader in pieces of `step` bytes; returns the bytes consumed and the payload.
private func readBody(_ framing: BodyFraming, _ body: String, step: Int) throws -> (consumed: Int, payload: String, complete: Bool) {
    var reader = BodyReader(framing)
    let bytes = Array(body.utf8)
    var consumed = 0
    var payload: [UInt8] = []
    while consumed < bytes.count && !reader.isComplete {
        let piece = Array(bytes[consumed..<min(bytes.count, consumed + step)])
        let taken = try piece.withUnsafeBytes { raw -> Int in
            try reader.read(raw) { payload.append(contentsOf: piece[$0]) }
        }
        consumed += taken
        if taken < piece.count { break }
    }
    return (consumed, String(decoding: payload, as: UTF8.self), reader.isComplete)
}

@Suite("HTTP/1.1 framing for the relay (RFC 9112)", .mayBlock)
struct HTTPFramingTests {
    @Test("a head is found however its bytes are split, and only once it is whole")
    func scanning() throws {
        let text = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT".utf8)
        for split in 1..<text.count {
            var scanner = HeadScanner(limit: 1024)
            let first = try text[..<split].withUnsafeBytes { try scanner.end(in: $0) }
            let whole = try text.withUnsafeBytes { try scanner.end(in: $0) }
            if split >= 27 {
                #expect(first == 27)
            } else {
                #expect(first == nil)
                #expect(whole == 27, "split at \(split)")
            }
        }
        var small = HeadScanner(limit: 16)
        #expect(throws: FramingError.headTooLarge(limit: 16)) { try Array("GET /aaaaaaaaaaaaaaaaaaaa".utf8).withUnsafeBytes { try small.end(in: $0) } }
    }

    @Test("framing: length, chunked, none; keep-alive by version and Connection; methods")
    func requestFraming() throws {
        let length = try #require(try request("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")).0
        #expect(length.body == .length(12) && length.keepAlive && !length.idempotent)
        let chunked = try #require(try request("PUT /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding:  Chunked \r\n\r\n")).0
        #expect(chunked.body == .chunked && chunked.idempotent)
        #expect(throws: FramingError.unsupportedTransferCoding) { try request("PUT /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip, chunked\r\n\r\n") }
        let old = try #require(try request("GET / HTTP/1.0\r\n\r\n")).0
        #expect(old.body == .none && !old.keepAlive && old.minorVersion == 0)
        let oldKept = try #require(try request("HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")).0
        #expect(oldKept.keepAlive && oldKept.isHead)
        let closing = try #require(try request("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n")).0
        #expect(!closing.keepAlive)
        #expect(try #require(try request("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n")).0.isConnect)
    }

    @Test("requests whose framing a backend could read differently are refused", arguments: [
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", FramingError.lengthAndTransferEncoding),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .invalidContentLength),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", .invalidContentLength),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", .invalidContentLength),
        ("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1234567890123456789\r\n\r\n", .invalidContentLength),
        ("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", .invalidTransferEncoding),
        ("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidTransferEncoding),
        ("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", .invalidTransferEncoding),
        ("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", .invalidTransferEncoding),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", .invalidTransferEncoding),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n", .obsoleteLineFolding),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", .malformedField),
        ("GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n", .malformedField),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u{0}b\r\n\r\n", .malformedField),
        ("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", .bareLineEnding),
        ("GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", .bareLineEnding),
        ("GET / HTTP/1.1\n\n", .malformedRequestLine),
        ("GET / HTTP/1.1\r\n\r\n", .hostCount),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .hostCount),
        ("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", .malformedRequestLine),
        ("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", .malformedRequestLine),
        ("GET /\u{7f} HTTP/1.1\r\nHost: x\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", .unsupportedVersion),
        ("GET / HTTPS/1.1\r\nHost: x\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", .malformedRequestLine),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: a b\r\n\r\n", .malformedField),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: " + (0...64).map { "o\($0)" }.joined(separator: ",") + "\r\n\r\n",
         .tooManyConnectionOptions(limit: 64)),
    ])
    func refusedRequests(text: String, error: FramingError) {
        #expect(throws: error) { try request(text) }
    }

    @Test("forwarding: hop-by-hop fields go, framing and Host stay whatever Connection names, X-Forwarded-For is one field")
    func forwardedRequests() throws {
        #expect(try forwarded("GET /a?b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
                == "GET /a?b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n")
        let rewritten = try forwarded("POST /p HTTP/1.0\r\nHost: x\r\nConnection: keep-alive, X-Secret, Content-Length, host\r\n"
                                      + "X-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Forwarded-For: 1.1.1.1\r\n"
                                      + "Content-Length: 3\r\nx-forwarded-for: 2.2.2.2 \r\n\r\n")
        #expect(rewritten == "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\n\r\n")
        #expect(try forwarded("GET /old HTTP/1.0\r\n\r\n") == "GET /old HTTP/1.1\r\nHost: \r\nX-Forwarded-For: 10.0.0.9\r\n\r\n")
        #expect(try forwarded("GET / HTTP/1.1\r\nHost: x\r\nConnection:\r\n\r\n") == "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n")
        // Framing as strict servers read it: one Content-Length, and `chunked` written plainly.
        #expect(try forwarded("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\ncontent-length: 2\r\nTrailer: X-T\r\n\r\n")
                == "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTrailer: X-T\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n")
        #expect(try forwarded("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tCHUNKED\r\n\r\n")
                == "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n")
    }

    @Test("responses: framing by status, method and fields; keep-alive; interim answers")
    func responses() throws {
        #expect(try response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").0.body == .length(5))
        #expect(try response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", toHead: true).0.body == .none)
        #expect(try response("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").0.body == .none)
        #expect(try response("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n").0.body == .none)
        #expect(try response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").0.body == .chunked)
        let close = try response("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").0
        #expect(close.body == .untilClose && !close.keepAlive)
        let old = try response("HTTP/1.0 200\r\nContent-Length: 0\r\n\r\n").0
        #expect(old.body == .none && !old.keepAlive && old.status == 200)
        #expect(try response("HTTP/1.1 100 Continue\r\n\r\n").0.isInterim)
        #expect(!(try response("HTTP/1.1 101 Switching Protocols\r\n\r\n").0.isInterim))
        #expect(throws: FramingError.lengthAndTransferEncoding) { try response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") }
        #expect(throws: FramingError.malformedStatusLine) { try response("HTTP/1.1 20 OK\r\n\r\n") }
        #expect(throws: FramingError.malformedStatusLine) { try response("HTTP/1.1 600 OK\r\n\r\n") }
        #expect(throws: FramingError.unsupportedVersion) { try response("HTTP/2.0 200 OK\r\n\r\n") }
    }

    @Test("a response head goes out unchanged only when nothing in it must change")
    func forwardedResponses() throws {
        let (head, fields, bytes) = try response("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
                                                 + "Transfer-Encoding: chunked\r\nX-Kept: 2\r\n\r\n")
        #expect(!ForwardedHead.responseUnchanged(head, clientMinorVersion: 1, keepAlive: true))
        func written(_ minor: Int, keepAlive: Bool, dechunked: Bool) -> String {
            var out: [UInt8] = []
            bytes.withUnsafeBytes {
                ForwardedHead.response($0, head: head, fields: fields, clientMinorVersion: minor, keepAlive: keepAlive, dechunked: dechunked, into: &out)
            }
            return String(decoding: out, as: UTF8.self)
        }
        #expect(written(1, keepAlive: true, dechunked: false) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kept: 2\r\n\r\n")
        #expect(written(0, keepAlive: false, dechunked: true) == "HTTP/1.0 200 OK\r\nX-Kept: 2\r\nConnection: close\r\n\r\n")
        let plain = try response("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n").0
        #expect(ForwardedHead.responseUnchanged(plain, clientMinorVersion: 1, keepAlive: true))
        #expect(!ForwardedHead.responseUnchanged(plain, clientMinorVersion: 0, keepAlive: true))
        #expect(!ForwardedHead.responseUnchanged(plain, clientMinorVersion: 1, keepAlive: false))
    }

    @Test("bodies end where their framing says, however the bytes are split", arguments: [1, 2, 3, 7, 1000])
    func bodies(step: Int) throws {
        let chunked = "5;name=\"v\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\nGET /next"
        let read = try readBody(.chunked, chunked, step: step)
        #expect(read.complete && read.payload == "helloabcdefghijklmnopqrstuvwxyz")
        #expect(read.consumed == chunked.utf8.count - "GET /next".utf8.count)
        let length = try readBody(.length(5), "12345GET", step: step)
        #expect(length.complete && length.consumed == 5 && length.payload == "12345")
        let open = try readBody(.untilClose, "all of it", step: step)
        #expect(!open.complete && open.consumed == 9)
    }

    @Test("broken chunked framing is an error, never a guess", arguments: [
        "x\r\n", "\r\n", "5\nhello\r\n0\r\n\r\n", "5 \r\nhello\r\n", "5\r\nhelloX\r\n", "5 x\r\n", "1234567890abcdef0\r\n",
        "5;a\u{1}\r\n", "0\r\n folded: t\r\n\r\n", "0\r\nX-T: a\nb\r\n\r\n", "0\r\n\r\r",
    ])
    func brokenChunks(body: String) {
        #expect(throws: FramingError.self) { try readBody(.chunked, body, step: 1) }
    }

    @Test("trailers and chunk extensions are bounded")
    func boundedChunks() {
        #expect(throws: FramingError.malformedChunk) { try readBody(.chunked, "1;" + String(repeating: "a", count: 5000) + "\r\n", step: 64) }
        #expect(throws: FramingError.trailersTooLarge(limit: BodyReader.trailerLimit)) {
            try readBody(.chunked, "0\r\nX: " + String(repeating: "a", count: 20_000) + "\r\n\r\n", step: 512)
        }
    }
}
