import Synchronization

/// One instance the load balancer can send requests to.
public struct Backend: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The instance's name, unique within a service.
    public var id: String
    public var host: String
    public var port: Int
    /// Where the instance's private network namespace is pinned, when it has one: `host:port` is then
    /// an address inside it, which no process on the host can take first.
    public var namespace: String?

    public init(id: String, host: String, port: Int, namespace: String? = nil) {
        self.id = id
        self.host = host
        self.port = port
        self.namespace = namespace
    }

    public var description: String { "\(id) (\(host):\(port)\(namespace.map { " in \($0)" } ?? ""))" }
}

/// The backends that take new requests, and the requests in flight on every backend, old or new.
///
/// A request is counted against its backend from the moment it is assigned until its response has been
/// relayed in full. Replacing the active set is atomic, and a backend that has left it receives no new
/// request, so once its count reaches zero it can be stopped without dropping anything.
public final class BackendPool: Sendable {
    private struct State {
        var active: [Backend] = []
        var next = 0
        var inFlight: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let failures: @Sendable (Backend) -> Void

    /// `onFailure` hears of a backend that refused a connection or broke one mid-request.
    public init(onFailure: @escaping @Sendable (Backend) -> Void = { _ in }) {
        self.failures = onFailure
    }

    /// The backends that take new requests.
    public var active: [Backend] { state.withLock { $0.active } }

    /// Switches new requests to `backends`, all at once.
    public func setActive(_ backends: [Backend]) {
        state.withLock { $0.active = backends }
    }

    /// Adds `backend` to the active set (if it is not there).
    public func add(_ backend: Backend) {
        state.withLock { if !$0.active.contains(backend) { $0.active.append(backend) } }
    }

    /// Removes the backend named `id` from the active set; its requests in flight finish.
    public func remove(_ id: String) {
        state.withLock { $0.active.removeAll { $0.id == id } }
    }

    /// Assigns a request: to `preferred` while it is active (so a keep-alive connection keeps its backend),
    /// else round-robin, skipping `excluding`. Nil when no backend is active. A retry (`excluding` not
    /// empty) does not move the rotation: otherwise, with two backends, every request would start on the
    /// one that fails.
    func acquire(preferred: String?, excluding: Set<String> = []) -> Backend? {
        state.withLock { state in
            var chosen: Backend?
            if let preferred, let backend = state.active.first(where: { $0.id == preferred }) {
                chosen = backend
            } else if excluding.isEmpty {
                if !state.active.isEmpty { chosen = state.active[state.next % state.active.count] }
                state.next &+= 1
            } else {
                let candidates = state.active.filter { !excluding.contains($0.id) }
                if !candidates.isEmpty { chosen = candidates[state.next % candidates.count] }
            }
            guard let chosen else { return nil }
            state.inFlight[chosen.id, default: 0] += 1
            return chosen
        }
    }

    /// Ends a request assigned by ``acquire(preferred:excluding:)``.
    func release(_ backend: Backend) {
        state.withLock { state in
            let left = (state.inFlight[backend.id] ?? 1) - 1
            state.inFlight[backend.id] = left > 0 ? left : nil
        }
    }

    func reportFailure(_ backend: Backend) { failures(backend) }

    /// Requests in flight on all backends.
    public var totalInFlight: Int { state.withLock { $0.inFlight.values.reduce(0, +) } }

    /// Requests in flight, by backend name (backends with none are left out).
    public var inFlightByBackend: [String: Int] { state.withLock { $0.inFlight } }

    /// Requests in flight on the backend named `id`.
    public func inFlight(_ id: String) -> Int { state.withLock { $0.inFlight[id] ?? 0 } }

    /// Waits until the backend named `id` has left the active set and has no request in flight, or
    /// `timeout` passes; true when drained.
    public func drain(_ id: String, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let busy = state.withLock { state in state.active.contains { $0.id == id } || (state.inFlight[id] ?? 0) > 0 }
            if !busy { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
