import HostPort
import Testing
import TestScheduling

@Suite("HOST:PORT", .mayBlock)
struct HostPortTests {
    @Test("hosts by name, IPv4 and bracketed IPv6 are read; brackets are written back for IPv6")
    func valid() throws {
        #expect(try HostPort.parse("127.0.0.1:9000") == HostPort(host: "127.0.0.1", port: 9000))
        #expect(try HostPort.parse("localhost:1") == HostPort(host: "localhost", port: 1))
        let six = try HostPort.parse("[::1]:65535")
        #expect(six == HostPort(host: "::1", port: 65535))
        #expect(six.description == "[::1]:65535")
        #expect(try HostPort.parse("0.0.0.0:0", ports: 0...65535).port == 0)
    }

    @Test("a missing port, a port out of range, and a missing host are each named", arguments: [
        ("127.0.0.1", HostPort.ParseError.noPort), ("127.0.0.1:", .noPort), ("127.0.0.1:http", .noPort),
        ("127.0.0.1:0", .portOutOfRange(0, 1...65535)), ("127.0.0.1:65536", .portOutOfRange(65536, 1...65535)),
        ("127.0.0.1:-1", .portOutOfRange(-1, 1...65535)), (":9000", .noHost), ("[]:9000", .noHost),
        ("[::1:9000", .unbalancedBrackets), ("::1]:9000", .unbalancedBrackets), ("[a]b]:9000", .unbalancedBrackets),
    ])
    func invalid(text: String, expected: HostPort.ParseError) {
        #expect(throws: expected) { try HostPort.parse(text) }
    }
}
