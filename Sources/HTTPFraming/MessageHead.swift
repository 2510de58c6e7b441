/// How a message's body is delimited (RFC 9112 §6.3).
public enum BodyFraming: Equatable, Sendable {
    /// No body follows the head.
    case none
    /// Exactly this many bytes follow.
    case length(UInt64)
    /// Chunks follow, up to the last chunk and the trailer section.
    case chunked
    /// The body is everything until the sender closes the connection (responses only).
    case untilClose
}

/// A field of a header section, as positions in the head's bytes.
public struct HeaderField: Equatable, Sendable {
    /// The fields a relay treats specially; every other is `.other`.
    public enum Kind: UInt8, Sendable {
        case other, host, contentLength, transferEncoding, connection, forwardedFor
        /// Keep-Alive, Proxy-Connection, TE, Upgrade, Proxy-Authenticate, Proxy-Authorization (RFC 9110 §7.6.1;
        /// Trailer is end-to-end since RFC 9110).
        case hopByHop
    }

    public var kind: Kind
    public var name: Range<Int>
    /// Without the whitespace around it.
    public var value: Range<Int>
    /// The whole line without its CRLF.
    public var line: Range<Int>
}

/// Where an HTTP/1.1 header section ends, found in bytes as they arrive without reading any byte twice.
public struct HeadScanner: Sendable {
    /// Bytes before this were looked at and hold no end.
    private var scanned = 0
    /// The largest header section accepted.
    public let limit: Int

    public init(limit: Int) { self.limit = limit }

    /// The empty lines (CRLF) that may precede a request line (RFC 9112 §2.2), to be skipped.
    public static func leadingEmptyLines(_ bytes: UnsafeRawBufferPointer) -> Int {
        var count = 0
        while count + 1 < bytes.count, bytes[count] == ASCII.cr, bytes[count + 1] == ASCII.lf { count += 2 }
        return count
    }

    /// The length of the header section at the start of `bytes` (through the empty line that ends it),
    /// nil while it has not all arrived. A bare LF also ends a line here, so that a client that sends
    /// only LFs gets an error from the parser instead of a wait; the parser refuses it.
    public mutating func end(in bytes: UnsafeRawBufferPointer) throws(FramingError) -> Int? {
        var position = Swift.max(scanned, 0)
        let count = bytes.count
        while position < count {
            guard let base = bytes.baseAddress,
                  let found = memchr(base + position, Int32(ASCII.lf), count - position) else {
                position = count
                break
            }
            let lf = base.distance(to: UnsafeRawPointer(found))
            if lf + 1 >= count || (bytes[lf + 1] == ASCII.cr && lf + 2 >= count) {
                // What follows this LF has not arrived yet.
                position = lf
                break
            }
            if bytes[lf + 1] == ASCII.lf { return try reset(lf + 2) }
            if bytes[lf + 1] == ASCII.cr && bytes[lf + 2] == ASCII.lf { return try reset(lf + 3) }
            position = lf + 1
        }
        scanned = position
        if count > limit { throw .headTooLarge(limit: limit) }
        return nil
    }

    private mutating func reset(_ end: Int) throws(FramingError) -> Int? {
        scanned = 0
        // However the bytes arrived: a head past the limit is refused whole as it is in parts.
        if end > limit { throw .headTooLarge(limit: limit) }
        return end
    }

    /// Forgets what was scanned: the next head starts at a new place.
    public mutating func restart() { scanned = 0 }
}

/// What a header section says about framing and connection handling, common to requests and responses.
public struct FieldSummary: Equatable, Sendable {
    public var contentLength: UInt64?
    /// Transfer-Encoding is present; `chunkedLast` says whether its last coding is chunked.
    public var transferEncoding = false
    public var chunkedLast = false
    public var hostCount = 0
    /// Connection options: close, keep-alive, and whether it names other fields (which are then hop-by-hop).
    public var connectionClose = false
    public var connectionKeepAlive = false
    public var connectionNamesFields = false
    /// A hop-by-hop field other than Connection is present.
    public var hopByHop = false
    public var forwardedFor = false
    /// Connection options counted over all Connection fields.
    public var connectionOptions = 0
    /// Content-Length fields seen (several with one value are allowed, and passed on as one).
    public var contentLengthFields = 0
    /// Transfer-Encoding is exactly `chunked`, in one field, written so.
    public var plainChunked = false

    /// The most Connection options accepted in one head.
    public static let connectionOptionLimit = 64
}

/// Reads the fields of a header section (after its first line) into `fields`, checking the grammar
/// of each line, and sums up what they say.
func parseFields(_ bytes: UnsafeRawBufferPointer, from start: Int, end: Int, into fields: inout [HeaderField]) throws(FramingError) -> FieldSummary {
    var summary = FieldSummary()
    var position = start
    let table = ByteClass.table
    return try table.withUnsafeBufferPointer { (table) throws(FramingError) -> FieldSummary in
        while true {
            guard position < end else { throw .bareLineEnding }
            let first = bytes[position]
            if first == ASCII.cr {
                guard position + 2 == end, bytes[position + 1] == ASCII.lf else { throw .bareLineEnding }
                return summary
            }
            if first == ASCII.lf { throw .bareLineEnding }
            if ASCII.isWhitespace(first) { throw .obsoleteLineFolding }
            // The name: tokens up to the colon, with no whitespace before it (RFC 9112 §5.1).
            let nameStart = position
            while position < end, table[Int(bytes[position])] & ByteClass.token != 0 { position += 1 }
            guard position < end, bytes[position] == ASCII.colon, position > nameStart else { throw .malformedField }
            let name = nameStart..<position
            position += 1
            while position < end, ASCII.isWhitespace(bytes[position]) { position += 1 }
            let valueStart = position
            while position < end, table[Int(bytes[position])] & ByteClass.fieldValue != 0 { position += 1 }
            guard position + 1 < end else { throw .bareLineEnding }
            if bytes[position] != ASCII.cr {
                throw bytes[position] == ASCII.lf ? .bareLineEnding : .malformedField
            }
            guard bytes[position + 1] == ASCII.lf else { throw .bareLineEnding }
            var valueEnd = position
            while valueEnd > valueStart, ASCII.isWhitespace(bytes[valueEnd - 1]) { valueEnd -= 1 }
            let value = valueStart..<valueEnd
            let kind = try interpret(bytes, name: name, value: value, summary: &summary)
            fields.append(HeaderField(kind: kind, name: name, value: value, line: nameStart..<position))
            position += 2
        }
    }
}

/// The kind of the field `name`, with what its value says added to `summary`.
private func interpret(_ bytes: UnsafeRawBufferPointer, name: Range<Int>, value: Range<Int>,
                       summary: inout FieldSummary) throws(FramingError) -> HeaderField.Kind {
    switch name.count {
    case 4 where bytes.equalsIgnoringCase(name, "host"):
        summary.hostCount += 1
        return .host
    case 14 where bytes.equalsIgnoringCase(name, "content-length"):
        let length = try contentLength(bytes, value)
        if let previous = summary.contentLength, previous != length { throw .invalidContentLength }
        summary.contentLength = length
        summary.contentLengthFields += 1
        return .contentLength
    case 17 where bytes.equalsIgnoringCase(name, "transfer-encoding"):
        let codings = bytes.listElements(value)
        // Transfer-Encoding may be split over several lines: the last coding of all of them counts.
        if summary.chunkedLast && !codings.isEmpty { throw .invalidTransferEncoding }
        for (index, coding) in codings.enumerated() {
            // A coding may carry parameters (`gzip;q=…` is not valid here, but `ext; a=b` is the grammar):
            // only its name decides, and chunked never takes any.
            let nameEnd = coding.firstIndex { bytes[$0] == ASCII.semicolon || ASCII.isWhitespace(bytes[$0]) } ?? coding.upperBound
            guard bytes.isToken(coding.lowerBound..<nameEnd) else { throw .invalidTransferEncoding }
            if bytes.equalsIgnoringCase(coding.lowerBound..<nameEnd, "chunked") {
                guard index == codings.count - 1, nameEnd == coding.upperBound else { throw .invalidTransferEncoding }
                summary.chunkedLast = true
            }
        }
        guard !codings.isEmpty else { throw .invalidTransferEncoding }
        summary.plainChunked = !summary.transferEncoding && bytes.equals(value, "chunked")
        summary.transferEncoding = true
        return .transferEncoding
    case 10 where bytes.equalsIgnoringCase(name, "connection"):
        for option in bytes.listElements(value) {
            guard bytes.isToken(option) else { throw .malformedField }
            summary.connectionOptions += 1
            guard summary.connectionOptions <= FieldSummary.connectionOptionLimit else {
                throw .tooManyConnectionOptions(limit: FieldSummary.connectionOptionLimit)
            }
            if bytes.equalsIgnoringCase(option, "close") {
                summary.connectionClose = true
            } else if bytes.equalsIgnoringCase(option, "keep-alive") {
                summary.connectionKeepAlive = true
            } else {
                summary.connectionNamesFields = true
            }
        }
        return .connection
    case 10 where bytes.equalsIgnoringCase(name, "keep-alive"),
         16 where bytes.equalsIgnoringCase(name, "proxy-connection"),
         2 where bytes.equalsIgnoringCase(name, "te"),
         7 where bytes.equalsIgnoringCase(name, "upgrade"),
         18 where bytes.equalsIgnoringCase(name, "proxy-authenticate"),
         19 where bytes.equalsIgnoringCase(name, "proxy-authorization"):
        summary.hopByHop = true
        return .hopByHop
    case 15 where bytes.equalsIgnoringCase(name, "x-forwarded-for"):
        summary.forwardedFor = true
        return .forwardedFor
    default:
        return .other
    }
}

/// A Content-Length value: one decimal number of at most 18 digits (no sign, no list).
private func contentLength(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) throws(FramingError) -> UInt64 {
    guard !value.isEmpty, value.count <= 18 else { throw .invalidContentLength }
    var length: UInt64 = 0
    for position in value {
        let byte = bytes[position]
        guard byte >= 0x30 && byte <= 0x39 else { throw .invalidContentLength }
        length = length * 10 + UInt64(byte - 0x30)
    }
    return length
}

/// The minor version of `HTTP/1.x` at `start`, which must be 0 or 1.
private func httpVersion(_ bytes: UnsafeRawBufferPointer, at start: Int, end: Int, malformed: FramingError) throws(FramingError) -> Int {
    guard start + 8 <= end else { throw malformed }
    let prefix: StaticString = "HTTP/"
    for offset in 0..<5 where bytes[start + offset] != prefix.utf8Start[offset] { throw malformed }
    let major = bytes[start + 5], dot = bytes[start + 6], minor = bytes[start + 7]
    guard major >= 0x30 && major <= 0x39, dot == 0x2E, minor >= 0x30 && minor <= 0x39 else { throw malformed }
    guard major == 0x31, minor <= 0x31 else { throw .unsupportedVersion }
    return Int(minor - 0x30)
}

/// A request's head: its request line, its fields, and what they say about the body and the connection.
public struct RequestHead: Equatable, Sendable {
    /// The head's length in bytes, through the empty line that ends it.
    public var length: Int
    public var method: Range<Int>
    public var target: Range<Int>
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var fields: FieldSummary
    public var body: BodyFraming
    /// The client wants the connection kept open after the response.
    public var keepAlive: Bool
    /// GET, HEAD, PUT, DELETE, OPTIONS, TRACE: may be sent again after a backend failed before answering.
    public var idempotent: Bool
    /// HEAD: its response has no body whatever it says.
    public var isHead: Bool
    /// CONNECT: asks for a tunnel, which a relay of requests does not make.
    public var isConnect: Bool

    /// Parses the head in the first `length` bytes of `bytes` (as ``HeadScanner`` found it), appending
    /// its fields to `fields` (which the caller empties and reuses).
    public static func parse(_ bytes: UnsafeRawBufferPointer, length: Int, fields: inout [HeaderField]) throws(FramingError) -> RequestHead {
        guard length <= bytes.count else { throw .malformedRequestLine }
        let table = ByteClass.table
        var position = 0
        let (method, target) = try table.withUnsafeBufferPointer { (table) throws(FramingError) -> (Range<Int>, Range<Int>) in
            while position < length, table[Int(bytes[position])] & ByteClass.token != 0 { position += 1 }
            let method = 0..<position
            guard !method.isEmpty, position < length, bytes[position] == ASCII.space else { throw .malformedRequestLine }
            position += 1
            let targetStart = position
            while position < length, table[Int(bytes[position])] & ByteClass.target != 0 { position += 1 }
            guard position > targetStart, position < length, bytes[position] == ASCII.space else { throw .malformedRequestLine }
            return (method, targetStart..<position)
        }
        let minor = try httpVersion(bytes, at: position + 1, end: length, malformed: .malformedRequestLine)
        position += 9
        guard position + 1 < length, bytes[position] == ASCII.cr else { throw .malformedRequestLine }
        guard bytes[position + 1] == ASCII.lf else { throw .bareLineEnding }
        let summary = try parseFields(bytes, from: position + 2, end: length, into: &fields)

        if minor == 1 && summary.hostCount != 1 || summary.hostCount > 1 { throw .hostCount }
        let body: BodyFraming
        if summary.transferEncoding {
            guard minor == 1, summary.chunkedLast else { throw .invalidTransferEncoding }
            guard summary.contentLength == nil else { throw .lengthAndTransferEncoding }
            // Only plain chunked: a coding under it (`gzip, chunked`) is the backend's to decode, and
            // servers disagree on accepting it; written otherwise (`CHUNKED`), it is passed on as `chunked`.
            guard bytes.listElements(fields.last { $0.kind == .transferEncoding }!.value).count == 1,
                  fields.filter({ $0.kind == .transferEncoding }).count == 1 else { throw .unsupportedTransferCoding }
            body = .chunked
        } else if let contentLength = summary.contentLength, contentLength > 0 {
            body = .length(contentLength)
        } else {
            body = .none
        }
        let keepAlive = minor == 1 ? !summary.connectionClose : (summary.connectionKeepAlive && !summary.connectionClose)
        let methodName = method
        func isMethod(_ name: StaticString) -> Bool {
            guard methodName.count == name.utf8CodeUnitCount else { return false }
            for offset in 0..<methodName.count where bytes[methodName.lowerBound + offset] != name.utf8Start[offset] { return false }
            return true
        }
        let idempotent = isMethod("GET") || isMethod("HEAD") || isMethod("PUT") || isMethod("DELETE") || isMethod("OPTIONS") || isMethod("TRACE")
        return RequestHead(length: length, method: method, target: target, minorVersion: minor, fields: summary, body: body,
                           keepAlive: keepAlive, idempotent: idempotent, isHead: isMethod("HEAD"), isConnect: isMethod("CONNECT"))
    }
}

/// A response's head: its status line, its fields, and what they say about the body and the connection.
public struct ResponseHead: Equatable, Sendable {
    /// The head's length in bytes, through the empty line that ends it.
    public var length: Int
    public var minorVersion: Int
    public var status: Int
    public var fields: FieldSummary
    public var body: BodyFraming
    /// The backend keeps the connection open after this response.
    public var keepAlive: Bool

    /// An interim answer (100 Continue, 103 Early Hints): the final one follows. 101 is not one.
    public var isInterim: Bool { status >= 100 && status < 200 && status != 101 }

    /// Parses the head in the first `length` bytes of `bytes`, the answer to a request that was a HEAD
    /// (`toHead`) or not, appending its fields to `fields` (which the caller empties and reuses).
    public static func parse(_ bytes: UnsafeRawBufferPointer, length: Int, toHead: Bool, fields: inout [HeaderField]) throws(FramingError) -> ResponseHead {
        guard length <= bytes.count else { throw .malformedStatusLine }
        let minor = try httpVersion(bytes, at: 0, end: length, malformed: .malformedStatusLine)
        guard length > 12, bytes[8] == ASCII.space else { throw .malformedStatusLine }
        var status = 0
        for position in 9..<12 {
            let digit = bytes[position]
            guard digit >= 0x30 && digit <= 0x39 else { throw .malformedStatusLine }
            status = status * 10 + Int(digit - 0x30)
        }
        guard status >= 100 && status <= 599 else { throw .malformedStatusLine }
        var position = 12
        if bytes[position] == ASCII.space {
            position += 1
            try ByteClass.table.withUnsafeBufferPointer { (table) throws(FramingError) in
                while position < length, table[Int(bytes[position])] & ByteClass.fieldValue != 0 { position += 1 }
            }
        }
        guard position + 1 < length, bytes[position] == ASCII.cr else { throw .malformedStatusLine }
        guard bytes[position + 1] == ASCII.lf else { throw .bareLineEnding }
        let summary = try parseFields(bytes, from: position + 2, end: length, into: &fields)

        let body: BodyFraming
        if toHead || status < 200 || status == 204 || status == 304 {
            body = .none
        } else if summary.transferEncoding {
            guard summary.contentLength == nil else { throw .lengthAndTransferEncoding }
            body = summary.chunkedLast ? .chunked : .untilClose
        } else if let contentLength = summary.contentLength {
            body = contentLength > 0 ? .length(contentLength) : .none
        } else {
            body = .untilClose
        }
        let keepAlive = body != .untilClose
            && (minor == 1 ? !summary.connectionClose : (summary.connectionKeepAlive && !summary.connectionClose))
        return ResponseHead(length: length, minorVersion: minor, status: status, fields: summary, body: body, keepAlive: keepAlive)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
