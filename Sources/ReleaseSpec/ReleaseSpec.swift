import OCI

/// One release of one service, as `imgdeploy apply` reads it from YAML.
///
/// ```yaml
/// service: hello
/// image: hello@sha256:<64 hex>
/// source: /path/to/store | http://127.0.0.1:5000
/// replicas: 2
/// port: 8080
/// listen: 127.0.0.1:9000
/// strategy: blue-green | rolling | canary
/// canary: { steps: [5, 25, 50, 100], stepDuration: 30s, minRequests: 100, analysis: { maxErrorRate: 1% } }
/// health: { path: /healthz, interval: 1s, timeout: 1s, healthyAfter: 2, deadline: 30s }
/// capabilities: [NET_BIND_SERVICE]   # Linux capabilities an instance keeps (default: none)
/// writableRoot: false                # true: the image may write to its root (default: read-only)
/// network: private | host             # private (default): loopback only, reached by the front alone
/// keep: 3                            # releases kept ready for rollback: the serving one and the 2 before it
/// ```
public struct ReleaseSpec: Sendable, Codable, Equatable {
    /// The service's name: a DNS label (lowercase letters, digits and '-'), as Kubernetes needs it.
    public var service: String
    public var image: PinnedImage
    public var source: Source
    public var replicas: Int
    /// The port the image listens on (its `$PORT` default).
    public var port: Int
    /// The load balancer's front.
    public var listen: ListenAddress
    public var strategy: Strategy
    /// How a canary rollout moves and judges; set when `strategy` is `canary` (and only then).
    public var canary: CanaryPolicy?
    public var health: HealthCheck
    public var runner: RunnerKind
    /// How long an instance has after its stop signal before it is killed.
    public var stopTimeout: Duration
    public var limits: Limits
    public var unpack: UnpackLimits
    /// What must be proven about the image before anything of it runs.
    public var verify: VerifyPolicy?
    /// The Linux capabilities an instance keeps, every other one dropped: names from ``capabilityNames``
    /// without the `CAP_` prefix, each once, in the order of their numbers. Empty by default.
    public var capabilities: [String]
    /// Whether an instance may write to its root filesystem. By default the root is read-only and only the
    /// image's declared volumes and `/tmp` are writable.
    public var writableRoot: Bool
    /// The network an instance is in.
    public var network: Network
    /// How many releases stay unpacked for an instant rollback without the source: the serving one and the
    /// `keep - 1` before it in the history. Older ones that no instance uses are removed after a rollout.
    public var keep: Int

    /// Where the image is fetched from.
    public enum Source: Sendable, Codable, Equatable, CustomStringConvertible {
        /// An imgbuild store directory (absolute).
        case store(path: String)
        /// An OCI distribution registry, `http(s)://HOST[:PORT]`.
        case registry(base: String)

        public var description: String {
            switch self {
            case .store(let path): return path
            case .registry(let base): return base
            }
        }
    }

    /// How new instances replace old ones.
    public enum Strategy: String, Sendable, Codable, Equatable, CaseIterable {
        /// Start every new instance, then switch all traffic at once.
        case blueGreen = "blue-green"
        /// Replace one instance at a time.
        case rolling
        /// Start every new instance, send them a growing share of requests step by step while the front
        /// compares their errors and latency with the old version's, then switch all traffic.
        case canary
    }

    /// The network an instance is in.
    public enum Network: String, Sendable, Codable, Equatable, CaseIterable {
        /// A network namespace of its own with only loopback: it listens on `port` there, the front and
        /// the health checks reach it inside, and it reaches nothing outside itself.
        case `private`
        /// The host's: it can reach what the host reaches, listens on a free port of 127.0.0.1, and any
        /// process that binds that port first would take its traffic.
        case host
    }

    /// The runtime that runs instances.
    public enum RunnerKind: String, Sendable, Codable, Equatable, CaseIterable {
        case runc
        case bwrap
    }

    /// A host and port to listen on.
    public struct ListenAddress: Sendable, Codable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { "\(host):\(port)" }
    }

    /// When an instance counts as healthy.
    public struct HealthCheck: Sendable, Codable, Equatable {
        /// An HTTP path answered with 2xx or 3xx when healthy; nil means a TCP connect is enough.
        public var path: String?
        public var interval: Duration
        public var timeout: Duration
        /// Consecutive passing checks before an instance takes traffic.
        public var healthyAfter: Int
        /// How long a new version has to become healthy before its rollout is aborted.
        public var deadline: Duration

        public init(path: String?, interval: Duration = .seconds(1), timeout: Duration = .seconds(1), healthyAfter: Int = 2, deadline: Duration = .seconds(30)) {
            self.path = path
            self.interval = interval
            self.timeout = timeout
            self.healthyAfter = healthyAfter
            self.deadline = deadline
        }
    }

    /// Resource limits applied through cgroups where the runner supports them.
    public struct Limits: Sendable, Codable, Equatable {
        public var memoryBytes: Int64?
        public var pids: Int?
        public init(memoryBytes: Int64? = nil, pids: Int? = 1024) {
            self.memoryBytes = memoryBytes
            self.pids = pids
        }
    }

    /// The deploy policy: what the image must carry before anything of it runs.
    public struct VerifyPolicy: Sendable, Codable, Equatable {
        /// Where the key was read from, for messages; nil when no signature is required.
        public var keyPath: String?
        /// The ECDSA P-256 public key (PEM) a signature must verify with.
        public var publicKeyPEM: String?
        /// An SPDX SBOM that refers to the image and describes exactly its digest.
        public var requireSBOM: Bool
        /// A record that the image passed its Imagefile tests.
        public var requireTests: Bool

        public init(keyPath: String? = nil, publicKeyPEM: String? = nil, requireSBOM: Bool = false, requireTests: Bool = false) {
            self.keyPath = keyPath
            self.publicKeyPEM = publicKeyPEM
            self.requireSBOM = requireSBOM
            self.requireTests = requireTests
        }
    }

    /// What unpacking an image may do.
    public struct UnpackLimits: Sendable, Codable, Equatable {
        /// Keep setuid and setgid bits (otherwise an image that has them is refused).
        public var allowSetuid: Bool
        /// The most bytes the unpacked files may hold.
        public var maxBytes: Int64
        public init(allowSetuid: Bool = false, maxBytes: Int64 = 4 << 30) {
            self.allowSetuid = allowSetuid
            self.maxBytes = maxBytes
        }
    }

    public init(service: String, image: PinnedImage, source: Source, replicas: Int = 1, port: Int, listen: ListenAddress,
                strategy: Strategy = .blueGreen, health: HealthCheck = HealthCheck(path: nil), runner: RunnerKind = .runc,
                stopTimeout: Duration = .seconds(10), limits: Limits = Limits(), unpack: UnpackLimits = UnpackLimits()) {
        self.service = service
        self.image = image
        self.source = source
        self.replicas = replicas
        self.port = port
        self.listen = listen
        self.strategy = strategy
        self.health = health
        self.runner = runner
        self.stopTimeout = stopTimeout
        self.limits = limits
        self.unpack = unpack
        self.capabilities = []
        self.writableRoot = false
        self.network = .private
        self.keep = Self.defaultKeep
    }

    /// Releases kept when a spec does not say: the serving one and two to roll back to.
    public static let defaultKeep = 3

    enum CodingKeys: String, CodingKey {
        case service, image, source, replicas, port, listen, strategy, health, runner, stopTimeout, limits, unpack, verify
        case capabilities, writableRoot, network, keep, canary
    }

    /// Decodes a spec; `capabilities` and `writableRoot` may be missing (state written before they existed).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        service = try container.decode(String.self, forKey: .service)
        image = try container.decode(PinnedImage.self, forKey: .image)
        source = try container.decode(Source.self, forKey: .source)
        replicas = try container.decode(Int.self, forKey: .replicas)
        port = try container.decode(Int.self, forKey: .port)
        listen = try container.decode(ListenAddress.self, forKey: .listen)
        strategy = try container.decode(Strategy.self, forKey: .strategy)
        health = try container.decode(HealthCheck.self, forKey: .health)
        runner = try container.decode(RunnerKind.self, forKey: .runner)
        stopTimeout = try container.decode(Duration.self, forKey: .stopTimeout)
        limits = try container.decode(Limits.self, forKey: .limits)
        unpack = try container.decode(UnpackLimits.self, forKey: .unpack)
        verify = try container.decodeIfPresent(VerifyPolicy.self, forKey: .verify)
        capabilities = try container.decodeIfPresent([String].self, forKey: .capabilities) ?? []
        writableRoot = try container.decodeIfPresent(Bool.self, forKey: .writableRoot) ?? false
        // Specs saved before `network` existed get the default: an instance adopted from then is still
        // reached where it runs (its record says), and one started now gets a network of its own.
        network = try container.decodeIfPresent(Network.self, forKey: .network) ?? .private
        keep = try container.decodeIfPresent(Int.self, forKey: .keep) ?? Self.defaultKeep
        canary = try container.decodeIfPresent(CanaryPolicy.self, forKey: .canary)
    }

    /// The Linux capability names (`capabilities(7)`) without their `CAP_` prefix, in the order of their
    /// numbers: a name's index is its bit in a capability set such as `CapEff`.
    public static let capabilityNames = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
        "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
        "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
        "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
        "CHECKPOINT_RESTORE",
    ]

    /// What is wrong with a spec that did not come through the YAML reader (the daemon receives specs as
    /// JSON, from any process that can reach its socket): the same rules the reader enforces, so that no
    /// path admits a spec the other refuses. Empty when the spec is valid.
    public var problems: [String] {
        var problems: [String] = []
        func check(_ condition: Bool, _ message: @autoclosure () -> String) { if !condition { problems.append(message()) } }
        check(Self.isValidServiceName(service), "'service' must be 1 to 63 lowercase letters, digits or '-', not '\(service)'")
        check((1...64).contains(replicas), "'replicas' must be from 1 to 64, not \(replicas)")
        check((1...65535).contains(port), "'port' must be from 1 to 65535, not \(port)")
        check((1...65535).contains(listen.port), "'listen' needs a port from 1 to 65535, not \(listen.port)")
        check(!listen.host.isEmpty && listen.host.utf8.count <= 253 && listen.host.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != 0x2f },
              "'listen' needs a host name or address, not '\(listen.host)'")
        switch source {
        case .store(let path):
            check(path.hasPrefix("/") && !path.utf8.contains(0), "a store 'source' must be an absolute path, not '\(path)'")
        case .registry(let base):
            let parts = base.split(separator: "/", omittingEmptySubsequences: true)
            check((base.hasPrefix("http://") || base.hasPrefix("https://")) && parts.count == 2 && base.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f },
                  "a registry 'source' is http(s)://HOST[:PORT] with no path, not '\(base)'")
        }
        if let path = health.path {
            check(path.hasPrefix("/") && path.utf8.count <= 2048 && path.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f },
                  "'health.path' must start with '/' and hold no spaces or control characters, not '\(path)'")
        }
        check(health.interval > .zero && health.timeout > .zero, "'health.interval' and 'health.timeout' must be longer than zero")
        check((1...100).contains(health.healthyAfter), "'health.healthyAfter' must be from 1 to 100, not \(health.healthyAfter)")
        check(health.interval <= .seconds(86_400) && health.deadline <= .seconds(86_400 * 7) && health.timeout <= .seconds(86_400),
              "health durations must be at most a day (a week for the deadline)")
        if problems.isEmpty {
            check(health.deadline >= health.interval * health.healthyAfter, "'health.deadline' is shorter than healthyAfter × interval, so no instance could ever pass")
        }
        check(stopTimeout >= .zero && stopTimeout <= .seconds(86_400), "'stopTimeout' must be from 0 to a day")
        check(limits.memoryBytes.map { $0 > 0 } ?? true, "'limits.memory' must be more than zero")
        check(limits.pids.map { (1...1_000_000).contains($0) } ?? true, "'limits.pids' must be from 1 to 1000000")
        check((1...100).contains(keep), "'keep' must be from 1 to 100 releases (the serving one counts), not \(keep)")
        check(unpack.maxBytes > 0, "'unpack.maxSize' must be more than zero")
        if let unknown = capabilities.first(where: { !Self.capabilityNames.contains($0) }) {
            check(false, "'capabilities' may hold only \(Self.capabilityNames.joined(separator: ", ")), not '\(String(unknown.prefix(64)))'")
        } else {
            check(Set(capabilities).count == capabilities.count, "'capabilities' names a capability twice")
        }
        switch (strategy, canary) {
        case (.canary, nil): check(false, "'strategy: canary' needs its 'canary' policy")
        case (.canary, let policy?): problems += policy.problems
        case (_, nil): break
        case (_, _?): check(false, "'canary' is read only with 'strategy: canary', not \(strategy.rawValue)")
        }
        if let verify {
            check(verify.publicKeyPEM.map { $0.contains("-----BEGIN PUBLIC KEY-----") } ?? true, "'verify.key' must be a PEM public key")
            check(verify.publicKeyPEM != nil || verify.requireSBOM || verify.requireTests, "'verify' asks for nothing")
        }
        return problems
    }

    /// Whether `name` can name a service: a DNS label of 1 to 63 characters.
    public static func isValidServiceName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count), bytes.first != 0x2d, bytes.last != 0x2d else { return false }
        return bytes.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2d }
    }
}
