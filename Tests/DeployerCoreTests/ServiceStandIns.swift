import Foundation
@testable import Front
import InstanceNetwork
import LoadBalancer
import OCI
import ReleaseSpec
@testable import DeployerCore
import Runtime
import Store
import CommandLineTesting
import UnpackedReleases

/// Calls that wait while the gate is held, and go on once it is released.
final class Gate: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Locked(State())

    func hold() { state.withLock { $0.held = true } }

    /// How many calls wait now.
    var waiting: Int { state.withLock { $0.waiters.count } }

    func release() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.held = false
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at once, or when the gate is released.
    func pass() async {
        await withCheckedContinuation { continuation in
            let held = state.withLock { state in
                if state.held { state.waiters.append(continuation) }
                return state.held
            }
            if !held { continuation.resume() }
        }
    }
}

/// An instance that runs in memory: it "exits" when told to, or when stopped.
final class StandInInstance: Instance, Sendable {
    let id: String
    let record: InstanceRecord
    let image: String
    let port: Int
    var network: NetworkNamespace? { nil }
    private struct Life {
        var exit: Int32?
        var stopped = false
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }
    private let life = Locked(Life())

    init(id: String, image: String, port: Int, directory: String) {
        self.id = id
        self.image = image
        self.port = port
        record = InstanceRecord(id: id, runner: .runc, pid: 0, startTime: 0, directory: directory, stopSignal: SIGTERM, network: nil)
    }

    var isRunning: Bool { life.withLock { $0.exit == nil } }
    var wasStopped: Bool { life.withLock { $0.stopped } }

    /// The process ends on its own, with `status`.
    func exit(_ status: Int32) {
        let waiters = life.withLock { life -> [CheckedContinuation<Int32, Never>] in
            guard life.exit == nil else { return [] }
            life.exit = status
            defer { life.waiters = [] }
            return life.waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    func hostPID() async -> Int32? { isRunning ? 1 : nil }

    func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let ended = life.withLock { life -> Int32? in
                if let exit = life.exit { return exit }
                life.waiters.append(continuation)
                return nil
            }
            if let ended { continuation.resume(returning: ended) }
        }
    }

    func stop(timeout: Duration) async {
        life.withLock { $0.stopped = true }
        exit(143)
    }
}

/// The container runtime and the health probe in one: instances start in memory, and answer their
/// checks unless their image, or their start number, is told to fail.
final class StandInRuntime: InstanceRunner, InstanceRunners, HealthChecking, Sendable {
    private struct World {
        var instances: [StandInInstance] = []
        var unhealthyImages: Set<Digest> = []
        var unhealthyStarts: Set<Int> = []
    }
    private let world = Locked(World())

    var instances: [StandInInstance] { world.withLock { $0.instances } }
    var running: [StandInInstance] { instances.filter(\.isRunning) }

    func running(_ image: PinnedImage) -> [String] {
        running.filter { $0.image == "\(image)" }.map(\.id).sorted()
    }

    /// Instances of `image` never pass a check.
    func failHealth(of image: PinnedImage) { world.withLock { _ = $0.unhealthyImages.insert(image.digest) } }
    /// The `number`th instance started (counting from 1) never passes a check.
    func failHealth(ofStart number: Int) { world.withLock { _ = $0.unhealthyStarts.insert(number) } }

    /// Health checks wait while this is held.
    let checks = Gate()

    func runner(_ kind: ReleaseSpec.RunnerKind) throws(RuntimeError) -> any InstanceRunner { self }

    func start(_ request: InstanceRequest) async throws(RuntimeError) -> any Instance {
        let instance = StandInInstance(id: request.id, image: request.image, port: request.port, directory: request.directory)
        world.withLock { $0.instances.append(instance) }
        return instance
    }

    func adopt(_ record: InstanceRecord) -> (any Instance)? {
        running.last { $0.id == record.id }
    }

    func removeLeftovers(instancesFolder: String, keeping: Set<String>) async {}

    func check(host: String, port: Int, namespace: NetworkNamespace?, path: String?, timeout: Duration) async -> String? {
        await checks.pass()
        return world.withLock { world in
            guard let index = world.instances.lastIndex(where: { $0.port == port && $0.isRunning }) else { return "no connection" }
            let instance = world.instances[index]
            if world.unhealthyStarts.contains(index + 1) { return "GET /healthz answered 500" }
            if world.unhealthyImages.contains(where: { instance.image.hasSuffix($0.description) }) { return "GET /healthz answered 500" }
            return nil
        }
    }
}

/// A front in memory: it keeps the pool it is told, and every pool it was told, in order.
final class StandInFront: FrontControl, FrontStarter, Sendable {
    private struct Front {
        var running = false
        var active: [Backend] = []
        var canary: CanarySplit?
        /// A front of a version before canaries: it says nothing of them and ignores splits.
        var olderThanCanaries = false
        /// `state` times out (a front that hangs), though pools are still applied.
        var unreadable = false
        /// What the front reports of a canary window: set by a test, per percent of the split in force.
        var figures: [Int: TrafficWindow] = [:]
        var version: UInt64 = 0
        var pools: [[String]] = []
        var splits: [(percent: Int, backends: [String])] = []
        var starts = 0
        var replacements = 0
        /// A copy of the listening socket the running front was started with, and each start's socket inode.
        var socket: Int32 = -1
        var socketInodes: [UInt] = []
        /// The pid its state reports: by default one that never runs.
        var pid = Int32.max
        /// The executable the running front was started from, and the one a front started now would run.
        var executable = ""
        var installed = "stand-in 1"
        /// Fronts started exit as soon as they have answered their start (a crash loop).
        var exitsAtStart = false
        /// When each start was made, in order.
        var startTimes: [ContinuousClock.Instant] = []
    }
    private let front = Locked(Front())
    let drainTimeout = 1
    var executableIdentity: String { front.withLock { $0.installed } }
    var replacements: Int { front.withLock { $0.replacements } }

    /// A newer daemon executable is installed.
    func install(_ identity: String) { front.withLock { $0.installed = identity } }

    var active: [String] { front.withLock { $0.active.map(\.id).sorted() } }
    var pools: [[String]] { front.withLock { $0.pools } }
    var starts: Int { front.withLock { $0.starts } }
    var isRunning: Bool { front.withLock { $0.running } }
    /// When each start was made, in order.
    var startTimes: [ContinuousClock.Instant] { front.withLock { $0.startTimes } }
    /// Makes the fronts started from now on exit as soon as they have answered their start, or not.
    func exitAtStart(_ exits: Bool) { front.withLock { $0.exitsAtStart = exits } }
    /// Makes the front report `pid` (a process that runs) as its own.
    func report(pid: Int32) { front.withLock { $0.pid = pid } }

    /// The inode of the listening socket each start was given, in order.
    var socketInodes: [UInt] { front.withLock { $0.socketInodes } }

    /// A copy of the listening socket the running front holds (the caller's to close); nil when none runs.
    func heldSocket() -> Int32? {
        let copy = front.withLock { $0.socket >= 0 ? fcntl($0.socket, F_DUPFD_CLOEXEC, 0) : -1 }
        return copy >= 0 ? copy : nil
    }

    /// The port of the listening socket the running front holds; nil when none runs.
    func heldPort() -> Int? {
        guard let socket = heldSocket() else { return nil }
        defer { close(socket) }
        return ListeningSocket.port(of: socket)
    }

    func listeningSocket() async throws(FrontError) -> Int32 {
        _ = try currentState()
        let copy = front.withLock { fcntl($0.socket, F_DUPFD_CLOEXEC, 0) }
        guard copy >= 0 else { throw FrontError("the stand-in front holds no socket") }
        return copy
    }

    private func currentState() throws(FrontError) -> FrontState {
        let front = self.front.withLock { $0 }
        guard front.running else { throw FrontError("no front", frontGone: true) }
        let window = front.canary.flatMap { split in
            front.figures[split.percent].map { TrafficWindow(window: split.window, seconds: $0.seconds, stable: $0.stable, canary: $0.canary) }
        }
        return FrontState(pid: front.pid, port: 0, executable: front.executable, active: front.active, canary: front.canary, window: window,
                          activeVersion: front.version,
                          inFlight: [:], counts: ProxyMetrics.Counts(), connections: 0, retiring: false,
                          features: front.olderThanCanaries ? nil : ["pause", "canary"])
    }

    func state() async throws(FrontError) -> FrontState {
        if front.withLock({ $0.unreadable }) { throw FrontError("the front did not answer within 5 s") }
        return try currentState()
    }

    /// Makes `state` time out from now on.
    func makeUnreadable() { front.withLock { $0.unreadable = true } }

    /// The canary splits applied, in order: (percent, canary backends).
    var splits: [(percent: Int, backends: [String])] { front.withLock { $0.splits } }

    /// Makes the front one of a version before canaries.
    func makeOlderThanCanaries() { front.withLock { $0.olderThanCanaries = true } }

    /// Makes the front report `window` while a split of `percent` is in force.
    func report(_ window: TrafficWindow, atPercent percent: Int) { front.withLock { $0.figures[percent] = window } }

    func setActive(_ backends: [Backend], canary: CanarySplit?, version: UInt64?) async throws(FrontError) -> FrontState {
        _ = try currentState()
        front.withLock { front in
            if let version, version < front.version { return }
            if let canary, canary != front.canary { front.splits.append((canary.percent, canary.backends.map(\.id).sorted())) }
            front.canary = canary
            front.active = backends
            front.version = version ?? front.version
            front.pools.append(backends.map(\.id).sorted())
        }
        return try currentState()
    }

    /// Drains wait while this is held, as at a front with requests in flight.
    let drains = Gate()

    func drain(_ id: String, timeout: Duration) async -> Bool {
        await drains.pass()
        return true
    }

    func stop() async throws(FrontError) {
        front.withLock { front in
            front.running = false
            if front.socket >= 0 { close(front.socket) }
            front.socket = -1
        }
    }

    func metrics() async throws(FrontError) -> String {
        _ = try currentState()
        return "# TYPE imgdeploy_requests_total counter\nimgdeploy_requests_total{service=\"web\",digest=\"\",code=\"200\"} 0\n"
    }

    func start(socket: Int32, controlPath: String, logPath: String) async throws(FrontError) -> FrontState {
        var info = stat()
        fstat(socket, &info)
        front.withLock { front in
            if front.socket >= 0 { close(front.socket) }
            front.socket = socket
            front.socketInodes.append(UInt(info.st_ino))
            front.running = true
            front.starts += 1
            front.startTimes.append(.now)
            front.executable = front.installed
        }
        let started = try currentState()
        if front.withLock({ $0.exitsAtStart }) { try await stop() }
        return started
    }

    func replace(controlPath: String, logPath: String) async throws(FrontError) -> FrontState {
        _ = try currentState()
        front.withLock { front in
            front.replacements += 1
            front.executable = front.installed
        }
        return try currentState()
    }
}

/// A state folder with a source store holding small real images (one layer each), for releases to be
/// fetched, verified and unpacked as the daemon does, without root.
struct ServiceFixture {
    let root = NSTemporaryDirectory() + "controller-\(UUID().uuidString)"
    var paths: DeployPaths { DeployPaths(root: root + "/state") }
    var source: String { root + "/source" }
    let runtime = StandInRuntime()
    let front = StandInFront()

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    /// An image whose one file says `text`, in the source store.
    func image(_ text: String) throws -> PinnedImage {
        let store = try Store.open(at: source, create: true)
        let folder = root + "/layers/\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/content/srv", withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/content/srv/index.html"))
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-cf", folder + "/layer.tar", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", folder + "/content", "srv"]
        try tar.run()
        tar.waitUntilExit()
        let uncompressed = try Data(contentsOf: URL(fileURLWithPath: folder + "/layer.tar"))
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-n", "-k", folder + "/layer.tar"]
        try gzip.run()
        gzip.waitUntilExit()
        let layer = try Data(contentsOf: URL(fileURLWithPath: folder + "/layer.tar.gz"))
        let layerDescriptor = Descriptor(mediaType: MediaType.layerGzip, digest: try store.writeBlob(layer), size: Int64(layer.count))
        let config = ImageConfig(created: nil, platform: Platform.host, config: ImageConfig.Execution(),
                                 rootfs: .init(diffIDs: [Digest.of(uncompressed)]), history: nil)
        let configData = try CanonicalJSON.encode(config)
        let configDescriptor = Descriptor(mediaType: MediaType.imageConfig, digest: try store.writeBlob(configData), size: Int64(configData.count))
        let manifest = try CanonicalJSON.encode(ImageManifest(config: configDescriptor, layers: [layerDescriptor]))
        let descriptor = Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(manifest), size: Int64(manifest.count))
        let name = try RepositoryName("web")
        try store.pin(name, descriptor)
        return PinnedImage(name: name, digest: descriptor.digest)
    }

    /// The health deadline is long (3 s of real time at the controller's speed): an instance that is only
    /// slow to be probed, as under ThreadSanitizer beside the other suites, must not fail a rollout; one
    /// that never answers still does, within it.
    func spec(_ image: PinnedImage, replicas: Int = 2, strategy: ReleaseSpec.Strategy = .blueGreen) -> ReleaseSpec {
        var spec = ReleaseSpec(service: "web", image: image, source: .store(path: source), replicas: replicas, port: 8080,
                               listen: .init(host: "127.0.0.1", port: 0), strategy: strategy,
                               health: .init(path: "/healthz", interval: .seconds(1), timeout: .seconds(1), healthyAfter: 2, deadline: .seconds(600)))
        spec.network = .host
        return spec
    }

    /// A controller of the service `web` acting on the stand-ins, with time running 200 times faster.
    func controller() -> ServiceController {
        let releases = ReleaseCache(root: paths.root)
        return ServiceController(name: "web", paths: paths, releases: releases, probe: runtime, runners: runtime, launcher: front,
                                 keeper: ReleaseKeeper(paths: paths, releases: releases), front: front, clock: .faster(by: 200))
    }
}

/// Waits, polling, until `condition` holds; false if it does not within (real) `seconds`.
func eventually(_ seconds: Double = 30, _ condition: () async -> Bool) async -> Bool {
    // A bound, not a timing: generous, because the whole suite runs at once on two cores beside load tests.
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}
