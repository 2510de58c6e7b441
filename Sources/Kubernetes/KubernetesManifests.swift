import OCI
import ReleaseSpec
import Yams

/// Kubernetes manifests for the same release `imgdeploy` runs on one machine, the image pinned by digest.
///
/// - rolling: one Deployment (RollingUpdate with maxSurge 1 and maxUnavailable 0, a readiness probe made
///   from `health`, progressDeadlineSeconds from its deadline) and a Service in front of it.
/// - blue-green: the Deployment of one slot (`<service>-blue` or `<service>-green`) and a Service whose
///   selector points at that slot; applying the other slot's manifests later switches traffic back and forth.
///
/// Every Pod meets the Pod Security Standards' `restricted` profile: no privilege escalation, every
/// capability dropped (`NET_BIND_SERVICE` added back only when the spec allows it), the runtime's default
/// seccomp profile, a non-root user (the image's own, which must be numeric), and a read-only root
/// filesystem with an `emptyDir` for `/tmp` and for each volume the image declares (`writableRoot: true`
/// in the spec keeps the root writable). No host namespace, host path, host port or privileged container.
public struct KubernetesManifests: Sendable {
    public enum Slot: String, Sendable, CaseIterable {
        case blue, green
    }

    public enum RenderError: Error, CustomStringConvertible {
        case noRegistry(service: String)
        /// The image runs as root, which the `restricted` profile does not admit.
        case rootUser(image: String, user: String)
        /// The image's user or group is a name, which Kubernetes cannot check is not root.
        case namedUser(image: String, user: String)
        /// The image's group is root.
        case rootGroup(image: String, user: String)
        /// The platforms of a multi-platform image run as different users.
        case usersDisagree(image: String, users: [String])
        /// The spec lets instances keep capabilities that the `restricted` profile does not let a container add.
        case capabilityNotAllowed(service: String, capabilities: [String])
        /// A volume the image declares cannot be mounted.
        case badVolume(image: String, path: String, reason: String)
        /// The image's user or group is not a number Kubernetes takes (0 to 2147483647).
        case badUserNumber(image: String, user: String)
        /// The image names a user but no group: the runtime would pick one, root if the image's /etc/passwd lacks the user.
        case noGroup(image: String, user: String)

        public var description: String {
            switch self {
            case .noRegistry(let service):
                return "the release spec of \(service) fetches from a local store, which a cluster cannot pull from: give the registry the cluster pulls from with --registry HOST[:PORT] (after `imgbuild push`)"
            case let .rootUser(image, user):
                return "\(image) runs as root (its config's user is \(user.isEmpty ? "not set" : "'\(shown(user))'")), and the restricted Pod Security Standard admits only containers that run as a non-root user: "
                    + Self.setUser
            case let .namedUser(image, user):
                return "\(image) runs as '\(shown(user))', a name: Kubernetes can check only a numeric user and group against runAsNonRoot (it does not read the image's /etc/passwd), so the Pod would never start: "
                    + Self.setUser
            case let .rootGroup(image, user):
                return "\(image) runs as '\(shown(user))', whose group is root (gid 0): a non-root user with root's group can still read and write what root's group may, so imgdeploy refuses it: "
                    + Self.setUser
            case let .badUserNumber(image, user):
                return "\(image) runs as '\(shown(user))', which is not a valid uid[:gid] (each a number from 1 to 2147483647, as the Kubernetes API takes them): "
                    + Self.setUser
            case let .noGroup(image, user):
                return "\(image) runs as '\(shown(user))' with no group: the container runtime would pick one, root's (gid 0) if the image's /etc/passwd does not list the user. Add ':GID': "
                    + Self.setUser
            case let .usersDisagree(image, users):
                return "the platforms of \(image) run as different users (\(users.map { "'\(shown($0))'" }.joined(separator: ", "))), so one securityContext cannot fit them: give every platform the same numeric user in its Imagefile"
            case let .capabilityNotAllowed(service, capabilities):
                return "the release spec of \(service) lets instances keep \(capabilities.joined(separator: ", ")), but the restricted Pod Security Standard lets a container add no capability other than NET_BIND_SERVICE: "
                    + "remove \(capabilities.count == 1 ? "it" : "them") from 'capabilities' to render for Kubernetes (imgdeploy's own runners may keep \(capabilities.count == 1 ? "it" : "them"))"
            case let .badVolume(image, path, reason):
                return "\(image) declares the volume '\(shown(path))', which cannot be mounted: \(reason)"
            }
        }

        /// Text from the image's config, its control characters escaped so that it cannot rewrite the terminal.
        private func shown(_ text: String) -> String { ImageConfig.Execution.escaped(text) }

        private static let setUser = "set a non-root numeric user and group in the Imagefile, e.g. `config: { user: \"1000:1000\" }`, build a new version and point the release spec at its digest"
    }

    /// What the manifests take from the image's own config.
    public struct ImageSettings: Sendable, Equatable {
        /// The config's `User` (`uid[:gid]`, or names); nil or empty means root.
        public var user: String?
        /// The config's `Volumes`: folders the image expects to write to.
        public var volumes: [String]

        public init(user: String?, volumes: [String]) {
            self.user = user
            self.volumes = volumes
        }

        /// The settings of an image with one config per platform: the platforms must run as the same user,
        /// and the volumes are all of theirs.
        public init(configs: [ImageConfig], image: String) throws(RenderError) {
            let users = Set(configs.map { $0.config?.user ?? "" })
            guard users.count <= 1 else { throw .usersDisagree(image: image, users: users.sorted()) }
            user = users.first
            volumes = Set(configs.flatMap { ($0.config?.volumes ?? [:]).keys }).sorted()
        }
    }

    /// The numeric user and group a container runs as.
    struct RunAs: Equatable {
        var user: Int
        var group: Int?
    }

    /// A writable folder over the read-only root.
    struct Scratch: Equatable {
        var name: String
        var path: String
    }

    public var spec: ReleaseSpec
    /// `host[:port]` of the registry the cluster pulls from.
    public var registry: String
    public var slot: Slot
    /// The image's user; nil when its config was not read (runAsNonRoot is then checked by the kubelet alone).
    let runAs: RunAs?
    /// `/tmp` and the image's volumes, sorted by path.
    let scratch: [Scratch]

    /// The registry comes from `registry`, else from a registry `source`. `image` is what the image's config
    /// says; nil when it could not be read, in which case the kubelet alone refuses a root image (through
    /// runAsNonRoot) and only `/tmp` is writable besides a `writableRoot`.
    public init(spec: ReleaseSpec, image: ImageSettings?, registry: String?, slot: Slot = .blue) throws(RenderError) {
        self.spec = spec
        self.slot = slot
        if let registry, !registry.isEmpty {
            self.registry = registry
        } else if case .registry(let base) = spec.source {
            self.registry = String(base.drop { $0 != "/" }.drop { $0 == "/" })
        } else {
            throw .noRegistry(service: spec.service)
        }
        let refused = spec.capabilities.filter { $0 != "NET_BIND_SERVICE" }
        guard refused.isEmpty else { throw .capabilityNotAllowed(service: spec.service, capabilities: refused) }
        let name = "\(spec.image)"
        if let image { runAs = try Self.runAs(image.user ?? "", image: name) } else { runAs = nil }
        scratch = try Self.scratch(image?.volumes ?? [], image: name)
    }

    /// `uid[:gid]` as numbers; root, a root group and names are refused.
    static func runAs(_ user: String, image: String) throws(RenderError) -> RunAs {
        let parts = user.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        func number(_ text: String) -> Int? {
            guard !text.isEmpty, text.count <= 10, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = Int(text),
                  value <= 2_147_483_647 else { return nil }
            return value
        }
        /// A name as the image's /etc/passwd would hold one; anything else that is not a number is malformed.
        func isName(_ text: String) -> Bool {
            !text.isEmpty && text.utf8.first.map { !(0x30...0x39).contains($0) && $0 != 0x2D } == true
                && text.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x41...0x5A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F || $0 == 0x2D || $0 == 0x2E }
        }
        let uid = parts[0]
        if uid.isEmpty || uid == "root" || number(uid) == 0 { throw .rootUser(image: image, user: user) }
        guard let userNumber = number(uid) else { throw isName(uid) ? .namedUser(image: image, user: user) : .badUserNumber(image: image, user: user) }
        guard parts.count == 2 else { throw .noGroup(image: image, user: user) }
        if parts[1] == "root" || number(parts[1]) == 0 { throw .rootGroup(image: image, user: user) }
        guard let groupNumber = number(parts[1]) else {
            throw isName(parts[1]) ? .namedUser(image: image, user: user) : .badUserNumber(image: image, user: user)
        }
        return RunAs(user: userNumber, group: groupNumber)
    }

    /// `/tmp` and each volume, with names that are DNS labels.
    static func scratch(_ volumes: [String], image: String) throws(RenderError) -> [Scratch] {
        var execution = ImageConfig.Execution()
        execution.volumes = Dictionary(volumes.map { ($0, EmptyObject()) }, uniquingKeysWith: { first, _ in first })
        let paths: [String]
        do { paths = try execution.writableFolders() } catch { throw .badVolume(image: image, path: error.path, reason: error.reason) }
        var counter = 0
        return paths.map { path in
            if path == "/tmp" { return Scratch(name: "tmp", path: path) }
            counter += 1
            return Scratch(name: "volume-\(counter)", path: path)
        }
    }

    /// `registry/name@sha256:<hex>`
    public var imageReference: String { "\(registry)/\(spec.image.name)@\(spec.image.digest)" }

    /// The manifests as one multi-document YAML text.
    public func render() throws -> String {
        let documents: [[String: Any]]
        switch spec.strategy {
        case .rolling: documents = [deployment(name: spec.service, selector: ["app": spec.service], rolling: true), service(selector: ["app": spec.service])]
        case .blueGreen, .canary:
            // A Service has no weights: shifting a share of requests needs a mesh or an ingress that has them.
            // A canary is rendered as blue-green slots, whose switch the cluster's own tooling can stage.
            let labels = ["app": spec.service, "slot": slot.rawValue]
            documents = [deployment(name: "\(spec.service)-\(slot.rawValue)", selector: labels, rolling: false), service(selector: labels)]
        }
        var text = ""
        for document in documents {
            text += "---\n" + (try Yams.dump(object: document, sortKeys: true))
        }
        return text
    }

    private var seconds: (interval: Int, timeout: Int, deadline: Int) {
        func whole(_ duration: Duration) -> Int { max(1, Int((duration.milliseconds + 999) / 1000)) }
        return (whole(spec.health.interval), whole(spec.health.timeout), whole(spec.health.deadline))
    }

    private func deployment(name: String, selector: [String: String], rolling: Bool) -> [String: Any] {
        var probe: [String: Any] = [
            "periodSeconds": seconds.interval,
            "timeoutSeconds": seconds.timeout,
            "successThreshold": spec.health.healthyAfter,
            "failureThreshold": 3,
        ]
        if let path = spec.health.path {
            probe["httpGet"] = ["path": path, "port": spec.port]
        } else {
            probe["tcpSocket"] = ["port": spec.port]
        }
        var container: [String: Any] = [
            "name": spec.service,
            "image": imageReference,
            "imagePullPolicy": "IfNotPresent",
            "ports": [["containerPort": spec.port, "protocol": "TCP"]],
            "readinessProbe": probe,
            "securityContext": containerSecurityContext,
            "volumeMounts": scratch.map { ["name": $0.name, "mountPath": $0.path] },
        ]
        var limits: [String: Any] = [:]
        if let memory = spec.limits.memoryBytes { limits["memory"] = String(memory) }
        if !limits.isEmpty { container["resources"] = ["limits": limits] }
        var deploymentSpec: [String: Any] = [
            "replicas": spec.replicas,
            "selector": ["matchLabels": selector],
            "progressDeadlineSeconds": seconds.deadline,
            // The old ReplicaSets kept for `kubectl rollout undo`: the same window as `keep` on one machine.
            "revisionHistoryLimit": spec.keep - 1,
            "template": [
                "metadata": ["labels": selector, "annotations": annotations],
                "spec": [
                    "containers": [container],
                    "securityContext": podSecurityContext,
                    "volumes": scratch.map { ["name": $0.name, "emptyDir": [String: Any]()] as [String: Any] },
                    "terminationGracePeriodSeconds": max(1, Int(spec.stopTimeout.milliseconds / 1000)),
                ] as [String: Any],
            ] as [String: Any],
        ]
        deploymentSpec["strategy"] = rolling
            ? ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": 1, "maxUnavailable": 0]] as [String: Any]
            : ["type": "Recreate"]
        return [
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": ["name": name, "labels": selector, "annotations": annotations] as [String: Any],
            "spec": deploymentSpec,
        ]
    }

    /// The Pod's part of the `restricted` profile: non-root, and the runtime's default seccomp profile.
    private var podSecurityContext: [String: Any] {
        ["runAsNonRoot": true, "seccompProfile": ["type": "RuntimeDefault"]]
    }

    /// The container's part: every rule again (a container's own settings are what admission checks first),
    /// the image's numeric user, every capability dropped, and a read-only root unless `writableRoot`.
    /// Every container of the Pod (init containers too, should there be any) gets this.
    private var containerSecurityContext: [String: Any] {
        var capabilities: [String: Any] = ["drop": ["ALL"]]
        if spec.capabilities.contains("NET_BIND_SERVICE") { capabilities["add"] = ["NET_BIND_SERVICE"] }
        var context: [String: Any] = [
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": capabilities,
            "readOnlyRootFilesystem": !spec.writableRoot,
            "runAsNonRoot": true,
            "seccompProfile": ["type": "RuntimeDefault"],
        ]
        if let runAs {
            context["runAsUser"] = runAs.user
            if let group = runAs.group { context["runAsGroup"] = group }
        }
        return context
    }

    private func service(selector: [String: String]) -> [String: Any] {
        [
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": ["name": spec.service, "labels": ["app": spec.service], "annotations": annotations] as [String: Any],
            "spec": [
                "type": "ClusterIP",
                "selector": selector,
                "ports": [["name": "http", "port": spec.listen.port, "targetPort": spec.port, "protocol": "TCP"]],
            ] as [String: Any],
        ]
    }

    private var annotations: [String: String] {
        ["imgbuild.dev/image": "\(spec.image)", "imgbuild.dev/strategy": spec.strategy.rawValue]
    }
}
