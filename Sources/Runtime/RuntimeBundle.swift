import Foundation

/// The `config.json` of an OCI runtime bundle (runtime-spec 1.0) for one instance.
struct RuntimeBundle {
    var process: ProcessSpec
    var rootPath: String
    var hostname: String
    var memoryBytes: Int64?
    var pids: Int?
    /// A network namespace of its own (only loopback), instead of the host's.
    var isolateNetwork = false
    /// An existing network namespace to join (an instance's private one) instead of the host's.
    var networkPath: String?
    /// The capabilities the process keeps, without `CAP_`: none unless the release spec allows some.
    var capabilities: [String] = []
    /// A user namespace of its own with these ids, whose root is not the host's.
    var users: UserMapping?
    /// Folders that get an empty, world-writable tmpfs; when there are any the root is read-only.
    var scratch: [String] = []
    /// The container's cgroup, relative to each hierarchy's root; runc's default is the container's id,
    /// which two deployers (two state folders) running `hello-1` would share.
    var cgroupsPath: String?

    /// What runc's and Docker's defaults hide from a container, plus what they make read-only.
    static let maskedPaths = ["/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                              "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                              "/sys/devices/virtual/powercap", "/sys/fs/cgroup"]
    static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    func json() throws -> Data {
        let capabilities = self.capabilities.map { "CAP_" + $0 }
        // As many open files as this process may have, up to 65536 (a container cannot raise its hard limit).
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let files = min(UInt64(limit.rlim_max), 65536)
        var resources: [String: Any] = [:]
        let network: [[String: String]] = networkPath.map { [["type": "network", "path": $0]] } ?? (isolateNetwork ? [["type": "network"]] : [])
        if let memoryBytes { resources["memory"] = ["limit": memoryBytes] }
        if let pids { resources["pids"] = ["limit": pids] }
        let document: [String: Any] = [
            "ociVersion": "1.0.2",
            "process": [
                "terminal": false,
                "user": ["uid": process.uid, "gid": process.gid],
                "args": process.arguments,
                "env": process.environment,
                "cwd": process.workingDirectory,
                // Ambient and inheritable too, so that a process of a non-root user keeps what is allowed across exec.
                "capabilities": ["bounding": capabilities, "effective": capabilities, "permitted": capabilities,
                                 "inheritable": capabilities, "ambient": capabilities],
                "rlimits": [["type": "RLIMIT_NOFILE", "hard": files, "soft": files]],
                "noNewPrivileges": true,
            ] as [String: Any],
            "root": ["path": rootPath, "readonly": !scratch.isEmpty],
            "hostname": hostname,
            "mounts": [
                ["destination": "/proc", "type": "proc", "source": "proc"],
                ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]],
                ["destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]],
                ["destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]],
                ["destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]],
                // sysfs can only be mounted by the owner of the network namespace, which a user namespace's
                // root is not when the network is made first: the host's /sys, read-only, as rootless Docker does.
                users == nil
                    ? ["destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]]
                    : ["destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "rro", "nosuid", "noexec", "nodev"]],
            // Owned by the image's user: runc gives the tmpfs the mode of the folder it covers, so ownership
            // is what lets the user write to a volume the image made 0755.
            ] + scratch.map { ["destination": $0, "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "nodev", "mode=1777", "uid=\(process.uid)", "gid=\(process.gid)"]] },
            "linux": [
                // The instance's private network (or a new empty one); without either it shares the host's.
                "namespaces": [["type": "pid"], ["type": "ipc"], ["type": "uts"], ["type": "mount"], ["type": "cgroup"]] + network
                    + (users == nil ? [] : [["type": "user"]]),
                "uidMappings": users.map { [["containerID": 0, "hostID": $0.base, "size": $0.size]] } ?? [],
                "gidMappings": users.map { [["containerID": 0, "hostID": $0.base, "size": $0.size]] } ?? [],
                "resources": resources,
                "cgroupsPath": cgroupsPath ?? hostname,
                "seccomp": SeccompProfile.runtimeSpec(),
                "maskedPaths": RuntimeBundle.maskedPaths,
                "readonlyPaths": RuntimeBundle.readonlyPaths,
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
    }
}

/// The ids of a user namespace: 0..size-1 inside are base..base+size-1 on the host.
public struct UserMapping: Sendable, Equatable, Codable {
    public var base: UInt32
    public var size: UInt32

    /// Every runc instance's: 65536 ids from 2^30, far above the ids of the host's own users, so the
    /// instance's root is an unprivileged id on the host that owns nothing outside the instance.
    public static let instances = UserMapping(base: 1 << 30, size: 65536)

    /// The host's id for `id` inside; an id the namespace does not map is refused (the image must use ids
    /// below `size`), never wrapped around into another.
    public func hostID(_ id: UInt32, of instance: String) throws(RuntimeError) -> UInt32 {
        guard id < size else {
            throw .setupFailed(instance: instance, reason: "the image uses the id \(id), beyond the \(size) ids of the instances' user namespace: use user and group ids below \(size) in the Imagefile")
        }
        return base + id
    }
}
