import FuzzSupport
import HTTPFraming

/// The load balancer's HTTP/1.1 framing: what it reads from clients (request heads, chunked bodies) and
/// from backends (response heads). The first byte picks what the rest is read as (0: a request and its
/// body, 1: a response and its body, to a HEAD when bit 1 is set); its high bits pick a split point.
///
/// Invariants: a head's end is the same however its bytes arrive; a body's end and payload are the same
/// read whole or a byte at a time; a head that parses is forwarded as one that parses again with the
/// same framing, no hop-by-hop field and one X-Forwarded-For (requests), or the same status (responses).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPFraming(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzBytes(data, size)
    guard let mode = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    bytes.withUnsafeBytes { raw in
        guard let end = headEnd(raw, split: Int(mode >> 2)) else { return }
        var fields: [HeaderField] = []
        if mode & 1 == 0 {
            guard let head = try? RequestHead.parse(raw, length: end, fields: &fields) else { return }
            checkForwarded(raw, head, fields)
            checkCookie(raw, fields)
            checkBody(UnsafeRawBufferPointer(rebasing: raw[end...]), head.body)
        } else {
            let toHead = mode & 2 != 0
            guard let head = try? ResponseHead.parse(raw, length: end, toHead: toHead, fields: &fields) else { return }
            for (minor, keepAlive) in [(0, false), (1, true), (1, false)] {
                var out: [UInt8] = []
                ForwardedHead.response(raw, head: head, fields: fields, clientMinorVersion: minor, keepAlive: keepAlive, dechunked: minor == 0, into: &out)
                out.withUnsafeBytes { again in
                    var scanner = HeadScanner(limit: Int.max)
                    let againEnd = try? scanner.end(in: again)
                    fuzzCheck(againEnd == again.count, "a forwarded response head does not end where it should")
                    var againFields: [HeaderField] = []
                    let reparsed = try? ResponseHead.parse(again, length: again.count, toHead: toHead, fields: &againFields)
                    fuzzCheck(reparsed?.status == head.status, "a forwarded response head does not parse with its status")
                    fuzzCheck(reparsed?.fields.hopByHop == false && reparsed?.fields.connectionNamesFields == false, "hop-by-hop fields survived")
                    if minor == 1 { fuzzCheck(reparsed?.body == head.body, "a forwarded response changed its framing") }
                }
            }
            checkBody(UnsafeRawBufferPointer(rebasing: raw[end...]), head.body)
        }
    }
    return 0
}

/// A cookie's value (the sticky canary's, and one named by the head's first bytes) lies inside a
/// `Cookie` field's value, right after its name and `=`.
private func checkCookie(_ raw: UnsafeRawBufferPointer, _ fields: [HeaderField]) {
    for name in [Array("imgdeploy-canary".utf8), Array(raw.prefix(3))] where !name.isEmpty {
        guard let value = CookieHeader.value(named: name, in: raw, fields: fields) else { continue }
        fuzzCheck(value.lowerBound >= name.count + 1 && value.upperBound <= raw.count, "a cookie's value lies outside the head")
        fuzzCheck(fields.contains { $0.value.contains(value.lowerBound - 1) || $0.value.upperBound == value.upperBound }, "a cookie's value is outside every field")
        fuzzCheck(raw[value.lowerBound - 1] == UInt8(ascii: "=") && raw[(value.lowerBound - 1 - name.count)..<(value.lowerBound - 1)].elementsEqual(name),
                  "a cookie's value does not follow its name")
    }
}

/// The end of the head, checked to be the same when the bytes arrive in two parts.
private func headEnd(_ raw: UnsafeRawBufferPointer, split: Int) -> Int? {
    var whole = HeadScanner(limit: 16 * 1024)
    let end = try? whole.end(in: raw)
    var parts = HeadScanner(limit: 16 * 1024)
    let first = try? parts.end(in: UnsafeRawBufferPointer(rebasing: raw[..<min(split, raw.count)]))
    let found = first ?? (try? parts.end(in: raw))
    fuzzCheck(found == end, "the head ends at \(String(describing: end)) read whole, at \(String(describing: found)) in two parts")
    return end ?? nil
}

/// The forwarded request head parses again, the same way.
private func checkForwarded(_ raw: UnsafeRawBufferPointer, _ head: RequestHead, _ fields: [HeaderField]) {
    var out: [UInt8] = []
    ForwardedHead.request(raw, head: head, fields: fields, clientAddress: "192.0.2.1", into: &out)
    out.withUnsafeBytes { again in
        var scanner = HeadScanner(limit: Int.max)
        fuzzCheck((try? scanner.end(in: again)) == again.count, "a forwarded request head does not end where it should")
        var againFields: [HeaderField] = []
        let reparsed: RequestHead
        do {
            reparsed = try RequestHead.parse(again, length: again.count, fields: &againFields)
        } catch {
            fuzzCheck(false, "a forwarded request head is refused: \(error)")
            return
        }
        fuzzCheck(reparsed.body == head.body, "a forwarded request changed its framing")
        fuzzCheck(Array(again[reparsed.method]) == Array(raw[head.method]) && Array(again[reparsed.target]) == Array(raw[head.target]),
                  "a forwarded request changed its method or target")
        fuzzCheck(!reparsed.fields.hopByHop && !reparsed.fields.connectionNamesFields, "hop-by-hop fields survived")
        fuzzCheck(againFields.filter { $0.kind == .forwardedFor }.count == 1, "not exactly one X-Forwarded-For")
    }
}

/// A body reads the same whole and a byte at a time.
private func checkBody(_ raw: UnsafeRawBufferPointer, _ framing: BodyFraming) {
    var whole = BodyReader(framing)
    var wholePayload: [UInt8] = []
    let wholeResult = Result { () throws(FramingError) -> Int in try whole.read(raw) { wholePayload.append(contentsOf: raw[$0]) } }
    var stepped = BodyReader(framing)
    var steppedPayload: [UInt8] = []
    var consumed = 0
    var failure: FramingError?
    while consumed < raw.count, !stepped.isComplete {
        let piece = UnsafeRawBufferPointer(rebasing: raw[consumed..<consumed + 1])
        do {
            let taken = try stepped.read(piece) { steppedPayload.append(contentsOf: piece[$0]) }
            consumed += taken
            if taken == 0 { break }
        } catch {
            failure = error
            break
        }
    }
    switch wholeResult {
    case .success(let count):
        fuzzCheck(failure == nil && count == consumed, "a body ends at \(count) read whole but at \(consumed) a byte at a time")
        fuzzCheck(wholePayload == steppedPayload, "a body's payload depends on how its bytes arrived")
        fuzzCheck(whole.isComplete == stepped.isComplete, "a body is complete one way and not the other")
        fuzzCheck(wholePayload.count <= count, "more payload than body")
    case .failure(let error):
        fuzzCheck(failure == error, "a body fails read whole (\(error)) but not a byte at a time")
    }
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzHTTPFraming`.
@_cdecl("FuzzHTTPFraming_main")
public func fuzzHTTPFramingMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzHTTPFraming)
}
