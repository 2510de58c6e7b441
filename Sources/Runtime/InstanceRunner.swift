import Foundation
import LogFiles
import InstanceNetwork
import OCI

/// What to start: one instance of a release.
public struct InstanceRequest: Sendable {
    /// A unique name, also the container's id: `<service>-<n>`.
    public var id: String
    /// The release's read-only root file system.
    public var releaseRootfs: String
    public var config: ImageConfig
    /// The image, as messages name it.
    public var image: String
    /// The instance's own folder (its overlay and log).
    public var directory: String
    /// The address the instance listens on, given to it as `$HOST` and `$PORT`.
    public var host: String
    public var port: Int
    public var memoryBytes: Int64?
    public var pids: Int?
    /// A network namespace of its own (loopback only) instead of the host's: see ``NetworkNamespace``.
    public var privateNetwork: Bool
    /// The capabilities the instance keeps, named without `CAP_` (none by default).
    public var capabilities: [String]
    /// Whether the instance may write to its root; if not, it writes only to empty tmpfs folders at `/tmp`
    /// and at each of the image's `Volumes` (as Kubernetes' emptyDir, which `render --kubernetes` mounts there).
    public var writableRoot: Bool

    public init(id: String, releaseRootfs: String, config: ImageConfig, image: String, directory: String, host: String, port: Int,
                memoryBytes: Int64? = nil, pids: Int? = nil, privateNetwork: Bool = true, capabilities: [String] = [], writableRoot: Bool = false) {
        self.id = id
        self.releaseRootfs = releaseRootfs
        self.config = config
        self.image = image
        self.directory = directory
        self.host = host
        self.port = port
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.privateNetwork = privateNetwork
        self.capabilities = capabilities
        self.writableRoot = writableRoot
    }

    /// The tmpfs folders over a read-only root: none when the root is writable.
    func scratchFolders() throws(RuntimeError) -> [String] {
        guard !writableRoot else { return [] }
        do { return try (config.config ?? ImageConfig.Execution()).writableFolders() } catch {
            throw .setupFailed(instance: id, reason: "the image declares the volume '\(error.path)', which cannot be mounted: \(error.reason)")
        }
    }

    public var logPath: String { directory + "/output.log" }
    /// Where the instance's private network is pinned.
    var networkPath: String { directory + "/netns" }
    /// The instance's seccomp program, for runners that take it compiled.
    var seccompPath: String { directory + "/seccomp.bpf" }

    /// Mounts the instance's root shifted into ``UserMapping/instances`` for a user namespace, or, where
    /// the kernel or file system cannot idmap, unshifted; returns the mapping used and, without one, why.
    func mountRoot() throws(RuntimeError) -> (rootfs: InstanceRootfs, users: UserMapping?, withoutUsers: String?) {
        do {
            return (try InstanceRootfs.mount(release: releaseRootfs, at: directory, shift: .instances), .instances, nil)
        } catch RuntimeError.idmapUnsupported(let reason) {
            let rootfs = try InstanceRootfs.mount(release: releaseRootfs, at: directory)
            return (rootfs, nil, RuntimeError.idmapUnsupported(reason: reason).description)
        }
    }

    /// Adds a line of imgdeploy's own to the instance's log (once its process has started, which empties the log).
    func log(_ note: String) {
        LogFile.append("imgdeploy: \(note)\n", to: logPath)
    }

    /// Creates the instance's private network, if it is to have one.
    func makeNetwork() throws(RuntimeError) -> NetworkNamespace? {
        guard privateNetwork else { return nil }
        do { return try NetworkNamespace.create(at: networkPath) } catch {
            throw .setupFailed(instance: id, reason: error.description)
        }
    }
}

/// A started instance.
public protocol Instance: Sendable {
    var id: String { get }
    /// What the next daemon needs to adopt this instance if this one stops.
    var record: InstanceRecord { get }
    /// The instance's private network, through which it is reached; nil when it shares the host's.
    var network: NetworkNamespace? { get }
    /// The instance's main process as the host sees it, once known.
    func hostPID() async -> Int32?
    /// Waits until the instance exits, for whatever reason, and returns its status.
    func waitForExit() async -> Int32
    /// Sends the image's stop signal, waits up to `timeout`, kills what is left and removes the instance's folder.
    func stop(timeout: Duration) async
}

/// A container runtime that starts instances.
public protocol InstanceRunner: Sendable {
    func start(_ request: InstanceRequest) async throws(RuntimeError) -> any Instance
    /// The instance `record` describes, if its process still runs (started by a daemon that has stopped).
    func adopt(_ record: InstanceRecord) -> (any Instance)?
    /// Removes containers and mounts a previous deployer left behind below `instancesFolder`, except
    /// those of the instances named in `keeping` (adopted ones).
    func removeLeftovers(instancesFolder: String, keeping: Set<String>) async
}

/// The signal number of a name such as `SIGTERM`, `TERM` or `15`; SIGTERM when unknown.
func signalNumber(_ name: String?) -> Int32 {
    guard var name = name?.uppercased(), !name.isEmpty else { return SIGTERM }
    if let number = Int32(name) { return number }
    if name.hasPrefix("SIG") { name.removeFirst(3) }
    let table: [String: Int32] = ["HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1,
                                  "USR2": SIGUSR2, "TERM": SIGTERM, "WINCH": SIGWINCH]
    return table[name] ?? SIGTERM
}

#if canImport(Glibc)
import Glibc
#endif
