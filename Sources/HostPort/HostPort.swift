/// A TCP endpoint written `HOST:PORT`, as servers are told where to listen and proxies where to connect:
/// `127.0.0.1:9000`, `localhost:9000`, `[::1]:9000`. The one parser of that form for every command line
/// and spec (a registry's `HOST[:PORT]/PATH` is an image location's grammar, parsed by `Distribution`).
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    /// The host, without the brackets of an IPv6 literal.
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Why text is not `HOST:PORT`.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        /// No `:PORT` at the end, or what follows the last colon is not a number.
        case noPort
        /// A port outside the range the caller accepts.
        case portOutOfRange(Int, ClosedRange<Int>)
        /// Nothing before the colon.
        case noHost
        /// A `[` or `]` that does not enclose the whole host (an IPv6 literal is written `[::1]:9000`).
        case unbalancedBrackets

        public var description: String {
            switch self {
            case .noPort: "it does not end in :PORT"
            case .portOutOfRange(let port, let range): "its port \(port) is not from \(range.lowerBound) to \(range.upperBound)"
            case .noHost: "it has no host before the port"
            case .unbalancedBrackets: "its host has a bracket that does not enclose it whole (write an IPv6 host as [::1])"
            }
        }
    }

    /// Reads `text`; `ports` is the range accepted (0 asks the system for a free port, where a caller
    /// allows it). An IPv6 host is written in brackets; the brackets are removed.
    public static func parse(_ text: String, ports: ClosedRange<Int> = 1...65535) throws(ParseError) -> HostPort {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { throw .noPort }
        guard ports.contains(port) else { throw .portOutOfRange(port, ports) }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.contains("["), !host.contains("]") else { throw .unbalancedBrackets }
        guard !host.isEmpty else { throw .noHost }
        return HostPort(host: host, port: port)
    }

    /// `HOST:PORT`, with an IPv6 host in brackets.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
