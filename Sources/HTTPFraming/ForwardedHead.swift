/// Heads as a reverse proxy passes them on (RFC 9110 §7.6): hop-by-hop fields removed, the version
/// the next hop speaks, and the client's address appended to X-Forwarded-For. Framing fields and
/// Host are never hop-by-hop, whatever Connection names, so a client cannot strip a body's framing.
public enum ForwardedHead {
    /// Writes the request head a backend receives: HTTP/1.1, without hop-by-hop fields, with
    /// `clientAddress` appended to X-Forwarded-For (merged into one field).
    public static func request(_ bytes: UnsafeRawBufferPointer, head: RequestHead, fields: [HeaderField],
                               clientAddress: String, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + head.length + 64)
        let summary = head.fields
        let framingAsIs = summary.contentLengthFields <= 1 && (!summary.transferEncoding || summary.plainChunked)
        if head.minorVersion == 1 && framingAsIs && !summary.hopByHop && !summary.forwardedFor && !summary.connectionClose
            && !summary.connectionKeepAlive && !summary.connectionNamesFields && !fields.contains(where: { $0.kind == .connection }) {
            // Nothing to remove: the head as it came, with one more field before the empty line.
            out.append(contentsOf: bytes[0..<head.length - 2])
            appendForwardedFor(previous: [], bytes, clientAddress, into: &out)
            out.append(contentsOf: crlf)
            return
        }
        out.append(contentsOf: bytes[head.method])
        out.append(ASCII.space)
        out.append(contentsOf: bytes[head.target])
        out.append(contentsOf: " HTTP/1.1\r\n".utf8)
        // HTTP/1.1 needs a Host; an HTTP/1.0 request may come without one, and then goes with it empty
        // (RFC 9112 §3.2: the authority is unknown).
        if summary.hostCount == 0 { out.append(contentsOf: "Host: \r\n".utf8) }
        let named = connectionOptions(bytes, fields)
        var previous: [Range<Int>] = []
        var lengthWritten = false
        for field in fields {
            switch field.kind {
            case .connection, .hopByHop: continue
            case .forwardedFor:
                previous.append(field.value)
                continue
            case .other where named.contains(where: { bytes.equalsIgnoringCase($0, field.name) }):
                continue
            case .contentLength:
                // Several fields with one value (allowed) go on as one, which strict servers require.
                guard !lengthWritten else { continue }
                lengthWritten = true
                out.append(contentsOf: bytes[field.line])
                out.append(contentsOf: crlf)
            case .transferEncoding:
                // The only coding a request may carry here is chunked (RequestHead refuses others),
                // written as every server reads it.
                out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
            case .other, .host:
                out.append(contentsOf: bytes[field.line])
                out.append(contentsOf: crlf)
            }
        }
        appendForwardedFor(previous: previous, bytes, clientAddress, into: &out)
        out.append(contentsOf: crlf)
    }

    /// Whether a response head can go to the client byte for byte: the client speaks its version,
    /// stays connected, and the only hop-by-hop field says keep-alive.
    public static func responseUnchanged(_ head: ResponseHead, clientMinorVersion: Int, keepAlive: Bool) -> Bool {
        head.minorVersion == 1 && clientMinorVersion == 1 && keepAlive
            && !head.fields.hopByHop && !head.fields.connectionClose && !head.fields.connectionNamesFields
    }

    /// Writes the response head a client receives: its own version, without hop-by-hop fields, with
    /// `Connection: close` when the connection ends after it (or `keep-alive` to an HTTP/1.0 client
    /// that stays), and without Transfer-Encoding when the body is passed on dechunked.
    public static func response(_ bytes: UnsafeRawBufferPointer, head: ResponseHead, fields: [HeaderField], clientMinorVersion: Int,
                                keepAlive: Bool, dechunked: Bool, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + head.length + 32)
        out.append(contentsOf: (clientMinorVersion == 1 ? "HTTP/1.1" : "HTTP/1.0").utf8)
        let statusLineEnd = fields.first?.line.lowerBound ?? head.length - 2
        out.append(contentsOf: bytes[8..<statusLineEnd])
        let named = connectionOptions(bytes, fields)
        for field in fields {
            switch field.kind {
            case .connection, .hopByHop: continue
            case .transferEncoding where dechunked: continue
            case .other where named.contains(where: { bytes.equalsIgnoringCase($0, field.name) }):
                continue
            case .other, .host, .contentLength, .transferEncoding, .forwardedFor:
                out.append(contentsOf: bytes[field.line])
                out.append(contentsOf: crlf)
            }
        }
        if !keepAlive {
            out.append(contentsOf: "Connection: close\r\n".utf8)
        } else if clientMinorVersion == 0 {
            out.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        out.append(contentsOf: crlf)
    }

    private static let crlf: [UInt8] = [ASCII.cr, ASCII.lf]

    /// The fields Connection names, other than the framing ones and Host (never hop-by-hop).
    private static func connectionOptions(_ bytes: UnsafeRawBufferPointer, _ fields: [HeaderField]) -> [Range<Int>] {
        var named: [Range<Int>] = []
        for field in fields where field.kind == .connection {
            for option in bytes.listElements(field.value)
            where !bytes.equalsIgnoringCase(option, "content-length") && !bytes.equalsIgnoringCase(option, "transfer-encoding")
                && !bytes.equalsIgnoringCase(option, "host") {
                named.append(option)
            }
        }
        return named
    }

    private static func appendForwardedFor(previous: [Range<Int>], _ bytes: UnsafeRawBufferPointer, _ address: String, into out: inout [UInt8]) {
        out.append(contentsOf: "X-Forwarded-For: ".utf8)
        for value in previous where !value.isEmpty {
            out.append(contentsOf: bytes[value])
            out.append(contentsOf: ", ".utf8)
        }
        out.append(contentsOf: address.utf8)
        out.append(contentsOf: crlf)
    }
}
