import CNetworkNamespace
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// An instance's own network namespace: loopback only, pinned by a bind mount at `path` (in the
/// instance's folder) so that it outlives any process in it and can be named by any process outside.
///
/// An instance in one listens on its own loopback, which nothing on the host can bind first, and it
/// reaches nothing but itself: no host loopback service, no other instance, no outside network. The
/// front and the health probe reach it through ``connect(host:port:timeout:completion:)``.
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

    /// Connects to `host:port` (IPv4) inside the namespace and calls `completion` with a connected,
    /// non-blocking, close-on-exec descriptor that the caller then owns, or with why there is none. No
    /// thread waits: the socket is made here (joining the namespace for that one call), and a connection
    /// not made at once is watched by a dispatch source until it is, or until `timeout`.
    public func connect(host: String, port: Int, timeout: Duration,
                        completion: @escaping @Sendable (Result<Int32, NetworkNamespaceError>) -> Void) {
        guard let number = UInt16(exactly: port) else {
            return completion(.failure(.cannotConnect(host: host, port: port, namespace: path, reason: "no such port")))
        }
        var inProgress: Int32 = 0
        let fd = imgdeploy_netns_connect(path, host, number, &inProgress)
        guard fd >= 0 else {
            return completion(.failure(.cannotConnect(host: host, port: port, namespace: path, reason: String(cString: strerror(-fd)))))
        }
        guard inProgress != 0 else { return completion(.success(fd)) }
        PendingConnection(fd: fd, failure: { reason in .cannotConnect(host: host, port: port, namespace: path, reason: reason) },
                          completion: completion).watch(timeout: timeout)
    }
}

/// A connection under way: finished by the first of its socket becoming writable or its deadline.
private final class PendingConnection: @unchecked Sendable {
    private static let queue = DispatchQueue(label: "imgdeploy.namespace-connect")
    private let fd: Int32
    private let failure: @Sendable (String) -> NetworkNamespaceError
    private let completion: @Sendable (Result<Int32, NetworkNamespaceError>) -> Void
    // Touched only on `queue`.
    private var source: (any DispatchSourceWrite)?
    private var result: Result<Int32, NetworkNamespaceError>?

    init(fd: Int32, failure: @escaping @Sendable (String) -> NetworkNamespaceError,
         completion: @escaping @Sendable (Result<Int32, NetworkNamespaceError>) -> Void) {
        self.fd = fd
        self.failure = failure
        self.completion = completion
    }

    func watch(timeout: Duration) {
        Self.queue.async { [self] in
            let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: Self.queue)
            self.source = source
            source.setEventHandler { [self] in
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                finish(error == 0 ? .success(fd) : .failure(failure(String(cString: strerror(error)))))
            }
            // The descriptor is closed (on failure) or handed over only once the source lets go of it.
            source.setCancelHandler { [self] in
                guard let result else { return }
                if case .failure = result { close(fd) }
                completion(result)
            }
            source.resume()
            let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            Self.queue.asyncAfter(deadline: .now() + .nanoseconds(Int(nanoseconds))) { [self] in
                finish(.failure(failure("no connection within \(timeout)")))
            }
        }
    }

    private func finish(_ outcome: Result<Int32, NetworkNamespaceError>) {
        guard result == nil else { return }
        result = outcome
        source?.cancel()
        source = nil
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
