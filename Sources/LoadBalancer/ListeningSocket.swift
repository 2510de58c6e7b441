import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// A TCP socket bound and listening, made before any server uses it, so it can be handed to another
/// process (a front started by the daemon inherits it; a front that replaces another receives it).
public enum ListeningSocket {
    /// Why a socket could not be made.
    public struct Failure: Error, CustomStringConvertible {
        public let address: String
        public let reason: String
        public var description: String { "cannot listen on \(address): \(reason)" }
    }

    /// Binds `host:port` (port 0: any free port) with SO_REUSEADDR and listens; the descriptor is close-on-exec.
    public static func bind(host: String, port: Int, backlog: Int32 = 1024) throws(Failure) -> Int32 {
        let text = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let address: SocketAddress
        do { address = try SocketAddress.makeAddressResolvingHost(host, port: port) } catch {
            throw Failure(address: text, reason: "\(error)")
        }
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(address: text, reason: String(cString: strerror(errno))) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { pointer, length in Glibc.bind(fd, pointer, socklen_t(length)) }
        guard bound == 0, listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(address: text, reason: reason)
        }
        return fd
    }

    /// The local port `socket` is bound to; nil if it is not a bound IPv4 or IPv6 socket.
    public static func port(of socket: Int32) -> Int? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let got = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard got == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) } }
        case AF_INET6:
            return withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) } }
        default:
            return nil
        }
    }

    /// How many connections the kernel queues for `socket` before it is accepted (its listen backlog, which
    /// `TCP_INFO` reports as `tcpi_sacked` on a listening socket); nil if the socket is not a listening TCP socket.
    public static func backlog(of socket: Int32) -> Int32? {
        // struct tcp_info: eight bytes of one-byte fields, then u32 rto, ato, snd_mss, rcv_mss, unacked, sacked.
        var info = [UInt32](repeating: 0, count: 8)
        var length = socklen_t(info.count * 4)
        guard getsockopt(socket, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0, length >= 32,
              info[0] & 0xFF == 10 /* TCP_LISTEN */ else { return nil }
        return Int32(bitPattern: info[7])
    }
}
