import CDescriptorPassing
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why talking to a front over its control socket failed.
public struct FrontError: Error, CustomStringConvertible, Sendable {
    public let message: String
    /// Nothing listens on the control socket (no socket file, or the connection was refused): the front
    /// is gone, not merely slow to answer.
    public let frontGone: Bool
    public init(_ message: String, frontGone: Bool = false) {
        self.message = message
        self.frontGone = frontGone
    }
    public var description: String { message }

    static func system(_ what: String) -> FrontError { FrontError("\(what): \(String(cString: strerror(errno)))") }
}

/// One connection on a Unix stream socket, blocking with timeouts, exchanging JSON lines (and, with
/// the line, a descriptor: the listening socket a front hands over).
/// Used by one thread at a time (handed from the accepting thread to the one that serves it).
final class UnixConnection: @unchecked Sendable {
    /// The longest line accepted; a control message is far smaller.
    static let lineLimit = 1 << 20
    let fd: Int32
    private var buffered: [UInt8] = []
    private var receivedDescriptor: Int32?

    init(adopting fd: Int32, timeout: Duration) {
        self.fd = fd
        var time = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: Int(timeout.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The pid of the process at the other end, as it was when it connected; nil if the kernel does not say.
    var peerProcess: Int32? {
        let pid = imgdeploy_peer_process(fd)
        return pid > 0 ? pid : nil
    }

    /// Waits for the next message as long as it takes (the successor's `retire` after a handover).
    func waitWithoutTimeout() {
        var none = timeval(tv_sec: 0, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit {
        close(fd)
        if let receivedDescriptor { close(receivedDescriptor) }
    }

    /// Connects to the socket at `path`.
    static func connect(to path: String, timeout: Duration) throws(FrontError) -> UnixConnection {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("cannot make a socket") }
        let connection = UnixConnection(adopting: fd, timeout: timeout)
        var address = try UnixAddress(path)
        let connected = address.withSockAddr { Glibc.connect(fd, $0, $1) }
        guard connected == 0 else {
            let gone = errno == ENOENT || errno == ECONNREFUSED
            throw FrontError("cannot connect to \(path): \(String(cString: strerror(errno)))", frontGone: gone)
        }
        return connection
    }

    /// Sends `value` as one JSON line, with `descriptor` attached when given.
    func send<T: Encodable>(_ value: T, descriptor: Int32? = nil) throws(FrontError) {
        var data: Data
        do { data = try JSONEncoder().encode(value) } catch { throw FrontError("cannot encode a control message: \(error)") }
        data.append(0x0a)
        var offset = 0
        while offset < data.count {
            let sent = data.withUnsafeBytes { bytes -> Int in
                let base = bytes.baseAddress! + offset
                if offset == 0, let descriptor {
                    return imgdeploy_send_with_descriptor(fd, base, bytes.count - offset, descriptor)
                }
                return Glibc.send(fd, base, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { throw .system("cannot send a control message") }
            offset += sent
        }
    }

    /// Reads one JSON line and decodes it; a descriptor that came with it is returned and owned by the caller.
    func receive<T: Decodable>(_ type: T.Type) throws(FrontError) -> (T, descriptor: Int32?) {
        let line = try readLine()
        do {
            let value = try JSONDecoder().decode(type, from: Data(line))
            defer { receivedDescriptor = nil }
            return (value, receivedDescriptor)
        } catch {
            throw FrontError("a control message is not valid: \(error)")
        }
    }

    private func readLine() throws(FrontError) -> [UInt8] {
        while true {
            if let newline = buffered.firstIndex(of: 0x0a) {
                let line = Array(buffered[..<newline])
                buffered.removeSubrange(...newline)
                return line
            }
            guard buffered.count < UnixConnection.lineLimit else { throw FrontError("a control message is longer than 1 MiB") }
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            var descriptor: Int32 = -1
            let count = chunk.withUnsafeMutableBytes { imgdeploy_receive_with_descriptor(fd, $0.baseAddress, $0.count, &descriptor) }
            if descriptor >= 0 {
                if let receivedDescriptor { close(receivedDescriptor) }
                receivedDescriptor = descriptor
            }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { throw FrontError("the front did not answer in time") }
                throw .system("cannot read a control message")
            }
            guard count > 0 else { throw FrontError("the connection closed before a whole control message came") }
            buffered += chunk[..<count]
        }
    }
}

/// A `sockaddr_un` for a path.
struct UnixAddress {
    private var address = sockaddr_un()

    init(_ path: String) throws(FrontError) {
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw FrontError("the socket path \(path) is longer than \(capacity - 1) bytes: use a shorter --state folder") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }

    mutating func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}

/// Where a control socket is bound before it is published: a fresh 0700 folder beside its final path,
/// so no other user can connect to it even for an instant, and a socket that is already there (a
/// running front's) is replaced in one rename, never missing.
public struct PrivateSocketPath: Sendable {
    public let finalPath: String
    public let folder: String
    public var temporaryPath: String { folder + "/" + ((finalPath as NSString).lastPathComponent) }

    public init(finalPath: String) throws(FrontError) {
        self.finalPath = finalPath
        let template = (finalPath as NSString).deletingLastPathComponent + "/.control-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard mkdtemp(&bytes) != nil else {
            throw .system("cannot create a private folder for the control socket beside \(finalPath)")
        }
        folder = String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Makes the bound socket 0600 and moves it to its final path.
    public func publish() {
        chmod(temporaryPath, 0o600)
        rename(temporaryPath, finalPath)
        rmdir(folder)
    }

    /// Removes the private folders such sockets left when their process died before publishing one.
    public static func removeLeftovers(in folder: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where name.hasPrefix(".control-") {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }
}

/// A listening Unix socket at a private path, published when ready.
final class UnixListener: @unchecked Sendable {
    let fd: Int32
    let path: PrivateSocketPath

    init(publishingAt finalPath: String) throws(FrontError) {
        path = try PrivateSocketPath(finalPath: finalPath)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("cannot make a socket") }
        var address = try UnixAddress(path.temporaryPath)
        guard address.withSockAddr({ Glibc.bind(fd, $0, $1) }) == 0, listen(fd, 64) == 0 else {
            let error = FrontError.system("cannot listen on \(path.temporaryPath)")
            close(fd)
            rmdir(path.folder)
            throw error
        }
        self.fd = fd
    }

    /// The next connection; nil once the listener is shut down.
    func accept(timeout: Duration) -> UnixConnection? {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return UnixConnection(adopting: client, timeout: timeout)
            }
            if errno == EINTR || errno == ECONNABORTED { continue }
            // Out of descriptors or memory for a moment: wait and accept again, never give up control.
            if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                usleep(100_000)
                continue
            }
            return nil
        }
    }

    /// Makes `accept` return nil (in whichever thread waits in it) and closes the socket.
    func shutdown() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }
}
