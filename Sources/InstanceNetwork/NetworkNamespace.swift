import CNetworkNamespace
#if canImport(Glibc)
import Glibc
#endif

/// An instance's own network namespace: loopback only, pinned by a bind mount at `path` (in the
/// instance's folder) so that it outlives any process in it and can be named by any process outside.
///
/// An instance in one listens on its own loopback, which nothing on the host can bind first, and it
/// reaches nothing but itself: no host loopback service, no other instance, no outside network. The
/// front and the health probe reach it through ``connect(host:port:timeout:)``.
public struct NetworkNamespace: Sendable, Hashable, Codable {
    public let path: String

    /// The namespace already pinned at `path`.
    public init(path: String) {
        self.path = path
    }

    /// Creates a namespace (loopback up, every port bindable without privilege) pinned at `path`, which
    /// must not exist. Needs root.
    public static func create(at path: String) throws(NetworkNamespaceError) -> NetworkNamespace {
        let status = imgdeploy_netns_create(path)
        guard status == 0 else { throw .cannotCreate(path: path, reason: String(cString: strerror(status))) }
        return NetworkNamespace(path: path)
    }

    /// Unpins the namespace; it ends when the last process in it has exited.
    public func remove() {
        _ = umount2(path, Int32(MNT_DETACH))
        unlink(path)
    }

    /// A TCP connection to `host:port` (IPv4) made inside the namespace: a connected, non-blocking,
    /// close-on-exec descriptor that the caller owns. Blocks up to `timeout`: call it off event loops.
    public func connect(host: String, port: Int, timeout: Duration) throws(NetworkNamespaceError) -> Int32 {
        guard let number = UInt16(exactly: port) else { throw .cannotConnect(host: host, port: port, namespace: path, reason: "no such port") }
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let result = imgdeploy_netns_connect(path, host, number, max(1, milliseconds))
        guard result >= 0 else {
            throw .cannotConnect(host: host, port: port, namespace: path, reason: String(cString: strerror(-result)))
        }
        return result
    }
}

/// Why a network namespace could not be made or used.
public enum NetworkNamespaceError: Error, Equatable, CustomStringConvertible {
    case cannotCreate(path: String, reason: String)
    case cannotConnect(host: String, port: Int, namespace: String, reason: String)

    public var description: String {
        switch self {
        case .cannotCreate(let path, let reason):
            return "cannot create the instance's network namespace at \(path) (\(reason)); imgdeploy needs root for private instance networks, or set `network: host` in the release spec"
        case .cannotConnect(let host, let port, let namespace, let reason):
            return "no connection to \(host):\(port) inside the instance's network (\(namespace)): \(reason)"
        }
    }
}
