import ReleaseSpec
import Yams

/// Kubernetes manifests for the same release `imgdeploy` runs on one machine, the image pinned by digest.
///
/// - rolling: one Deployment (RollingUpdate with maxSurge 1 and maxUnavailable 0, a readiness probe made
///   from `health`, progressDeadlineSeconds from its deadline) and a Service in front of it.
/// - blue-green: the Deployment of one slot (`<service>-blue` or `<service>-green`) and a Service whose
///   selector points at that slot; applying the other slot's manifests later switches traffic back and forth.
public struct KubernetesManifests: Sendable {
    public enum Slot: String, Sendable, CaseIterable {
        case blue, green
    }

    public enum RenderError: Error, CustomStringConvertible {
        case noRegistry(service: String)
        public var description: String {
            switch self {
            case .noRegistry(let service):
                return "the release spec of \(service) fetches from a local store, which a cluster cannot pull from: give the registry the cluster pulls from with --registry HOST[:PORT] (after `imgbuild push`)"
            }
        }
    }

    public var spec: ReleaseSpec
    /// `host[:port]` of the registry the cluster pulls from.
    public var registry: String
    public var slot: Slot

    /// The registry comes from `registry`, else from a registry `source`.
    public init(spec: ReleaseSpec, registry: String?, slot: Slot = .blue) throws(RenderError) {
        self.spec = spec
        self.slot = slot
        if let registry, !registry.isEmpty {
            self.registry = registry
        } else if case .registry(let base) = spec.source {
            self.registry = String(base.drop { $0 != "/" }.drop { $0 == "/" })
        } else {
            throw .noRegistry(service: spec.service)
        }
    }

    /// `registry/name@sha256:<hex>`
    public var imageReference: String { "\(registry)/\(spec.image.name)@\(spec.image.digest)" }

    /// The manifests as one multi-document YAML text.
    public func render() throws -> String {
        let documents: [[String: Any]]
        switch spec.strategy {
        case .rolling: documents = [deployment(name: spec.service, selector: ["app": spec.service], rolling: true), service(selector: ["app": spec.service])]
        case .blueGreen:
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
        ]
        var limits: [String: Any] = [:]
        if let memory = spec.limits.memoryBytes { limits["memory"] = String(memory) }
        if !limits.isEmpty { container["resources"] = ["limits": limits] }
        var deploymentSpec: [String: Any] = [
            "replicas": spec.replicas,
            "selector": ["matchLabels": selector],
            "progressDeadlineSeconds": seconds.deadline,
            "revisionHistoryLimit": 10,
            "template": [
                "metadata": ["labels": selector, "annotations": annotations],
                "spec": [
                    "containers": [container],
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
