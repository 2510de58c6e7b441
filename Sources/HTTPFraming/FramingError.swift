/// Why bytes are not an HTTP/1.1 message a relay can pass on safely (RFC 9112). Each case names the rule
/// that was broken, so a client's 400 (or the log of a backend's 502) says what to fix.
public enum FramingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The header section is longer than the limit, with no end in sight.
    case headTooLarge(limit: Int)
    /// The request line is not `METHOD SP TARGET SP HTTP/1.x`.
    case malformedRequestLine
    /// The status line is not `HTTP/1.x SP NNN [SP reason]`.
    case malformedStatusLine
    /// A protocol other than HTTP/1.0 or HTTP/1.1.
    case unsupportedVersion
    /// A line of the header section that is not `name: value`, or holds a byte a field may not hold.
    case malformedField
    /// A field continued on the next line (obs-fold, RFC 9112 §5.2): refused, never joined.
    case obsoleteLineFolding
    /// A line ends in a bare LF or a bare CR, which peers disagree on.
    case bareLineEnding
    /// An HTTP/1.1 request without exactly one Host (RFC 9112 §3.2).
    case hostCount
    /// A Content-Length that is not a decimal number, or several that differ.
    case invalidContentLength
    /// A Transfer-Encoding whose last coding is not chunked (a request's length is then unknowable),
    /// chunked applied twice, or one in an HTTP/1.0 message (RFC 9112 §6.1).
    case invalidTransferEncoding
    /// Both Transfer-Encoding and Content-Length: the two framings may disagree (RFC 9112 §6.3).
    case lengthAndTransferEncoding
    /// A request body in a transfer coding other than plain chunked (`gzip, chunked`): not decoded here,
    /// and peers disagree on it (RFC 9112 §6.1: 501).
    case unsupportedTransferCoding
    /// A Connection header naming more options than any client needs (each is matched against every field).
    case tooManyConnectionOptions(limit: Int)
    /// A chunk's size line, data end or trailer section is malformed.
    case malformedChunk
    /// The trailer section is longer than the limit.
    case trailersTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .headTooLarge(let limit): return "the header section is larger than \(limit) bytes"
        case .malformedRequestLine: return "the request line is not 'METHOD TARGET HTTP/1.1'"
        case .malformedStatusLine: return "the status line is not 'HTTP/1.1 CODE REASON'"
        case .unsupportedVersion: return "only HTTP/1.0 and HTTP/1.1 are spoken here"
        case .malformedField: return "a header line is not 'name: value' or holds a control character"
        case .obsoleteLineFolding: return "a header is folded onto a second line (obs-fold), which is not accepted"
        case .bareLineEnding: return "a line ends in a bare LF or CR instead of CRLF"
        case .hostCount: return "an HTTP/1.1 request needs exactly one Host header"
        case .invalidContentLength: return "Content-Length is not one decimal number"
        case .invalidTransferEncoding: return "Transfer-Encoding must end in 'chunked' (and HTTP/1.0 has none)"
        case .lengthAndTransferEncoding: return "a message has both Content-Length and Transfer-Encoding"
        case .unsupportedTransferCoding: return "a request body may only be sent with 'Transfer-Encoding: chunked' or a Content-Length"
        case .tooManyConnectionOptions(let limit): return "the Connection header names more than \(limit) options"
        case .malformedChunk: return "the chunked body is malformed"
        case .trailersTooLarge(let limit): return "the trailer section is larger than \(limit) bytes"
        }
    }
}
