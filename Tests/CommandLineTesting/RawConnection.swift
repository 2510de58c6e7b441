import Foundation

/// A TCP connection to 127.0.0.1 that sends exactly the bytes it is given: partial requests, bodies
/// shorter or longer than announced, pauses, and aborts (RST) that a polite HTTP client never makes.
public final class RawConnection {
    private var fd: Int32
    private var buffered = Data()

    /// What the server answered: status, headers (lower-cased names) and body.
    public struct Answer {
        public var status: Int
        public var headers: [String: String]
        public var body: Data
    }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public init(port: Int, timeout seconds: Int = 30) throws {
        guard let fd = connectLoopback(port) else { throw Failure(description: "cannot connect to 127.0.0.1:\(port)") }
        self.fd = fd
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Sends bytes; false when the server has closed the connection.
    @discardableResult
    public func send(_ data: Data) -> Bool {
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if sent <= 0 { return false }
                offset += sent
            }
            return true
        }
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Data(text.utf8)) }

    /// Reads one response (its head, then `Content-Length` bytes of body); nil if the connection closed
    /// or timed out first. `untilClose`: an answer without `Content-Length` has a body that ends when the
    /// connection does (as RFC 9112 §6.3 frames it), which is read to that end.
    public func readAnswer(head: Bool = false, untilClose: Bool = false) -> Answer? {
        while true {
            if let end = buffered.range(of: Data("\r\n\r\n".utf8)) {
                let headText = String(decoding: buffered[..<end.lowerBound], as: UTF8.self)
                let lines = headText.split(separator: "\r\n")
                let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                if untilClose, !head, status != 100, headers["content-length"] == nil {
                    while fill() {}
                    let body = Data(buffered[end.upperBound...])
                    buffered = Data()
                    return Answer(status: status, headers: headers, body: body)
                }
                let length = head || status == 100 ? 0 : Int(headers["content-length"] ?? "0") ?? 0
                while buffered.count - end.upperBound < length { guard fill() else { return nil } }
                let body = buffered[end.upperBound..<end.upperBound + length]
                buffered = Data(buffered[(end.upperBound + length)...])
                if status == 100 { continue }
                return Answer(status: status, headers: headers, body: Data(body))
            }
            guard fill() else { return nil }
        }
    }

    /// Whether the server closed the connection (a read returns end of file, or a reset unless
    /// `orderly`) within the timeout.
    public func waitForClose(orderly: Bool = false) -> Bool {
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &chunk, chunk.count, 0)
            if count == 0 { return true }
            if count < 0 { return !orderly && errno == ECONNRESET }
        }
    }

    /// Runs `body` with the socket's descriptor, for options and reads a test needs beyond these.
    public func withDescriptor<T>(_ body: (Int32) -> T) -> T { body(fd) }

    /// Ends the connection with a reset, as a client that crashes mid-request does.
    public func abort() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
        fd = -1
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = recv(fd, &chunk, chunk.count, 0)
        guard count > 0 else { return false }
        buffered.append(contentsOf: chunk[0..<count])
        return true
    }
}
