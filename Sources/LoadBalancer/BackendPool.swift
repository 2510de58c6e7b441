import CoreMetrics
import Synchronization
import NIOConcurrencyHelpers

/// One instance the load balancer can send requests to.
public struct Backend: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Backends are the same instance when their name and address are: the release is a label, which a
    /// front started by an older daemon does not keep.
    public static func == (left: Backend, right: Backend) -> Bool {
        left.id == right.id && left.host == right.host && left.port == right.port && left.namespace == right.namespace
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(host)
        hasher.combine(port)
        hasher.combine(namespace)
    }

    /// The instance's name, unique within a service.
    public var id: String
    public var host: String
    public var port: Int
    /// Where the instance's private network namespace is pinned, when it has one: `host:port` is then
    /// an address inside it, which no process on the host can take first.
    public var namespace: String?
    /// The image digest the instance runs, which the front's metrics are labelled with.
    public var release: String?

    public init(id: String, host: String, port: Int, namespace: String? = nil, release: String? = nil) {
        self.id = id
        self.host = host
        self.port = port
        self.namespace = namespace
        self.release = release
    }

    public var description: String { "\(id) (\(host):\(port)\(namespace.map { " in \($0)" } ?? ""))" }
}

/// The backends that take new requests, and the requests in flight on every backend, old or new.
///
/// A request is counted against its backend from the moment it is assigned until its response has been
/// relayed in full. Replacing the active set is atomic, and a backend that has left it receives no new
/// request, so once its count reaches zero it can be stopped without dropping anything.
///
/// During a canary a share of new requests goes to the canary's backends instead (``CanarySplit``), and
/// each side's answers, errors and latencies are counted over the split's window (``TrafficWindow``).
public final class BackendPool: Sendable {
    private struct State {
        var active: [Backend] = []
        var next = 0
        var inFlight: [String: Int] = [:]
        var canary: CanarySplit?
        var canaryIDs: Set<String> = []
        var nextCanary = 0
        /// Percent points owed to the canary: each request adds the split's percent, and one that brings
        /// it to 100 goes to the canary. The share is exact over every 100 requests, not left to chance.
        var canaryCredit = 0
        var windowStarted = ContinuousClock.now
        var stable = SideCounts()
        var canarySide = SideCounts()
        /// The metrics each release's answers are counted in, made on first use; the releases they were made
        /// for, oldest first (the series of the oldest go once more than ``keptReleaseSeries`` have some).
        var meters: [Meters.Key: Meters] = [:]
        var metered: [String] = []
        var frontAnswers: [Int: Counter] = [:]
    }

    /// The releases whose series a front keeps: a long-lived front sees a release per deploy, and each
    /// release's series are a few kilobytes of every scrape.
    static let keptReleaseSeries = 16

    /// The status codes counted under their own `code`; any other is counted as its class (`2xx` … `5xx`),
    /// so a backend cannot make the series grow with made-up statuses.
    static let namedCodes: Set<Int> = [200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 410,
                                       413, 422, 429, 499, 500, 501, 502, 503, 504]

    static func codeLabel(_ status: Int?) -> String {
        guard let status else { return "failed" }
        return namedCodes.contains(status) ? String(status) : "\(status / 100)xx"
    }

    /// One release's counters of answers by status (`failed` for attempts that got none) and its latency.
    struct Meters {
        struct Key: Hashable {
            var release: String
            var code: String
        }
        var requests: Counter
        var latency: Timer?
    }

    private let state = NIOLockedValueBox(State())
    /// The rollout of the sticky canary split in force, 0 when none is: requests' cookies are read only
    /// then (an atomic, so that no other request pays for it).
    private let sticky = Atomic<UInt64>(0)
    private let failures: @Sendable (Backend) -> Void
    /// Where the metrics go (swift-metrics): the front's Prometheus registry, or nowhere.
    private let metricsFactory: (any MetricsFactory)?
    private let service: String

    /// `onFailure` hears of a backend that refused a connection or broke one mid-request. With a
    /// `metricsFactory`, each answer is counted in `imgdeploy_requests_total` and timed in
    /// `imgdeploy_request_duration_seconds`, labelled with `service`, the backend's release (`digest`) and
    /// the status (`code`, `failed` for an attempt that got no answer).
    public init(metricsFactory: (any MetricsFactory)? = nil, service: String = "", onFailure: @escaping @Sendable (Backend) -> Void = { _ in }) {
        self.failures = onFailure
        self.metricsFactory = metricsFactory
        self.service = service
    }

    /// The backends that take new requests.
    public var active: [Backend] { state.withLockedValue { $0.active } }

    /// Switches new requests to `backends`, all at once (ending a canary split, if one was applied).
    public func setActive(_ backends: [Backend]) {
        setActive(backends, canary: nil)
    }

    /// Sends new requests to `backends`, and `canary.percent` of them to the canary's backends instead.
    /// A split with another window than the one in force starts both sides' figures again.
    public func setActive(_ backends: [Backend], canary: CanarySplit?) {
        state.withLockedValue { state in
            state.active = backends
            if canary?.window != state.canary?.window {
                state.windowStarted = .now
                state.stable = SideCounts()
                state.canarySide = SideCounts()
                state.canaryCredit = 0
            }
            state.canary = canary
            state.canaryIDs = Set(canary?.backends.map(\.id) ?? [])
            sticky.store(canary.map { $0.sticky ? max(1, $0.rollout) : 0 } ?? 0, ordering: .relaxed)
        }
    }

    /// The rollout of the sticky canary split in force, if one is: a request's `imgdeploy-canary` cookie
    /// for that rollout chooses its side.
    var stickyRollout: UInt64? {
        let rollout = sticky.load(ordering: .relaxed)
        return rollout == 0 ? nil : rollout
    }

    /// The canary split in force, if any.
    public var canary: CanarySplit? { state.withLockedValue { $0.canary } }

    /// Both sides' figures since the split's window began (or since the front started, with no split).
    public var window: TrafficWindow {
        state.withLockedValue { state in
            TrafficWindow(window: state.canary?.window ?? 0, seconds: Self.seconds(ContinuousClock.now - state.windowStarted),
                          stable: state.stable.figures, canary: state.canarySide.figures)
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Counts one attempt of a request on a backend of `side` (as ``acquire(preferred:excluding:side:)``
    /// assigned it): an answer with `status`, or a failure before one (`status` nil), `microseconds` after
    /// its head arrived.
    func record(_ backend: Backend, side: Side, status: Int?, microseconds: UInt64) {
        let meters = state.withLockedValue { state -> Meters? in
            switch side {
            case .canary: state.canarySide.record(status: status, microseconds: microseconds)
            case .stable: state.stable.record(status: status, microseconds: microseconds)
            }
            guard let factory = metricsFactory else { return nil }
            let code = Self.codeLabel(status)
            let key = Meters.Key(release: backend.release ?? "", code: code)
            if let made = state.meters[key] { return made }
            if !state.metered.contains(key.release) {
                state.metered.append(key.release)
                // The oldest that no backend in use runs: a release that serves on through many deploys keeps its series.
                let inUse = Set((state.active + (state.canary?.backends ?? [])).map { $0.release ?? "" })
                if state.metered.count > Self.keptReleaseSeries, let index = state.metered.firstIndex(where: { !inUse.contains($0) }) {
                    let oldest = state.metered.remove(at: index)
                    for (old, meters) in state.meters where old.release == oldest {
                        meters.requests.destroy()
                        meters.latency?.destroy()
                        state.meters[old] = nil
                    }
                }
            }
            let labels = [("service", service), ("digest", key.release)]
            // The latency histogram is the release's, shared by its codes (swift-metrics hands out one per label set).
            let made = Meters(requests: Counter(label: "imgdeploy_requests_total", dimensions: labels + [("code", code)], factory: factory),
                              latency: status == nil ? nil : Timer(label: "imgdeploy_request_duration_seconds", dimensions: labels, factory: factory))
            state.meters[key] = made
            return made
        }
        guard let meters else { return }
        meters.requests.increment()
        meters.latency?.recordNanoseconds(Int64(clamping: microseconds &* 1000))
    }

    /// Adds `backend` to the active set (if it is not there).
    public func add(_ backend: Backend) {
        state.withLockedValue { if !$0.active.contains(backend) { $0.active.append(backend) } }
    }

    /// Removes the backend named `id` from the active set (and from a canary's); its requests in flight finish.
    public func remove(_ id: String) {
        state.withLockedValue { state in
            state.active.removeAll { $0.id == id }
            state.canary?.backends.removeAll { $0.id == id }
            state.canaryIDs.remove(id)
        }
    }

    /// Which side of a canary split a request goes to.
    enum Side: Sendable, Equatable {
        case stable, canary
    }

    /// Assigns a request: to `preferred` while it is active (so a keep-alive connection keeps its backend),
    /// else round-robin, skipping `excluding`. Nil when no backend is active. A retry (`excluding` not
    /// empty) does not move the rotation: otherwise, with two backends, every request would start on the
    /// one that fails. Under a canary split, the side is chosen first (`side`, a sticky client's, or the
    /// split's share), then a backend within it; `stickyRollout` is the rollout of a split that keeps clients
    /// on their side (read with the side, so a cookie never names another rollout's).
    func acquire(preferred: String?, excluding: Set<String> = [], side wanted: Side? = nil) -> (backend: Backend, side: Side, stickyRollout: UInt64?)? {
        state.withLockedValue { state in
            if let canary = state.canary, !canary.backends.isEmpty {
                return Self.acquireSplit(&state, canary, preferred: preferred, excluding: excluding, side: wanted)
            }
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
            return (chosen, .stable, nil)
        }
    }

    private static func acquireSplit(_ state: inout State, _ canary: CanarySplit, preferred: String?, excluding: Set<String>,
                                     side wanted: Side?) -> (backend: Backend, side: Side, stickyRollout: UInt64?)? {
        var side: Side
        if let wanted {
            side = wanted
        } else if excluding.isEmpty {
            state.canaryCredit += canary.percent
            side = state.canaryCredit >= 100 ? .canary : .stable
            if side == .canary { state.canaryCredit -= 100 }
        } else {
            side = .stable
        }
        func candidates(_ side: Side) -> [Backend] {
            let all = side == .canary ? canary.backends : state.active
            return excluding.isEmpty ? all : all.filter { !excluding.contains($0.id) }
        }
        var list = candidates(side)
        if list.isEmpty {
            // The side has no backend left (all failed this request, or exited): the other one answers.
            side = side == .canary ? .stable : .canary
            list = candidates(side)
        }
        guard !list.isEmpty else { return nil }
        let chosen: Backend
        if let preferred, let backend = list.first(where: { $0.id == preferred }) {
            chosen = backend
        } else if side == .canary {
            chosen = list[state.nextCanary % list.count]
            if excluding.isEmpty { state.nextCanary &+= 1 }
        } else {
            chosen = list[state.next % list.count]
            if excluding.isEmpty { state.next &+= 1 }
        }
        state.inFlight[chosen.id, default: 0] += 1
        return (chosen, side, canary.sticky ? max(1, canary.rollout) : nil)
    }

    /// Counts an answer the front made itself because no instance could give one (502, 503), in
    /// `imgdeploy_front_answers_total{service,code}`: an outage shows there, not under any release.
    func recordFrontAnswer(status: Int) {
        let counter = state.withLockedValue { state -> Counter? in
            guard let factory = metricsFactory else { return nil }
            if let made = state.frontAnswers[status] { return made }
            let made = Counter(label: "imgdeploy_front_answers_total", dimensions: [("service", service), ("code", String(status))], factory: factory)
            state.frontAnswers[status] = made
            return made
        }
        counter?.increment()
    }

    /// Ends a request assigned by ``acquire(preferred:excluding:)``.
    func release(_ backend: Backend) {
        state.withLockedValue { state in
            let left = (state.inFlight[backend.id] ?? 1) - 1
            state.inFlight[backend.id] = left > 0 ? left : nil
        }
    }

    func reportFailure(_ backend: Backend) { failures(backend) }

    /// Requests in flight on all backends.
    public var totalInFlight: Int { state.withLockedValue { $0.inFlight.values.reduce(0, +) } }

    /// Requests in flight, by backend name (backends with none are left out).
    public var inFlightByBackend: [String: Int] { state.withLockedValue { $0.inFlight } }

    /// Requests in flight on the backend named `id`.
    public func inFlight(_ id: String) -> Int { state.withLockedValue { $0.inFlight[id] ?? 0 } }

    /// Waits until the backend named `id` has left the active set and has no request in flight, or
    /// `timeout` passes; true when drained.
    public func drain(_ id: String, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            let busy = state.withLockedValue { state in
                state.active.contains { $0.id == id } || state.canaryIDs.contains(id) || (state.inFlight[id] ?? 0) > 0
            }
            if !busy { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
