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

    func json() throws -> Data {
        let capabilities = ["CAP_NET_BIND_SERVICE"]
        // As many open files as this process may have, up to 65536 (a container cannot raise its hard limit).
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        let files = min(UInt64(limit.rlim_max), 65536)
        var resources: [String: Any] = [:]
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
                "capabilities": ["bounding": capabilities, "effective": capabilities, "permitted": capabilities],
                "rlimits": [["type": "RLIMIT_NOFILE", "hard": files, "soft": files]],
                "noNewPrivileges": true,
            ] as [String: Any],
            "root": ["path": rootPath, "readonly": false],
            "hostname": hostname,
            "mounts": [
                ["destination": "/proc", "type": "proc", "source": "proc"],
                ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]],
                ["destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]],
                ["destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]],
                ["destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]],
                ["destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]],
            ],
            "linux": [
                // No network namespace: the instance shares the host's and listens on the $HOST:$PORT it is given.
                "namespaces": [["type": "pid"], ["type": "ipc"], ["type": "uts"], ["type": "mount"]] + (isolateNetwork ? [["type": "network"]] : []),
                "resources": resources,
                "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                                "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
                "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            ] as [String: Any],
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
    }
}
