import Foundation
import Front
import InstanceNetwork
import LoadBalancer
import ReleaseSpec
import Runtime

// What a ServiceController acts on, each behind a protocol: in the daemon, the front's control socket,
// front processes, the container runtimes, health probes over the network and the real clock; in
// `DeployerCoreTests`, stand-ins in memory, so that rollouts, restarts and re-adoption run in
// milliseconds without root.

/// A service's front as the controller speaks to it.
protocol FrontControl: Sendable {
    func state() async throws(FrontError) -> FrontState
    func setActive(_ backends: [Backend], canary: CanarySplit?, version: UInt64?) async throws(FrontError) -> FrontState
    /// True once `id` has no request in flight at the front (or the front is gone), false after `timeout`.
    func drain(_ id: String, timeout: Duration) async -> Bool
    func stop() async throws(FrontError)
    /// A copy of its listening socket, for the daemon to keep (see ``FrontClient/listeningSocket()``).
    func listeningSocket() async throws(FrontError) -> Int32
    /// Its metrics, in the Prometheus text format.
    func metrics() async throws(FrontError) -> String
}

extension FrontClient: FrontControl {}

/// Starts a service's front, or replaces it with a new one that takes its listening socket over.
protocol FrontStarter: Sendable {
    /// How long a replaced front has to finish its connections.
    var drainTimeout: Int { get }
    /// The identity of the executable a front started now would run.
    var executableIdentity: String { get }
    func start(socket: Int32, controlPath: String, logPath: String) async throws(FrontError) -> FrontState
    func replace(controlPath: String, logPath: String) async throws(FrontError) -> FrontState
}

extension FrontLauncher: FrontStarter {}

/// Whether an instance answers: nil when healthy, else what went wrong.
protocol HealthChecking: Sendable {
    func check(host: String, port: Int, namespace: NetworkNamespace?, path: String?, timeout: Duration) async -> String?
}

extension HealthProbe: HealthChecking {}

/// The container runtime a spec names.
protocol InstanceRunners: Sendable {
    func runner(_ kind: ReleaseSpec.RunnerKind) throws(RuntimeError) -> any InstanceRunner
}

extension RunnerSet: InstanceRunners {}

/// Time as the controller reads and waits for it: the real clock in the daemon, a faster one in tests.
struct ControllerClock: Sendable {
    /// Time since some fixed moment.
    var now: @Sendable () -> Duration
    var sleep: @Sendable (Duration) async -> Void

    private static let origin = ContinuousClock.now

    static let real = ControllerClock(now: { ContinuousClock.now - origin }, sleep: { try? await Task.sleep(for: $0) })

    /// A clock that runs `factor` times faster than the real one: a 30 s deadline passes in 30 s / factor.
    static func faster(by factor: Int) -> ControllerClock {
        ControllerClock(now: { (ContinuousClock.now - origin) * factor }, sleep: { try? await Task.sleep(for: $0 / factor) })
    }
}
