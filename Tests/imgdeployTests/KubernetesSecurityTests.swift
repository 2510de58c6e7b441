import CommandLineTesting
import Foundation
import Testing
import Yams
import TestScheduling

/// The rules of the Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
/// Baseline then Restricted, each checked as the documentation lists it: the fields it restricts and the
/// values it allows. `violations(of:)` names every rule a Pod template breaks.
enum PodSecurityStandard {
    /// Capabilities the Baseline profile lets a container add (the container runtime's default set).
    static let baselineCapabilities: Set<String> = ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                                    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]
    /// The volume types the Restricted profile allows.
    static let restrictedVolumeTypes: Set<String> = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                                     "persistentVolumeClaim", "projected", "secret"]
    /// The sysctls the Baseline profile allows.
    static let safeSysctls: Set<String> = ["kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                                           "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                                           "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                                           "net.ipv4.tcp_keepalive_probes"]

    /// Every rule `pod` (a Pod spec with its metadata) breaks, as "Rule: what".
    static func violations(podSpec pod: [String: Any], metadata: [String: Any]) -> [String] {
        var found: [String] = []
        func fail(_ rule: String, _ what: String) { found.append("\(rule): \(what)") }
        let podContext = pod["securityContext"] as? [String: Any] ?? [:]
        let containers = ((pod["containers"] as? [[String: Any]]) ?? []) + ((pod["initContainers"] as? [[String: Any]]) ?? [])
            + ((pod["ephemeralContainers"] as? [[String: Any]]) ?? [])
        let contexts = containers.map { $0["securityContext"] as? [String: Any] ?? [:] }
        func isFalseOrUnset(_ value: Any?) -> Bool { value == nil || (value as? Bool) == false }

        // Baseline.
        for context in [podContext] + contexts where !isFalseOrUnset((context["windowsOptions"] as? [String: Any])?["hostProcess"]) {
            fail("HostProcess", "windowsOptions.hostProcess is set")
        }
        for field in ["hostNetwork", "hostPID", "hostIPC"] where !isFalseOrUnset(pod[field]) { fail("Host Namespaces", "\(field) is set") }
        for context in contexts where !isFalseOrUnset(context["privileged"]) { fail("Privileged Containers", "privileged is set") }
        for context in contexts {
            let added = (context["capabilities"] as? [String: Any])?["add"] as? [String] ?? []
            for name in added where !baselineCapabilities.contains(name) { fail("Capabilities (Baseline)", "adds \(name)") }
        }
        let volumes = pod["volumes"] as? [[String: Any]] ?? []
        for volume in volumes where volume["hostPath"] != nil { fail("HostPath Volumes", "volume \(volume["name"] ?? "?") is a hostPath") }
        for container in containers {
            for port in container["ports"] as? [[String: Any]] ?? [] where (port["hostPort"] as? Int ?? 0) != 0 {
                fail("Host Ports", "hostPort \(port["hostPort"]!)")
            }
        }
        for context in [podContext] + contexts {
            if let type = (context["appArmorProfile"] as? [String: Any])?["type"] as? String, !["RuntimeDefault", "Localhost"].contains(type) {
                fail("AppArmor", "appArmorProfile \(type)")
            }
        }
        let annotations = metadata["annotations"] as? [String: String] ?? [:]
        for (key, value) in annotations where key.hasPrefix("container.apparmor.security.beta.kubernetes.io/") && value != "runtime/default" && !value.hasPrefix("localhost/") {
            fail("AppArmor", "annotation \(key): \(value)")
        }
        for context in [podContext] + contexts {
            guard let options = context["seLinuxOptions"] as? [String: Any] else { continue }
            if let type = options["type"] as? String, !["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"].contains(type) {
                fail("SELinux", "type \(type)")
            }
            if options["user"] != nil || options["role"] != nil { fail("SELinux", "user or role is set") }
        }
        for context in contexts where context["procMount"] != nil && context["procMount"] as? String != "Default" { fail("/proc Mount Type", "procMount is not Default") }
        for sysctl in podContext["sysctls"] as? [[String: Any]] ?? [] where !safeSysctls.contains(sysctl["name"] as? String ?? "") {
            fail("Sysctls", "\(sysctl["name"] ?? "?")")
        }

        // Restricted.
        for volume in volumes {
            let types = Set(volume.keys).subtracting(["name"])
            if types.count != 1 || !types.isSubset(of: restrictedVolumeTypes) { fail("Volume Types", "volume \(volume["name"] ?? "?") is \(types.sorted())") }
        }
        for context in contexts where context["allowPrivilegeEscalation"] as? Bool != false {
            fail("Privilege Escalation", "allowPrivilegeEscalation is not false")
        }
        let podNonRoot = podContext["runAsNonRoot"] as? Bool
        if podNonRoot == false { fail("Running as Non-root", "the Pod sets runAsNonRoot: false") }
        for context in contexts {
            let value = context["runAsNonRoot"] as? Bool
            if value == false || (value == nil && podNonRoot != true) { fail("Running as Non-root", "a container may run as root") }
        }
        for context in [podContext] + contexts where context["runAsUser"] != nil && context["runAsUser"] as? Int == 0 {
            fail("Running as Non-root user", "runAsUser is 0")
        }
        for context in [podContext] + contexts {
            if let group = context["runAsGroup"], group as? Int == 0 { fail("Non-root groups", "runAsGroup is 0") }
            if let group = context["fsGroup"], group as? Int == 0 { fail("Non-root groups", "fsGroup is 0") }
            if let groups = context["supplementalGroups"] as? [Int], groups.contains(0) { fail("Non-root groups", "supplementalGroups holds 0") }
        }
        let allowedSeccomp: Set<String> = ["RuntimeDefault", "Localhost"]
        let podSeccomp = (podContext["seccompProfile"] as? [String: Any])?["type"] as? String
        if let podSeccomp, !allowedSeccomp.contains(podSeccomp) { fail("Seccomp", "the Pod's profile is \(podSeccomp)") }
        for context in contexts {
            let type = (context["seccompProfile"] as? [String: Any])?["type"] as? String
            if let type, !allowedSeccomp.contains(type) { fail("Seccomp", "a container's profile is \(type)") }
            if type == nil && podSeccomp == nil { fail("Seccomp", "a container has no seccomp profile") }
        }
        for context in contexts {
            let capabilities = context["capabilities"] as? [String: Any] ?? [:]
            if !((capabilities["drop"] as? [String]) ?? []).contains("ALL") { fail("Capabilities", "drop does not hold ALL") }
            for name in capabilities["add"] as? [String] ?? [] where name != "NET_BIND_SERVICE" { fail("Capabilities", "adds \(name)") }
        }
        return found
    }
}

/// One rendered release: its documents, and the Deployment's Pod template picked out.
struct RenderedManifests {
    let text: String
    let documents: [[String: Any]]

    init(path: String) throws {
        text = try String(contentsOfFile: path, encoding: .utf8)
        documents = try Yams.load_all(yaml: text).map { $0 as! [String: Any] }
    }

    var deployment: [String: Any] { documents.first { $0["kind"] as? String == "Deployment" }! }
    var template: [String: Any] { (deployment["spec"] as! [String: Any])["template"] as! [String: Any] }
    var podSpec: [String: Any] { template["spec"] as! [String: Any] }
    var podMetadata: [String: Any] { template["metadata"] as? [String: Any] ?? [:] }
    var container: [String: Any] { (podSpec["containers"] as! [[String: Any]])[0] }
    var containerContext: [String: Any] { container["securityContext"] as! [String: Any] }
    /// mountPath → the volume mounted there.
    var mounts: [String: [String: Any]] {
        let volumes = Dictionary(uniqueKeysWithValues: (podSpec["volumes"] as? [[String: Any]] ?? []).map { ($0["name"] as! String, $0) })
        var result: [String: [String: Any]] = [:]
        for mount in container["volumeMounts"] as? [[String: Any]] ?? [] {
            result[mount["mountPath"] as! String] = volumes[mount["name"] as! String] ?? [:]
        }
        return result
    }
    var violations: [String] { PodSecurityStandard.violations(podSpec: podSpec, metadata: podMetadata) }
}

/// A small image built into a store of its own, with the user and volumes a test needs.
struct SecurityTestImage {
    let store: String
    let digest: String

    init(user: String?, volumes: [String] = []) throws {
        let context = makeTemporaryDirectory("k8s-image")
        write("hello\n", to: context + "/app/hello.txt")
        var config = "  entrypoint: [\"/app/hello\"]\n"
        if let user { config += "  user: \"\(user)\"\n" }
        if !volumes.isEmpty { config += "  volumes: [\(volumes.map { "\"\($0)\"" }.joined(separator: ", "))]\n" }
        write("name: hello\nversion: 1.0.0\nplatform: linux/amd64\ncode:\n  - copy: app/\n    to: /app/\nconfig:\n" + config, to: context + "/Imagefile")
        store = makeTemporaryDirectory("k8s-store") + "/store"
        let build = try imgbuild(["build", context, "--store", store])
        guard build.status == 0, build.lastLine.hasPrefix("sha256:") else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "build failed: \(build.stderr)"])
        }
        digest = build.lastLine
    }

    /// A release spec of this image, fetched from its store.
    func spec(strategy: String = "rolling", extra: String = "") -> String {
        KubernetesSecurityTests.spec(image: "hello@" + digest, source: store, strategy: strategy, extra: extra)
    }
}

@Suite("imgdeploy render --kubernetes meets the restricted Pod Security Standard", .mayBlock)
struct KubernetesSecurityTests {
    static func spec(image: String, source: String, strategy: String = "rolling", extra: String = "") -> String {
        let path = makeTemporaryDirectory("k8s-spec") + "/release.yaml"
        write("service: hello\nimage: \(image)\nsource: \(source)\nreplicas: 2\nport: 8080\nlisten: 127.0.0.1:9000\nstrategy: \(strategy)\n"
              + "health: { path: /healthz }\n" + extra, to: path)
        return path
    }

    /// Renders `spec` for registry.example:5000; nil output when refused.
    static func render(_ spec: String, slot: String? = nil) throws -> (result: ProcessResult, manifests: RenderedManifests?) {
        let output = makeTemporaryDirectory("k8s-out") + "/manifests.yaml"
        let result = try run(imgdeployBinary, ["render", "--kubernetes", spec, "--registry", "registry.example:5000", "-o", output]
                             + (slot.map { ["--slot", $0] } ?? []))
        let written = FileManager.default.fileExists(atPath: output)
        return (result, result.status == 0 && written ? try RenderedManifests(path: output) : nil)
    }

    static func validate(_ manifests: RenderedManifests) throws -> ProcessResult {
        let path = makeTemporaryDirectory("k8s-validate") + "/manifests.yaml"
        write(manifests.text, to: path)
        return try run(KubernetesRenderTests.validator, ["--strict", path])
    }

    @Test("each rule of the restricted profile holds, the root is read-only, each declared volume and /tmp is an emptyDir", arguments: [
        ("rolling", nil as String?), ("blue-green", "green"),
    ])
    func restrictedRuleByRule(strategy: String, slot: String?) throws {
        let image = try SecurityTestImage(user: "1000:2000", volumes: ["/var/cache/hello", "/data"])
        let (result, rendered) = try Self.render(image.spec(strategy: strategy), slot: slot)
        #expect(result.status == 0 && !result.stderr.contains("warning"), "\(result.stderr)")
        let manifests = try #require(rendered)
        #expect(manifests.violations == [], "restricted profile violations")

        // The same rules, each stated with the values the rendering chose.
        let pod = manifests.podSpec, context = manifests.containerContext
        let podContext = try #require(pod["securityContext"] as? [String: Any])
        for field in ["hostNetwork", "hostPID", "hostIPC"] { #expect(pod[field] == nil, "\(field)") }
        #expect(context["privileged"] as? Bool == false)
        #expect(context["allowPrivilegeEscalation"] as? Bool == false)
        #expect(podContext["runAsNonRoot"] as? Bool == true && context["runAsNonRoot"] as? Bool == true)
        #expect(context["runAsUser"] as? Int == 1000 && context["runAsGroup"] as? Int == 2000, "the image's own numeric user and group")
        #expect((podContext["seccompProfile"] as? [String: String]) == ["type": "RuntimeDefault"])
        #expect((context["seccompProfile"] as? [String: String]) == ["type": "RuntimeDefault"])
        let capabilities = try #require(context["capabilities"] as? [String: Any])
        #expect(capabilities["drop"] as? [String] == ["ALL"] && capabilities["add"] == nil, "nothing added back unless the spec asks")
        #expect(context["readOnlyRootFilesystem"] as? Bool == true)
        #expect(((manifests.container["ports"] as? [[String: Any]]) ?? []).allSatisfy { $0["hostPort"] == nil })

        // One emptyDir per declared volume, and /tmp; nothing else is mounted.
        let mounts = manifests.mounts
        #expect(Set(mounts.keys) == ["/tmp", "/data", "/var/cache/hello"], "\(mounts.keys.sorted())")
        for (path, volume) in mounts { #expect(Set(volume.keys) == ["name", "emptyDir"], "\(path) is an emptyDir: \(volume)") }
        #expect((pod["volumes"] as? [[String: Any]])?.count == 3)

        // Still a valid manifest for the API server, and still pinned by digest.
        #expect(manifests.text.contains("image: registry.example:5000/hello@\(image.digest)"))
        let validation = try Self.validate(manifests)
        #expect(validation.status == 0, "\(validation.stdout)\(validation.stderr)")
        #expect(validation.stdout.contains("passed for resource deployment/hello"), "\(validation.stdout)")
    }

    @Test("the rule checker is real: a Pod that breaks each rule is caught by that rule")
    func checkerCatchesEachRule() throws {
        let image = try SecurityTestImage(user: "1000:1000")
        let manifests = try #require(try Self.render(image.spec()).manifests)
        #expect(manifests.violations == [])
        var pod = manifests.podSpec
        var container = manifests.container
        var context = manifests.containerContext
        context["allowPrivilegeEscalation"] = true
        context["privileged"] = true
        context["runAsNonRoot"] = false
        context["runAsUser"] = 0
        context["runAsGroup"] = 0
        context["seccompProfile"] = ["type": "Unconfined"]
        context["capabilities"] = ["add": ["SYS_ADMIN"]]
        context["procMount"] = "Unmasked"
        context["seLinuxOptions"] = ["type": "spc_t"]
        context["appArmorProfile"] = ["type": "Unconfined"]
        context["windowsOptions"] = ["hostProcess": true]
        container["securityContext"] = context
        container["ports"] = [["containerPort": 8080, "hostPort": 80]]
        pod["containers"] = [container]
        pod["hostNetwork"] = true
        var podContext = pod["securityContext"] as? [String: Any] ?? [:]
        podContext["sysctls"] = [["name": "kernel.msgmax", "value": "1"]]
        pod["securityContext"] = podContext
        pod["volumes"] = [["name": "host", "hostPath": ["path": "/"]], ["name": "nfs", "nfs": ["server": "x", "path": "/"]]]
        let broken = Set(PodSecurityStandard.violations(podSpec: pod, metadata: [:]).map { String($0.prefix { $0 != ":" }) })
        for rule in ["HostProcess", "Host Namespaces", "Privileged Containers", "AppArmor", "Sysctls", "Capabilities (Baseline)", "HostPath Volumes", "Host Ports", "SELinux",
                     "/proc Mount Type", "Volume Types", "Privilege Escalation", "Running as Non-root", "Running as Non-root user",
                     "Non-root groups", "Seccomp", "Capabilities"] {
            #expect(broken.contains(rule), "\(rule) is not caught")
        }
    }

    @Test("an image that runs as root is refused, and the message says to set a non-root user in the Imagefile",
          arguments: [nil, "0", "root", "0:0", "0:1000"] as [String?])
    func rootImageRefused(user: String?) throws {
        let image = try SecurityTestImage(user: user)
        let (result, manifests) = try Self.render(image.spec())
        #expect(result.status != 0 && manifests == nil)
        #expect(result.stderr.contains("runs as root") && result.stderr.contains("non-root") && result.stderr.contains("Imagefile")
                && result.stderr.contains("user: \"1000:1000\""), "\(result.stderr)")
    }

    @Test("a user given by name, a root group, or a number the Kubernetes API refuses is refused, saying which", arguments: [
        ("hello", "a name"), ("1000:hello", "a name"), ("hello:1000", "a name"), ("1000:0", "root's group"),
        ("2147483648:1000", "not a valid uid[:gid]"), ("1000:4294967294", "not a valid uid[:gid]"), ("-1:1000", "not a valid uid[:gid]"),
        ("1000:", "not a valid uid[:gid]"), (" 1000:1000", "not a valid uid[:gid]"), ("1000:1000:1", "not a valid uid[:gid]"),
    ])
    func namedUserOrRootGroupRefused(user: String, message: String) throws {
        let image = try SecurityTestImage(user: user)
        let (result, manifests) = try Self.render(image.spec())
        #expect(result.status != 0 && manifests == nil)
        #expect(result.stderr.contains(message) && result.stderr.contains("'\(user)'") && result.stderr.contains("Imagefile"), "\(result.stderr)")
    }

    @Test("a numeric user without a group is refused: the runtime would pick the group, root's if /etc/passwd lacks the user")
    func userWithoutGroup() throws {
        let image = try SecurityTestImage(user: "65534")
        let (result, manifests) = try Self.render(image.spec())
        #expect(result.status != 0 && manifests == nil)
        #expect(result.stderr.contains("with no group") && result.stderr.contains("Add ':GID'"), "\(result.stderr)")
    }

    @Test("volumes the runtime owns, or too many of them, are refused with why", arguments: [
        (["/proc/data"], "belong to the container runtime"), (["/dev"], "belong to the container runtime"),
        ((0...256).map { "/v\($0)" }, "at most 256"),
    ])
    func refusedVolumes(volumes: [String], message: String) throws {
        let image = try SecurityTestImage(user: "1000:1000", volumes: volumes)
        let (result, manifests) = try Self.render(image.spec())
        #expect(result.status != 0 && manifests == nil && result.stderr.contains(message), "\(result.stderr)")
    }

    @Test("a user with control characters is shown escaped in the error, never written raw to the terminal")
    func controlCharactersEscaped() throws {
        // Written with YAML's escapes: ESC ] 0 ; owned BEL 1000, a terminal title change.
        let image = try SecurityTestImage(user: "\\e]0;owned\\a1000")
        let (result, _) = try Self.render(image.spec())
        #expect(result.status != 0)
        #expect(!result.stderr.contains("\u{1B}") && result.stderr.contains("\\u{1b}]0;owned\\u{7}1000"), "\(result.stderr)")
    }

    @Test("capabilities: NET_BIND_SERVICE is added back after dropping ALL; any other is refused by name")
    func capabilities() throws {
        let image = try SecurityTestImage(user: "1000:1000")
        let allowed = try #require(try Self.render(image.spec(extra: "capabilities: [CAP_NET_BIND_SERVICE]\n")).manifests)
        let capabilities = try #require(allowed.containerContext["capabilities"] as? [String: Any])
        #expect(capabilities["drop"] as? [String] == ["ALL"] && capabilities["add"] as? [String] == ["NET_BIND_SERVICE"])
        #expect(allowed.violations == [])
        #expect(try Self.validate(allowed).status == 0)

        let refused = try Self.render(image.spec(extra: "capabilities: [NET_BIND_SERVICE, SYS_ADMIN, NET_RAW]\n"))
        #expect(refused.result.status != 0 && refused.manifests == nil)
        #expect(refused.result.stderr.contains("NET_RAW, SYS_ADMIN") && refused.result.stderr.contains("restricted Pod Security Standard")
                && refused.result.stderr.contains("other than NET_BIND_SERVICE") && refused.result.stderr.contains("'capabilities'"),
                "the capabilities named, in number order, and the rule: \(refused.result.stderr)")
    }

    @Test("writableRoot: true keeps the root writable and every rule of the profile")
    func writableRoot() throws {
        let image = try SecurityTestImage(user: "1000:1000", volumes: ["/data"])
        let manifests = try #require(try Self.render(image.spec(extra: "writableRoot: true\n")).manifests)
        #expect(manifests.containerContext["readOnlyRootFilesystem"] as? Bool == false)
        #expect(manifests.violations == [])
        #expect(Set(manifests.mounts.keys) == ["/tmp", "/data"])
        #expect(try Self.validate(manifests).status == 0)
    }

    @Test("the output is the same bytes every time")
    func deterministic() throws {
        let image = try SecurityTestImage(user: "1000:1000", volumes: ["/z", "/a/b", "/m", "/a"])
        let spec = image.spec(extra: "capabilities: [NET_BIND_SERVICE]\n")
        let first = try #require(try Self.render(spec).manifests)
        for _ in 0..<3 { #expect(try Self.render(spec).manifests?.text == first.text) }
        let mounts = (first.container["volumeMounts"] as? [[String: Any]] ?? []).map { $0["mountPath"] as? String ?? "" }
        #expect(mounts == ["/a", "/a/b", "/m", "/tmp", "/z"], "sorted by path")
    }

    @Test("a registry that cannot be reached: rendered with a warning, still restricted, only /tmp writable; a missing local store is an error")
    func unreadableSource() throws {
        // A registry nobody answers for (a closed port on loopback): the one case that renders with a warning.
        let spec = Self.spec(image: "hello@sha256:" + String(repeating: "5e", count: 32), source: "http://127.0.0.1:\(freePort())")
        let (result, rendered) = try Self.render(spec)
        #expect(result.status == 0 && result.stderr.contains("warning") && result.stderr.contains("cannot read the config"), "\(result.stderr)")
        let manifests = try #require(rendered)
        #expect(manifests.violations == [])
        #expect(manifests.containerContext["runAsUser"] == nil && manifests.containerContext["runAsNonRoot"] as? Bool == true,
                "the kubelet checks the image's user")
        #expect(Set(manifests.mounts.keys) == ["/tmp"])
        #expect(try Self.validate(manifests).status == 0)

        let missingStore = Self.spec(image: "hello@sha256:" + String(repeating: "5e", count: 32), source: makeTemporaryDirectory("no-store") + "/missing")
        let refused = try Self.render(missingStore)
        #expect(refused.result.status != 0 && refused.manifests == nil && refused.result.stderr.contains("is not an imgbuild store"), "\(refused.result.stderr)")
        #expect(!refused.result.stderr.contains("--store"), "imgdeploy has no --store flag to suggest: \(refused.result.stderr)")
    }

    @Test("a config that does not match its digest is refused, not rendered around")
    func tamperedConfig() throws {
        let image = try SecurityTestImage(user: "1000:1000")
        let manifest = try readJSON(store: image.store, digest: image.digest)
        let config = try #require((manifest["config"] as? [String: Any])?["digest"] as? String)
        let path = image.store + "/blobs/sha256/" + config.dropFirst(7)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let user = try #require(bytes.firstRange(of: Data("1000:1000".utf8)))
        bytes.replaceSubrange(user, with: Data("0000:0000".utf8))
        chmod(path, 0o644)
        try bytes.write(to: URL(fileURLWithPath: path))
        let (result, manifests) = try Self.render(image.spec())
        #expect(result.status != 0 && manifests == nil)
        #expect(result.stderr.contains(String(config)) && result.stderr.contains("hash"), "\(result.stderr)")
    }
}

@Suite("release spec: capabilities and writableRoot", .mayBlock)
struct ReleaseSpecSecurityFieldTests {
    /// The capability names in the kernel's own header, in the order of their numbers.
    static let kernelCapabilities: [String] = {
        guard let header = try? String(contentsOfFile: "/usr/include/linux/capability.h", encoding: .utf8) else { return [] }
        var numbered: [(Int, String)] = []
        for line in header.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count == 3, words[0] == "#define", words[1].hasPrefix("CAP_"), let number = Int(words[2]) else { continue }
            if words[1] == "CAP_LAST_CAP" { continue }
            numbered.append((number, String(words[1].dropFirst(4))))
        }
        return numbered.sorted { $0.0 < $1.0 }.map(\.1)
    }()

    static let allNames = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
                           "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
                           "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
                           "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
                           "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
                           "CHECKPOINT_RESTORE"]

    func specPath(_ extra: String) -> String {
        let spec = makeTemporaryDirectory("spec") + "/release.yaml"
        write("service: hello\nimage: hello@sha256:\(String(repeating: "a", count: 64))\nsource: http://127.0.0.1:1\nport: 8080\nlisten: 127.0.0.1:9000\n" + extra, to: spec)
        return spec
    }

    @Test("mistakes in the new fields are reported at their place", arguments: [
        ("capabilities: [NET_BIND_SERVICE, SYS_TIMEZ]\n", "6:34", "'SYS_TIMEZ' is not a Linux capability; 'capabilities' may name CHOWN, DAC_OVERRIDE,"),
        ("capabilities: [net_admin]\n", "6:16", "(capability names are written in capitals: NET_ADMIN)"),
        ("capabilities:\n  - CAP_CHOWN\n  - CHOWN\n", "8:5", "'capabilities' names CHOWN twice"),
        ("capabilities: NET_ADMIN\n", "6:15", "'capabilities' must be a list"),
        ("writableRoot: maybe\n", "6:15", "'writableRoot' must be true or false, not 'maybe'"),
    ])
    func mistakes(extra: String, place: String, message: String) throws {
        let result = try run(imgdeployBinary, ["apply", specPath(extra), "--state", makeTemporaryDirectory("no-daemon")])
        #expect(result.status != 0 && result.stderr.contains("release.yaml:\(place):") && result.stderr.contains(message), "\(result.stderr)")
    }

    @Test("every Linux capability is accepted, with or without CAP_, and kept in the order of its number")
    func everyCapability() throws {
        if !Self.kernelCapabilities.isEmpty { #expect(Self.kernelCapabilities == Self.allNames, "the kernel header's list") }
        // Written in reverse, half with the prefix: parsed, and refused only by the Kubernetes rule, which
        // lists the capabilities it refuses as the spec holds them.
        let written = Self.allNames.reversed().enumerated().map { $0.offset % 2 == 0 ? "CAP_" + $0.element : $0.element }
        let spec = specPath("capabilities: [\(written.joined(separator: ", "))]\n")
        let output = makeTemporaryDirectory("k8s-out") + "/manifests.yaml"
        let result = try run(imgdeployBinary, ["render", "--kubernetes", spec, "--registry", "registry.example:5000", "-o", output])
        #expect(result.status != 0 && !result.stderr.contains("release.yaml:"), "not a spec error: \(result.stderr)")
        let refused = Self.allNames.filter { $0 != "NET_BIND_SERVICE" }.joined(separator: ", ")
        #expect(result.stderr.contains("keep \(refused), but"), "\(result.stderr)")
    }

    @Test("writableRoot and capabilities are optional: a spec without them renders a read-only root and no capability")
    func defaults() throws {
        let output = makeTemporaryDirectory("k8s-out") + "/manifests.yaml"
        let result = try run(imgdeployBinary, ["render", "--kubernetes", specPath(""), "--registry", "registry.example:5000", "-o", output])
        #expect(result.status == 0, "\(result.stderr)")
        let manifests = try RenderedManifests(path: output)
        #expect(manifests.containerContext["readOnlyRootFilesystem"] as? Bool == true)
        #expect((manifests.containerContext["capabilities"] as? [String: Any])?["add"] == nil)
        let accepted = try run(imgdeployBinary, ["render", "--kubernetes", specPath("writableRoot: true\ncapabilities: []\n"),
                                                 "--registry", "registry.example:5000", "-o", output])
        #expect(accepted.status == 0, "\(accepted.stderr)")
        #expect(try RenderedManifests(path: output).containerContext["readOnlyRootFilesystem"] as? Bool == false)
    }
}
