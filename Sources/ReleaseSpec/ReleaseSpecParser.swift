import DocumentReader
import Foundation
import HostPort
import OCI
import Yams

/// A problem with a release spec, at a place in it when there is one (`file:line:column: message`).
public typealias ReleaseSpecError = DocumentError

extension ReleaseSpec {
    /// The keys a release spec may have at its top level.
    public static let topLevelKeys = ["service", "image", "source", "replicas", "port", "listen", "strategy", "health",
                                      "runner", "stopTimeout", "limits", "unpack", "verify", "capabilities", "writableRoot", "network", "keep", "canary"]

    /// Reads and validates the release spec at `path`. A relative store `source` is taken from the spec's folder.
    public static func load(path: String) throws(ReleaseSpecError) -> ReleaseSpec {
        let text = try NodeReader.readText(path: path, what: "the release spec")
        let folder = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path
        return try parse(text, path: path, folder: folder)
    }

    /// Parses release spec text; `path` is used in messages, `folder` resolves a relative store source.
    public static func parse(_ text: String, path: String, folder: String) throws(ReleaseSpecError) -> ReleaseSpec {
        let reader = NodeReader(file: path)
        let root = try reader.compose(text, whenEmpty: "the release spec is empty: it needs at least service, image, source, port and listen")
        return try reader.releaseSpec(root, folder: folder)
    }
}

extension NodeReader {
    func releaseSpec(_ root: Node, folder: String) throws(ReleaseSpecError) -> ReleaseSpec {
        let keys = try mapping(root, allowed: ReleaseSpec.topLevelKeys, what: "the release spec")
        func required(_ key: String, example: String) throws(ReleaseSpecError) -> Node {
            guard let entry = keys[key] else {
                throw ReleaseSpecError(file: file, location: location(root), message: "missing key '\(key)', e.g. '\(key): \(example)'")
            }
            return entry.value
        }

        let serviceNode = try required("service", example: "hello")
        let service = try string(serviceNode, what: "'service'")
        guard ReleaseSpec.isValidServiceName(service) else {
            throw error(serviceNode, "'service' must be 1 to 63 lowercase letters, digits or '-' (a DNS label, as Kubernetes needs), not '\(service)'")
        }

        let imageNode = try required("image", example: "hello@sha256:<64 hex digits>")
        let image: PinnedImage
        do { image = try PinnedImage(parsing: try string(imageNode, what: "'image'")) } catch let notPinned as PinnedImage.NotPinned {
            throw error(imageNode, notPinned.description)
        } catch { throw error as! ReleaseSpecError }

        let sourceNode = try required("source", example: "/var/lib/imgbuild or http://127.0.0.1:5000")
        let source = try self.source(sourceNode, folder: folder)

        let replicas = keys["replicas"].map { $0.value }
        let port = try integer(try required("port", example: "8080"), what: "'port'", range: 1...65535)
        let listen = try listenAddress(try required("listen", example: "127.0.0.1:9000"))

        var strategy = ReleaseSpec.Strategy.blueGreen
        if let node = keys["strategy"]?.value {
            let text = try string(node, what: "'strategy'")
            guard let value = ReleaseSpec.Strategy(rawValue: text) else {
                throw error(node, "'strategy' must be one of \(ReleaseSpec.Strategy.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            }
            strategy = value
        }
        var runner = ReleaseSpec.RunnerKind.runc
        if let node = keys["runner"]?.value {
            let text = try string(node, what: "'runner'")
            guard let value = ReleaseSpec.RunnerKind(rawValue: text) else {
                throw error(node, "'runner' must be one of \(ReleaseSpec.RunnerKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            }
            runner = value
        }
        var spec = ReleaseSpec(service: service, image: image, source: source, port: Int(port), listen: listen, strategy: strategy, runner: runner)
        if let node = replicas { spec.replicas = Int(try integer(node, what: "'replicas'", range: 1...64)) }
        if let node = keys["health"]?.value { spec.health = try health(node) }
        if let node = keys["stopTimeout"]?.value { spec.stopTimeout = try duration(node, what: "'stopTimeout'") }
        if let node = keys["limits"]?.value { spec.limits = try limits(node) }
        if let node = keys["unpack"]?.value { spec.unpack = try unpackLimits(node) }
        if let node = keys["verify"]?.value { spec.verify = try verifyPolicy(node, folder: folder) }
        if let node = keys["capabilities"]?.value { spec.capabilities = try capabilities(node) }
        if let node = keys["writableRoot"]?.value { spec.writableRoot = try flag(node, what: "'writableRoot'") }
        if let node = keys["network"]?.value {
            let text = try string(node, what: "'network'")
            guard let value = ReleaseSpec.Network(rawValue: text) else {
                throw error(node, "'network' must be one of \(ReleaseSpec.Network.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            }
            spec.network = value
        }
        if let node = keys["keep"]?.value { spec.keep = Int(try integer(node, what: "'keep'", range: 1...100)) }
        if let entry = keys["canary"] {
            guard strategy == .canary else {
                throw error(entry.key, "'canary' is read only with 'strategy: canary' (this spec's strategy is \(strategy.rawValue))")
            }
            spec.canary = try canaryPolicy(entry.value)
        } else if strategy == .canary {
            spec.canary = CanaryPolicy()
        }
        if let problem = spec.problems.first { throw error(root, problem) }
        return spec
    }

    func source(_ node: Node, folder: String) throws(ReleaseSpecError) -> ReleaseSpec.Source {
        let text = try nonEmptyString(node, what: "'source'")
        if text.hasPrefix("http://") || text.hasPrefix("https://") {
            let base = text.hasSuffix("/") ? String(text.dropLast()) : text
            let hostPart = base.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first ?? ""
            guard !hostPart.isEmpty, base.split(separator: "/", omittingEmptySubsequences: true).count == 2 else {
                throw error(node, "a registry 'source' is http(s)://HOST[:PORT] with no path (the repository comes from 'image'), not '\(text)'")
            }
            return .registry(base: base)
        }
        if text.contains("://") {
            throw error(node, "'source' must be a store folder or an http(s):// registry, not '\(text)'")
        }
        let absolute = text.hasPrefix("/") ? text : URL(fileURLWithPath: folder).appendingPathComponent(text).standardizedFileURL.path
        return .store(path: absolute)
    }

    func listenAddress(_ node: Node) throws(ReleaseSpecError) -> ReleaseSpec.ListenAddress {
        let text = try nonEmptyString(node, what: "'listen'")
        do {
            let address = try HostPort.parse(text)
            return .init(host: address.host, port: address.port)
        } catch .noHost {
            throw error(node, "'listen' needs a host before the port, e.g. 127.0.0.1:9000, not '\(text)'")
        } catch {
            throw self.error(node, "'listen' must be HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:9000, not '\(text)'")
        }
    }

    func duration(_ node: Node, what: String) throws(ReleaseSpecError) -> Duration {
        let text = try nonEmptyString(node, what: what)
        guard let value = DurationText.parse(text) else {
            throw error(node, "\(what) must be a duration such as 500ms, 1s, 1.5s or 2m, not '\(text)'")
        }
        return value
    }

    func health(_ node: Node) throws(ReleaseSpecError) -> ReleaseSpec.HealthCheck {
        let keys = try mapping(node, allowed: ["path", "interval", "timeout", "healthyAfter", "deadline"], what: "'health'")
        var check = ReleaseSpec.HealthCheck(path: nil)
        if let entry = keys["path"] {
            let path = try nonEmptyString(entry.value, what: "'health.path'")
            guard path.hasPrefix("/") else { throw error(entry.value, "'health.path' must start with '/', e.g. /healthz, not '\(path)'") }
            check.path = path
        }
        if let entry = keys["interval"] { check.interval = try duration(entry.value, what: "'health.interval'") }
        if let entry = keys["timeout"] { check.timeout = try duration(entry.value, what: "'health.timeout'") }
        if let entry = keys["healthyAfter"] { check.healthyAfter = Int(try integer(entry.value, what: "'health.healthyAfter'", range: 1...100)) }
        if let entry = keys["deadline"] { check.deadline = try duration(entry.value, what: "'health.deadline'") }
        guard check.interval > .zero, check.timeout > .zero else {
            throw error(node, "'health.interval' and 'health.timeout' must be longer than zero")
        }
        guard check.deadline >= check.interval * check.healthyAfter else {
            throw error(node, "'health.deadline' (\(DurationText.format(check.deadline))) is shorter than healthyAfter × interval, so no instance could ever pass")
        }
        return check
    }

    func limits(_ node: Node) throws(ReleaseSpecError) -> ReleaseSpec.Limits {
        let keys = try mapping(node, allowed: ["memory", "pids"], what: "'limits'")
        var limits = ReleaseSpec.Limits()
        if let entry = keys["memory"] { limits.memoryBytes = try byteSize(entry.value, what: "'limits.memory'") }
        if let entry = keys["pids"] { limits.pids = Int(try integer(entry.value, what: "'limits.pids'", range: 1...1_000_000)) }
        return limits
    }

    func unpackLimits(_ node: Node) throws(ReleaseSpecError) -> ReleaseSpec.UnpackLimits {
        let keys = try mapping(node, allowed: ["allowSetuid", "maxSize"], what: "'unpack'")
        var limits = ReleaseSpec.UnpackLimits()
        if let entry = keys["allowSetuid"] {
            let text = try string(entry.value, what: "'unpack.allowSetuid'")
            guard let flag = Bool(text) else { throw error(entry.value, "'unpack.allowSetuid' must be true or false, not '\(text)'") }
            limits.allowSetuid = flag
        }
        if let entry = keys["maxSize"] { limits.maxBytes = try byteSize(entry.value, what: "'unpack.maxSize'") }
        return limits
    }

    /// `verify: { key: PUB, requireSBOM: true, requireTests: true }`: the public key is read now, so the daemon checks with exactly this key.
    func verifyPolicy(_ node: Node, folder: String) throws(ReleaseSpecError) -> ReleaseSpec.VerifyPolicy {
        let keys = try mapping(node, allowed: ["key", "requireSBOM", "requireTests"], what: "'verify'")
        var policy = ReleaseSpec.VerifyPolicy()
        if let entry = keys["key"] {
            let text = try nonEmptyString(entry.value, what: "'verify.key'")
            let path = text.hasPrefix("/") ? text : URL(fileURLWithPath: folder).appendingPathComponent(text).standardizedFileURL.path
            guard let data = FileManager.default.contents(atPath: path), let pem = String(data: data, encoding: .utf8),
                  pem.contains("-----BEGIN PUBLIC KEY-----") else {
                throw error(entry.value, "'verify.key' must name a PEM public key file (imgbuild keygen writes PREFIX.pub); cannot read one at \(path)")
            }
            policy.keyPath = path
            policy.publicKeyPEM = pem
        }
        if let entry = keys["requireSBOM"] {
            let text = try string(entry.value, what: "'verify.requireSBOM'")
            guard let flag = Bool(text) else { throw error(entry.value, "'verify.requireSBOM' must be true or false, not '\(text)'") }
            policy.requireSBOM = flag
        }
        if let entry = keys["requireTests"] {
            let text = try string(entry.value, what: "'verify.requireTests'")
            guard let flag = Bool(text) else { throw error(entry.value, "'verify.requireTests' must be true or false, not '\(text)'") }
            policy.requireTests = flag
        }
        guard policy.publicKeyPEM != nil || policy.requireSBOM || policy.requireTests else {
            throw error(node, "'verify' asks for nothing: give 'key' (the signer's public key), 'requireSBOM: true' and/or 'requireTests: true'")
        }
        return policy
    }

    /// `capabilities: [NET_BIND_SERVICE, ...]`: names from `capabilities(7)`, with or without `CAP_`, each
    /// once; kept without the prefix, in the order of their numbers.
    func capabilities(_ node: Node) throws(ReleaseSpecError) -> [String] {
        var numbers: Set<Int> = []
        for item in try sequence(node, what: "'capabilities'") {
            let text = try nonEmptyString(item, what: "a capability")
            let name = text.hasPrefix("CAP_") ? String(text.dropFirst(4)) : text
            guard let number = ReleaseSpec.capabilityNames.firstIndex(of: name) else {
                let upper = name.uppercased().hasPrefix("CAP_") ? String(name.uppercased().dropFirst(4)) : name.uppercased()
                let hint = ReleaseSpec.capabilityNames.contains(upper) ? " (capability names are written in capitals: \(upper))" : ""
                throw error(item, "'\(text)' is not a Linux capability\(hint); 'capabilities' may name \(ReleaseSpec.capabilityNames.joined(separator: ", "))")
            }
            guard numbers.insert(number).inserted else { throw error(item, "'capabilities' names \(name) twice") }
        }
        return numbers.sorted().map { ReleaseSpec.capabilityNames[$0] }
    }

    /// `canary: { steps, stepDuration, minRequests, analysis, sticky }` (see ``CanaryPolicy``).
    func canaryPolicy(_ node: Node) throws(ReleaseSpecError) -> CanaryPolicy {
        let keys = try mapping(node, allowed: ["steps", "stepDuration", "minRequests", "analysis", "sticky"], what: "'canary'")
        var policy = CanaryPolicy()
        if let entry = keys["steps"] {
            var steps: [CanaryPolicy.Step] = []
            for item in try sequence(entry.value, what: "'canary.steps'") {
                let text = try nonEmptyString(item, what: "a canary step")
                if text == "pause" {
                    steps.append(.pause)
                } else if let value = Int(text.hasSuffix("%") ? String(text.dropLast()) : text), (1...100).contains(value) {
                    steps.append(.percent(value))
                } else {
                    throw error(item, "a canary step is a percent of requests from 1 to 100, or 'pause' (wait for `imgdeploy promote`), not '\(text)'")
                }
            }
            policy.steps = steps
            if let problem = policy.problems.first(where: { $0.contains("'canary.steps'") }) { throw error(entry.value, problem) }
        }
        if let entry = keys["stepDuration"] { policy.stepDuration = try duration(entry.value, what: "'canary.stepDuration'") }
        if let entry = keys["minRequests"] { policy.minRequests = Int(try integer(entry.value, what: "'canary.minRequests'", range: 1...10_000_000)) }
        if let entry = keys["analysis"] {
            let rules = try mapping(entry.value, allowed: ["maxErrorRate", "maxErrorRateIncrease", "maxP99", "maxP99Ratio"], what: "'canary.analysis'")
            // Written rules replace the default (1% errors) as a whole: a spec that names only latency checks only latency.
            var analysis = CanaryPolicy.Analysis(maxErrorRate: nil)
            if let rule = rules["maxErrorRate"] { analysis.maxErrorRate = try percentage(rule.value, what: "'canary.analysis.maxErrorRate'") }
            if let rule = rules["maxErrorRateIncrease"] {
                analysis.maxErrorRateIncrease = try percentage(rule.value, what: "'canary.analysis.maxErrorRateIncrease'")
            }
            if let rule = rules["maxP99"] { analysis.maxP99 = try duration(rule.value, what: "'canary.analysis.maxP99'") }
            if let rule = rules["maxP99Ratio"] {
                let text = try nonEmptyString(rule.value, what: "'canary.analysis.maxP99Ratio'")
                guard let ratio = Double(text), ratio >= 1, ratio <= 1000 else {
                    throw error(rule.value, "'canary.analysis.maxP99Ratio' is how many times the old version's p99 the new one may reach, a number from 1 to 1000 such as 1.5, not '\(text)'")
                }
                analysis.maxP99Ratio = ratio
            }
            guard analysis != CanaryPolicy.Analysis(maxErrorRate: nil) else {
                throw error(entry.value, "'canary.analysis' names no rule: give maxErrorRate, maxErrorRateIncrease, maxP99 and/or maxP99Ratio, or leave it out for the default (maxErrorRate: 1%)")
            }
            policy.analysis = analysis
        }
        if let entry = keys["sticky"] {
            let text = try string(entry.value, what: "'canary.sticky'")
            guard let sticky = CanaryPolicy.Sticky(rawValue: text) else {
                throw error(entry.value, "'canary.sticky' may be \(CanaryPolicy.Sticky.allCases.map(\.rawValue).joined(separator: ", ")), not '\(text)'")
            }
            policy.sticky = sticky
        }
        if let problem = policy.problems.first { throw error(node, problem) }
        return policy
    }

    /// `1%`, `0.5%`: a fraction (0.01, 0.005).
    func percentage(_ node: Node, what: String) throws(ReleaseSpecError) -> Double {
        let text = try nonEmptyString(node, what: what)
        guard text.hasSuffix("%"), let value = Double(text.dropLast()), value >= 0, value <= 100 else {
            throw error(node, "\(what) must be a percentage from 0% to 100% such as 1% or 0.5%, not '\(text)'")
        }
        return value / 100
    }

    func flag(_ node: Node, what: String) throws(ReleaseSpecError) -> Bool {
        let text = try string(node, what: what)
        guard let value = Bool(text) else { throw error(node, "\(what) must be true or false, not '\(text)'") }
        return value
    }

    /// `512Mi`, `2Gi`, `100M` or a plain number of bytes.
    func byteSize(_ node: Node, what: String) throws(ReleaseSpecError) -> Int64 {
        let text = try nonEmptyString(node, what: what)
        let units: [(String, Int64)] = [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("K", 1000), ("M", 1_000_000), ("G", 1_000_000_000), ("", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            if let number = Int64(text.dropLast(suffix.count)), number > 0, number <= Int64.max / factor { return number * factor }
        }
        throw error(node, "\(what) must be a size such as 512Mi, 2Gi or 100M, not '\(text)'")
    }
}
