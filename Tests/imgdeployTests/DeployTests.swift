import CommandLineTesting
import Foundation
import Synchronization
import Testing
import TestScheduling

/// The `imgdeploy` executable beside `imgbuild`.
let imgdeployBinary: String = {
    URL(fileURLWithPath: imgbuildBinary).deletingLastPathComponent().appendingPathComponent("imgdeploy").path
}()

/// `imgdeploy up` on its own state folder. `stop()` takes every service down, then ends the daemon;
/// `terminate()` and `kill9()` end only the daemon (its fronts and instances keep serving).
final class DeployDaemon {
    let state: String
    let process: Process
    let binary: String

    init(state: String = makeTemporaryDirectory("deploy-state"), binary: String = imgdeployBinary, arguments: [String] = []) throws {
        self.state = state
        self.binary = binary
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["up", "--state", state] + arguments
        let log = state + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        // Until it answers: a socket file may be a killed daemon's, still there until this one replaces it.
        for _ in 0..<200 {
            if FileManager.default.fileExists(atPath: state + "/imgdeploy.sock"), (try? command(["status", "--json"]))?.status == 0 { break }
            usleep(50_000)
        }
    }

    @discardableResult
    func command(_ arguments: [String]) throws -> ProcessResult {
        try run(binary, arguments + ["--state", state])
    }

    /// The service's status as the daemon reports it.
    func status(_ service: String) throws -> [String: Any] {
        let result = try command(["status", service, "--json"])
        let list = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]]
        return list?.first ?? [:]
    }

    /// Takes every service down (fronts and instances), then ends the daemon.
    func stop() {
        guard process.isRunning else { return }
        _ = try? command(["down", "--all"])
        terminate()
    }

    /// SIGTERM: the daemon exits, its services keep serving.
    func terminate() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<600 where process.isRunning { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGKILL: the daemon dies at once, its services keep serving.
    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// The hello example under other versions, built into one store: `1.0.0` (the example), `2.0.0` (its page
/// says 2.0.0), `3.0.0` (no /healthz, so its health check fails), `6.0.0` (its /cgi-bin/work answers 500
/// one time in ten) and `7.0.0` (its /cgi-bin/work takes 200 ms more).
struct HelloVersions {
    let store: String
    var digests: [String: String] = [:]

    init() throws {
        store = makeTemporaryDirectory("deploy-store")
        // 4.0.0 is 1.0.0 run as root, for the confinement tests; 5.0.0 as 70000, beyond the instances' user namespace.
        for version in ["1.0.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0", "6.0.0", "7.0.0"] {
            let context = makeTemporaryDirectory("hello-\(version)")
            try FileManager.default.removeItem(atPath: context)
            try FileManager.default.copyItem(atPath: repositoryRoot + "/Imagefiles/hello", toPath: context)
            var imagefile = try String(contentsOfFile: context + "/Imagefile", encoding: .utf8)
            imagefile = imagefile.replacingOccurrences(of: "../../fixtures", with: repositoryRoot + "/fixtures")
                .replacingOccurrences(of: "1.0.0", with: version)
            write(imagefile, to: context + "/Imagefile")
            let page = try String(contentsOfFile: context + "/www/index.html", encoding: .utf8)
            write(page.replacingOccurrences(of: "1.0.0", with: version), to: context + "/www/index.html")
            // Handlers for the load tests: one that takes a second, one that counts an upload's bytes.
            try FileManager.default.createDirectory(atPath: context + "/www/cgi-bin", withIntermediateDirectories: true)
            write("#!/bin/busybox sh\n/bin/busybox sleep 1\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow \(version)\\n'\n",
                  to: context + "/www/cgi-bin/slow", mode: 0o755)
            write("#!/bin/busybox sh\nn=$(/bin/busybox head -c \"${CONTENT_LENGTH:-0}\" | /bin/busybox wc -c)\nprintf 'Content-Type: text/plain\\r\\n\\r\\nreceived %s\\n' \"$n\"\n",
                  to: context + "/www/cgi-bin/upload", mode: 0o755)
            // A handler for the canary tests: it names its version; 6.0.0's fails one time in ten, 7.0.0's is slow.
            let failing = version == "6.0.0" ? "if [ $((RANDOM % 10)) -eq 0 ]; then printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nwork \(version) failed\\n'; exit 0; fi\n" : ""
            let slow = version == "7.0.0" ? "/bin/busybox usleep 200000\n" : ""
            write("#!/bin/busybox sh\n\(failing)\(slow)printf 'Content-Type: text/plain\\r\\n\\r\\nwork \(version)\\n'\n",
                  to: context + "/www/cgi-bin/work", mode: 0o755)
            // What the instance may do, seen from inside: its credentials, and whether it can make a
            // namespace, mount, or reach the host loopback port named in the query.
            write(confinementProbe, to: context + "/www/cgi-bin/confinement", mode: 0o755)
            if version == "4.0.0" { imagefile = imagefile.replacingOccurrences(of: "\"65534:65534\"", with: "\"0:0\"") }
            if version == "5.0.0" { imagefile = imagefile.replacingOccurrences(of: "\"65534:65534\"", with: "\"70000:70000\"") }
            // A volume: under a read-only root, an empty folder the image's user can write to.
            imagefile = imagefile.replacingOccurrences(of: "  workdir: /srv/www\n", with: "  workdir: /srv/www\n  volumes: [/srv/data]\n")
            write(imagefile, to: context + "/Imagefile")
            if version == "3.0.0" {
                try FileManager.default.removeItem(atPath: context + "/www/healthz")
                // Its own tests would catch the missing file; this version exists to fail at deploy time.
                write(imagefile.replacingOccurrences(of: "    - { path: /srv/www/healthz, contains: \"^ok\" }\n", with: ""), to: context + "/Imagefile")
            }
            let build = try imgbuild(["build", context, "--store", store])
            guard build.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: build.stderr]) }
            digests[version] = build.lastLine
        }
    }

    /// A release spec for `version`.
    func spec(_ version: String, port: Int, strategy: String = "blue-green", replicas: Int = 2, runner: String = "runc",
              deadline: String = "15s", instancePort: Int = 8080, extra: String = "") -> String {
        let path = makeTemporaryDirectory("spec") + "/release.yaml"
        write("""
        service: hello
        image: hello@\(digests[version]!)
        source: \(store)
        replicas: \(replicas)
        port: \(instancePort)
        listen: 127.0.0.1:\(port)
        strategy: \(strategy)
        runner: \(runner)
        stopTimeout: 1s
        health: { path: /healthz, interval: 200ms, timeout: 1s, healthyAfter: 2, deadline: \(deadline) }
        \(extra)
        """, to: path)
        return path
    }
}

/// A CGI script that reports, one `name: value` per line, the instance's credentials, seccomp mode and
/// signals ignored or blocked from /proc/self/status, and whether `unshare -U`, a mount, writing to / and to /tmp, writing a kernel
/// setting (its own value back, so that a failing test changes nothing), and a connection to the host's
/// 127.0.0.1:$QUERY_STRING succeed.
let confinementProbe = """
    #!/bin/busybox sh
    printf 'Content-Type: text/plain\\r\\n\\r\\n'
    /bin/busybox grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|Seccomp|NoNewPrivs|SigIgn|SigBlk):' /proc/self/status
    if /bin/busybox unshare -U /bin/busybox true 2>/dev/null; then echo 'unshare: allowed'; else echo 'unshare: refused'; fi
    if /bin/busybox mount -t tmpfs none /tmp 2>/dev/null; then echo 'mount: allowed'; else echo 'mount: refused'; fi
    if echo x 2>/dev/null > /imgdeploy-probe; then echo 'root: writable'; else echo 'root: read-only'; fi
    if echo x 2>/dev/null > /tmp/imgdeploy-probe; then echo 'tmp: writable'; else echo 'tmp: read-only'; fi
    if echo x 2>/dev/null > /srv/data/imgdeploy-probe; then echo 'volume: writable'; else echo 'volume: read-only'; fi
    if /bin/busybox cat /proc/sys/kernel/core_uses_pid 2>/dev/null > /proc/sys/kernel/core_uses_pid; then echo 'sysctl: written'; else echo 'sysctl: refused'; fi
    if /bin/busybox cat /proc/sys/net/ipv4/ip_forward 2>/dev/null > /proc/sys/net/ipv4/ip_forward; then echo 'netsysctl: written'; else echo 'netsysctl: refused'; fi
    if /bin/busybox nc -w 2 127.0.0.1 "$QUERY_STRING" </dev/null >/dev/null 2>&1; then echo 'host: reached'; else echo 'host: unreachable'; fi

    """

/// `fixtures/load/http_load.py` against the front, until `finish()`.
final class LoadGenerator {
    let process = Process()
    let output = Pipe()
    let stopFile = makeTemporaryDirectory("load") + "/stop"

    init(port: Int, connections: Int = 4, path: String = "/", mode: String = "page", options: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [repositoryRoot + "/fixtures/load/http_load.py", "http://127.0.0.1:\(port)\(path)", "--connections", String(connections),
                             "--stop-file", stopFile, "--max-seconds", "300", "--mode", mode] + options
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(300_000)
    }

    /// Stops the load and returns its counts: requests, statuses, errors, versions.
    func finish() throws -> (requests: Int, statuses: [String: Int], errors: [String], versions: [String: Int]) {
        let object = try finishDocument()
        return (object["requests"] as? Int ?? 0, object["statuses"] as? [String: Int] ?? [:], object["errors"] as? [String] ?? [],
                object["versions"] as? [String: Int] ?? [:])
    }

    /// Stops the load and returns all it printed (with `--timeline`, every answer's time, version and status).
    func finishDocument() throws -> [String: Any] {
        write("", to: stopFile)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}

/// `wrk` with `fixtures/load/count_bodies.lua` against the front's page, until `finish()` (SIGINT).
final class WrkLoad {
    let process = Process()
    let output = Pipe()

    init(port: Int, connections: Int = 64) throws {
        // Through python, which unblocks every signal first: the test runner's threads block SIGINT and a
        // spawned child inherits that mask, so wrk would never hear the SIGINT that ends it.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv('/usr/bin/wrk', sys.argv[1:])",
                             "wrk", "-t2", "-c\(connections)", "-d300s", "--timeout", "10s", "-s", repositoryRoot + "/fixtures/load/count_bodies.lua",
                             "http://127.0.0.1:\(port)/"]
        process.standardOutput = output
        process.standardError = output
        try process.run()
        usleep(300_000)
    }

    /// Stops wrk; its requests, the responses that were not a whole 200 page, and its socket errors.
    func finish() -> (requests: Int, bad: Int, errors: Int, output: String) {
        kill(process.processIdentifier, SIGINT)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("WRK_RESULT") }) else { return (0, -1, -1, text) }
        var fields: [String: Int] = [:]
        for pair in line.split(separator: " ").dropFirst() {
            let parts = pair.split(separator: "=")
            if parts.count == 2 { fields[String(parts[0])] = Int(parts[1]) }
        }
        return (fields["requests"] ?? 0, fields["bad"] ?? -1, fields["errors"] ?? -1, text)
    }
}

/// A copy of imgdeploy and a state folder, so that a test can make the daemon's binary "newer" (a front running
/// an older executable is replaced when the daemon starts).
func copiedBinaryAndState() throws -> (binary: String, state: String) {
    let binary = makeTemporaryDirectory("imgdeploy-bin") + "/imgdeploy"
    try FileManager.default.copyItem(atPath: imgdeployBinary, toPath: binary)
    return (binary, makeTemporaryDirectory("deploy-state"))
}

/// Ends `daemon` (its fronts and instances keep serving), makes its binary newer, and starts it again: the
/// new daemon replaces the front by itself, without waiting for the old one.
func restartedWithNewerBinary(_ daemon: DeployDaemon, binary: String, state: String) throws -> DeployDaemon {
    daemon.terminate()
    try FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: binary)
    return try DeployDaemon(state: state, binary: binary)
}

/// Whether process `pid` runs (one that exited and waits to be reaped does not).
func isRunning(_ pid: Int) -> Bool {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return false }
    return !status.contains("State:\tZ")
}

func frontPage(_ port: Int) throws -> String {
    try run("/usr/bin/curl", ["-s", "--max-time", "5", "http://127.0.0.1:\(port)/"]).stdout
}

@Suite("imgdeploy", .mayBlock, .serialized, .enabled(if: getuid() == 0, "runc and overlay mounts need root, as CI has"))
struct DeployTests {
    static let versions = Result { try HelloVersions() }

    @Test("blue-green A → B under load: zero failed requests, answers switch from A's page to B's; rollback returns to A")
    func blueGreenAndRollback() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        let first = try daemon.command(["apply", hello.spec("1.0.0", port: port)])
        #expect(first.status == 0 && first.stdout.contains("Succeeded"), "\(first.stdout)\(first.stderr)")
        #expect(try frontPage(port).contains("hello 1.0.0"))

        let load = try LoadGenerator(port: port)
        let second = try daemon.command(["apply", hello.spec("2.0.0", port: port)])
        usleep(500_000)
        let during = try load.finish()
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        for state in ["Verifying", "Provisioning", "HealthChecking", "Shifting", "ScaleDownDelay", "Succeeded"] {
            #expect(second.stdout.contains(state), "the rollout went through \(state)")
        }
        #expect(during.errors.isEmpty, "failed requests: \(during.errors.prefix(5))")
        #expect(during.statuses.keys.sorted() == ["200"], "statuses: \(during.statuses)")
        #expect((during.versions["1.0.0"] ?? 0) > 0 && (during.versions["2.0.0"] ?? 0) > 0, "versions seen: \(during.versions)")
        for _ in 0..<10 { #expect(try frontPage(port).contains("hello 2.0.0")) }

        let rollbackLoad = try LoadGenerator(port: port)
        let rollback = try daemon.command(["rollback", "hello"])
        usleep(500_000)
        let afterRollback = try rollbackLoad.finish()
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        #expect(afterRollback.errors.isEmpty && afterRollback.statuses.keys.sorted() == ["200"], "\(afterRollback)")
        for _ in 0..<10 { #expect(try frontPage(port).contains("hello 1.0.0")) }
        let status = try daemon.status("hello")
        #expect((status["current"] as? String) == "hello@" + hello.digests["1.0.0"]!)

        let history = try daemon.command(["history", "hello", "--json"])
        let records = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(records.map { $0["image"] as? String } == ["1.0.0", "2.0.0", "1.0.0"].map { "hello@" + hello.digests[$0]! })
        #expect(records.map { $0["kind"] as? String } == ["deploy", "deploy", "rollback"])
        #expect(records.allSatisfy { ($0["state"] as? String) == "Succeeded" && $0["started"] != nil })

        daemon.stop()
        let left = try run("/usr/sbin/runc", ["--root", daemon.state + "/runc", "list", "--quiet"])
        #expect(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "`down --all` stops every instance: \(left.stdout)")
        #expect(try run("/usr/bin/curl", ["-s", "--max-time", "2", "http://127.0.0.1:\(port)/"]).status != 0, "and the front")
    }

    @Test("rolling A → B under load: zero failed requests, answers switch to B one instance at a time")
    func rolling() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port, strategy: "rolling", replicas: 3)]).status == 0)
        let load = try LoadGenerator(port: port)
        let result = try daemon.command(["apply", hello.spec("2.0.0", port: port, strategy: "rolling", replicas: 3)])
        usleep(500_000)
        let during = try load.finish()
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.components(separatedBy: "Shifting:").count - 1 == 3, "one shift per replica: \(result.stdout)")
        #expect(result.stdout.components(separatedBy: "ScaleDownDelay:").count - 1 == 3, "one old instance drained per step")
        #expect(during.errors.isEmpty && during.statuses.keys.sorted() == ["200"], "\(during)")
        #expect((during.versions["1.0.0"] ?? 0) > 0 && (during.versions["2.0.0"] ?? 0) > 0, "versions seen: \(during.versions)")
        for _ in 0..<10 { #expect(try frontPage(port).contains("hello 2.0.0")) }
        let status = try daemon.status("hello")
        let instances = status["instances"] as? [[String: Any]] ?? []
        #expect(instances.count == 3 && instances.allSatisfy { ($0["image"] as? String) == "hello@" + hello.digests["2.0.0"]! })
    }

    @Test("a version whose health check fails is aborted: traffic stays on the old version and status says why")
    func failingHealthCheck() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        for strategy in ["blue-green", "rolling"] {
            let load = try LoadGenerator(port: port, connections: 2)
            let broken = try daemon.command(["apply", hello.spec("3.0.0", port: port, strategy: strategy, deadline: "3s")])
            let during = try load.finish()
            #expect(broken.status != 0, "a failed rollout exits non-zero")
            #expect(broken.stdout.contains("Aborting") && broken.stdout.contains("Failed"))
            #expect(broken.stderr.contains("GET /healthz answered 404"), "\(broken.stderr)")
            #expect(during.errors.isEmpty && during.statuses.keys.sorted() == ["200"] && during.versions.keys.sorted() == ["1.0.0"], "\(during)")
            let status = try daemon.status("hello")
            #expect((status["current"] as? String) == "hello@" + hello.digests["1.0.0"]!)
            let last = status["lastRollout"] as? [String: Any] ?? [:]
            #expect(last["state"] as? String == "Failed")
            #expect((last["reason"] as? String ?? "").contains("not healthy within the 3s deadline"), "\(last)")
            let instances = status["instances"] as? [[String: Any]] ?? []
            #expect(instances.count == 2 && instances.allSatisfy { ($0["image"] as? String) == "hello@" + hello.digests["1.0.0"]! }, "the broken instances are gone")
            #expect(try frontPage(port).contains("hello 1.0.0"))
        }
        let text = try daemon.command(["status", "hello"])
        #expect(text.stdout.contains("why: ") && text.stdout.contains("404"), "\(text.stdout)")
    }

    @Test("a multi-platform image deploys by its index digest: the host's platform runs, the index digest is what status and history name")
    func multiPlatformByIndexDigest() throws {
        let store = makeTemporaryDirectory("multi-deploy") + "/store"
        let build = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello-multiarch", "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        let index = build.lastLine
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        let spec = makeTemporaryDirectory("multi-spec") + "/release.yaml"
        write("""
        service: hello
        image: hello-multiarch@\(index)
        source: \(store)
        replicas: 1
        port: 8080
        listen: 127.0.0.1:\(port)
        runner: runc
        stopTimeout: 1s
        health: { path: /healthz, interval: 200ms, timeout: 1s, healthyAfter: 2, deadline: 15s }
        verify: { requireSBOM: true }
        """, to: spec)
        // The SBOM asked for is that of the image that runs here, one platform's: none yet.
        let refused = try daemon.command(["apply", spec])
        #expect(refused.status != 0 && refused.stderr.contains("has no SBOM"), "\(refused.stderr)")
        #expect(try imgbuild(["sbom", "hello-multiarch:1.0.0", "--store", store]).status == 0)
        let apply = try daemon.command(["apply", spec])
        #expect(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
        #expect(try frontPage(port).contains("hello-multiarch 1.0.0"))
        let status = try daemon.status("hello")
        #expect("\(status)".contains(index), "\(status)")
    }

    @Test("an instance killed with SIGKILL is restarted, and the front keeps answering from the others")
    func killedInstanceRestarts() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        let before = try daemon.status("hello")["instances"] as? [[String: Any]] ?? []
        let victim = try #require(before.first)
        let pid = try #require(victim["pid"] as? Int)
        let load = try LoadGenerator(port: port)
        usleep(300_000)
        kill(Int32(pid), SIGKILL)
        var restarted = false
        for _ in 0..<100 {
            let now = try daemon.status("hello")["instances"] as? [[String: Any]] ?? []
            if let same = now.first(where: { $0["id"] as? String == victim["id"] as? String }),
               same["restarts"] as? Int == 1, same["serving"] as? Bool == true, let newPID = same["pid"] as? Int, newPID != pid {
                restarted = true
                break
            }
            usleep(200_000)
        }
        let during = try load.finish()
        #expect(restarted, "the killed instance is back, serving")
        #expect(during.requests > 0 && during.errors.isEmpty && during.statuses.keys.sorted() == ["200"], "\(during)")
    }

    @Test("the service serves while no daemon runs; a daemon started again adopts the same front and instances, restarting nothing")
    func readoptsAfterRestart() throws {
        let hello = try DeployTests.versions.get()
        let state = makeTemporaryDirectory("deploy-state")
        let port = freePort()
        let before: [String: Any]
        do {
            let daemon = try DeployDaemon(state: state)
            #expect(try daemon.command(["apply", hello.spec("2.0.0", port: port)]).status == 0)
            before = try daemon.status("hello")
            daemon.terminate()
        }
        #expect(try frontPage(port).contains("hello 2.0.0"), "the front serves with no daemon running")
        let again = try DeployDaemon(state: state)
        defer { again.stop() }
        var after: [String: Any] = [:]
        for _ in 0..<100 {
            after = try again.status("hello")
            if (after["lastRollout"] as? [String: Any])?["state"] as? String == "Succeeded" { break }
            usleep(100_000)
        }
        let last = after["lastRollout"] as? [String: Any] ?? [:]
        #expect(last["kind"] as? String == "readopt" && last["state"] as? String == "Succeeded", "\(last)")
        #expect(after["frontPID"] as? Int != nil && after["frontPID"] as? Int == before["frontPID"] as? Int, "the same front process")
        func pids(_ status: [String: Any]) -> [String: Int] {
            Dictionary(uniqueKeysWithValues: (status["instances"] as? [[String: Any]] ?? []).compactMap { instance in
                (instance["id"] as? String).flatMap { id in (instance["pid"] as? Int).map { (id, $0) } }
            })
        }
        #expect(pids(after).count == 2 && pids(after) == pids(before), "the same instances, not restarted: \(pids(before)) → \(pids(after))")
        #expect(try frontPage(port).contains("hello 2.0.0"))
    }

    @Test("a down cut short after it forgot the service (the daemon killed) leaves no front behind: the next daemon stops it")
    func orphanFrontStopped() throws {
        let hello = try DeployTests.versions.get()
        let state = makeTemporaryDirectory("deploy-state")
        let port = freePort()
        do {
            let daemon = try DeployDaemon(state: state)
            #expect(try daemon.command(["apply", hello.spec("2.0.0", port: port)]).status == 0)
            daemon.terminate()
        }
        // What a down leaves when its daemon dies just after forgetting the service.
        try FileManager.default.removeItem(atPath: state + "/services/hello/current.json")
        #expect(try frontPage(port).contains("hello 2.0.0"), "the front still serves")
        let again = try DeployDaemon(state: state)
        defer { again.stop() }
        var gone = false
        for _ in 0..<100 where !gone {
            gone = (try? frontPage(port))?.isEmpty ?? true
            if !gone { usleep(100_000) }
        }
        #expect(gone, "the orphan front no longer answers on \(port)")
        #expect(!FileManager.default.fileExists(atPath: state + "/fronts/hello.sock"))
    }

    @Test("zero failed or cut requests under wrk -c64, 1 s requests and 300 KB uploads through kill -9 of the daemon, its restart, a front upgrade, a daemon whose binary is newer, blue-green and rollback")
    func zeroDroppedThroughEverything() throws {
        let hello = try DeployTests.versions.get()
        let (binary, state) = try copiedBinaryAndState()
        var daemon = try DeployDaemon(state: state, binary: binary)
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        func front() throws -> Int { try daemon.status("hello")["frontPID"] as? Int ?? -1 }
        func settle() throws {
            for _ in 0..<150 {
                let last = try? daemon.status("hello")["lastRollout"] as? [String: Any]
                if last?["state"] as? String == "Succeeded", (try? daemon.status("hello")["rolloutRunning"] as? Bool) != true { return }
                usleep(100_000)
            }
        }

        let wrk = try WrkLoad(port: port)
        let slow = try LoadGenerator(port: port, connections: 4, path: "/cgi-bin/slow", mode: "slow")
        let uploads = try LoadGenerator(port: port, connections: 2, path: "/cgi-bin/upload", mode: "upload")
        // What happened when, for a failure's message (the load generators say when each error came).
        let loadStarted = Date()
        var phases: [String] = []
        func phase(_ what: String) { phases.append(String(format: "%.3f s ", Date().timeIntervalSince(loadStarted)) + what) }
        sleep(2)

        // kill -9 of the daemon, and a new one.
        phase("kill -9 of the daemon")
        daemon.kill9()
        sleep(1)
        daemon = try DeployDaemon(state: state, binary: binary)
        phase("daemon started again")
        try settle()
        // An upgrade of the front.
        let firstFront = try front()
        phase("upgrade-front")
        let upgrade = try daemon.command(["upgrade-front", "hello"])
        #expect(upgrade.status == 0 && upgrade.stdout.contains("replaced by pid"), "\(upgrade.stdout)\(upgrade.stderr)")
        let secondFront = try front()
        phase("upgrade-front done: \(firstFront) → \(secondFront)")
        #expect(secondFront != firstFront && secondFront > 0)
        // A newer binary: the daemon started again replaces the front by itself.
        daemon = try restartedWithNewerBinary(daemon, binary: binary, state: state)
        phase("daemon with a newer binary started")
        var thirdFront = secondFront
        for _ in 0..<100 where thirdFront == secondFront {
            usleep(100_000)
            thirdFront = (try? front()) ?? secondFront
        }
        #expect(thirdFront != secondFront && thirdFront > 0, "the front of the older binary was replaced")
        phase("front replaced: \(secondFront) → \(thirdFront)")
        try settle()
        // Blue-green to 2.0.0, and back.
        phase("blue-green to 2.0.0")
        let deploy = try daemon.command(["apply", hello.spec("2.0.0", port: port)])
        #expect(deploy.status == 0, "\(deploy.stdout)\(deploy.stderr)")
        phase("rollback")
        let rollback = try daemon.command(["rollback", "hello"])
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        phase("rollback done")
        sleep(1)

        let pages = wrk.finish()
        let slowRun = try slow.finish()
        let uploadRun = try uploads.finish()
        #expect(pages.requests > 1000 && pages.bad == 0 && pages.errors == 0, "wrk: \(pages.output)")
        let frontLog = (try? String(contentsOfFile: state + "/fronts/hello.log", encoding: .utf8)) ?? ""
        #expect(slowRun.requests > 10 && slowRun.errors.isEmpty && slowRun.statuses.keys.sorted() == ["200"],
                "slow: \(slowRun)\n\(phases.joined(separator: "\n"))\n\(frontLog)")
        #expect(uploadRun.requests > 10 && uploadRun.errors.isEmpty && uploadRun.statuses.keys.sorted() == ["200"],
                "uploads: \(uploadRun)\n\(phases.joined(separator: "\n"))\n\(frontLog)")
        #expect((slowRun.versions["2.0.0"] ?? 0) > 0, "the slow requests reached 2.0.0 too: \(slowRun.versions)")
        let counts = try daemon.status("hello")
        // The front logs why each request it counts as failed failed.
        let whyFailed = frontLog.split(separator: "\n").filter { $0.contains("failed request") }
        #expect(counts["failedRequests"] as? Int == 0 && whyFailed.isEmpty, "the front counted no failure: \(whyFailed) \(counts)")
        #expect(try frontPage(port).contains("hello 1.0.0"))
    }

    @Test("a front replaced while it relays an upload keeps the instance it relays to: a blue-green switch that follows waits for the old front to finish before stopping the old version")
    func replacedFrontKeepsItsInstances() throws {
        let hello = try DeployTests.versions.get()
        let (binary, state) = try copiedBinaryAndState()
        var daemon = try DeployDaemon(state: state, binary: binary)
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        func front() -> Int { (try? daemon.status("hello")["frontPID"] as? Int) ?? -1 }
        let firstFront = front()

        // An upload a third sent: it stays with the first front, relayed to an instance of 1.0.0.
        let upload = try RawConnection(port: port)
        let body = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 % 251) })
        #expect(upload.send("POST /cgi-bin/upload HTTP/1.1\r\nHost: hello\r\nContent-Length: \(body.count)\r\n\r\n"))
        #expect(upload.send(body.prefix(100_000)))
        usleep(300_000)

        // A daemon whose binary is newer replaces the front and does not wait for the old one.
        daemon = try restartedWithNewerBinary(daemon, binary: binary, state: state)
        var secondFront = firstFront
        for _ in 0..<100 where secondFront == firstFront || secondFront < 0 {
            usleep(100_000)
            secondFront = front()
        }
        #expect(secondFront != firstFront && secondFront > 0, "the front of the older binary was replaced")
        #expect(isRunning(firstFront), "the first front still finishes the upload")

        // Blue-green to 2.0.0, in the background: it ends by stopping 1.0.0's instances.
        let deploy = Mutex<(status: Int32, output: String)?>(nil)
        let spec = hello.spec("2.0.0", port: port)
        let deployer = Thread {
            let result = (try? run(binary, ["apply", spec, "--state", state])).map { ($0.status, $0.stdout + $0.stderr) }
            deploy.withLock { $0 = result }
        }
        deployer.start()
        var switched = false
        for _ in 0..<300 where !switched {
            switched = (try? frontPage(port))?.contains("hello 2.0.0") == true
            if !switched { usleep(100_000) }
        }
        #expect(switched, "the new front serves 2.0.0")
        // Time enough for the rollout to stop the old instances if it did not wait.
        sleep(2)
        #expect(deploy.withLock { $0 == nil }, "the rollout waits for the replaced front to finish")

        #expect(upload.send(body.dropFirst(100_000)))
        let answer = upload.readAnswer(untilClose: true)
        #expect(answer?.status == 200 && answer.map { String(decoding: $0.body, as: UTF8.self) } == "received 300000\n",
                "the upload went through whole: \(answer.map { "\($0.status) \(String(decoding: $0.body, as: UTF8.self))" } ?? "no answer")")
        #expect(answer?.headers["connection"]?.lowercased() == "close", "the replaced front closes the connection after it")
        for _ in 0..<300 where deploy.withLock({ $0 == nil }) { usleep(100_000) }
        let result = deploy.withLock { $0 }
        #expect(result?.status == 0, "\(result?.output ?? "")")
        #expect(!isRunning(firstFront), "the first front has exited")
        #expect(try frontPage(port).contains("hello 2.0.0"))
    }

    @Test("a rollout cut short by kill -9 of the daemon is aborted when it starts again: traffic stays on the old version, and history and status say so")
    func interruptedRolloutIsAborted() throws {
        let hello = try DeployTests.versions.get()
        let state = makeTemporaryDirectory("deploy-state")
        var daemon = try DeployDaemon(state: state)
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        let load = try LoadGenerator(port: port)
        // A slow health check keeps the new version in HealthChecking long enough to be cut short there.
        let slowSpec = hello.spec("2.0.0", port: port)
        let text = try String(contentsOfFile: slowSpec, encoding: .utf8).replacingOccurrences(of: "healthyAfter: 2", with: "healthyAfter: 30")
        write(text, to: slowSpec)
        let apply = Process()
        apply.executableURL = URL(fileURLWithPath: imgdeployBinary)
        apply.arguments = ["apply", slowSpec, "--state", state]
        apply.standardOutput = FileHandle.nullDevice
        apply.standardError = FileHandle.nullDevice
        try apply.run()
        var reached = false
        for _ in 0..<200 where !reached {
            usleep(50_000)
            reached = ((try? daemon.status("hello"))?["lastRollout"] as? [String: Any])?["state"] as? String == "HealthChecking"
        }
        #expect(reached, "the rollout reached HealthChecking")
        daemon.kill9()
        apply.waitUntilExit()
        daemon = try DeployDaemon(state: state)
        var status: [String: Any] = [:]
        for _ in 0..<300 {
            status = try daemon.status("hello")
            let last = status["lastRollout"] as? [String: Any]
            if last?["kind"] as? String == "readopt", last?["state"] as? String == "Succeeded", status["rolloutRunning"] as? Bool == false { break }
            usleep(100_000)
        }
        let during = try load.finish()
        #expect(during.errors.isEmpty && during.statuses.keys.sorted() == ["200"] && during.versions.keys.sorted() == ["1.0.0"], "\(during)")
        let last = status["lastRollout"] as? [String: Any] ?? [:]
        let notes = (last["transitions"] as? [[String: Any]] ?? []).compactMap { $0["note"] as? String }.joined(separator: " | ")
        #expect(last["kind"] as? String == "readopt" && notes.contains("was interrupted") && notes.contains("HealthChecking"), "\(last)")
        let instances = status["instances"] as? [[String: Any]] ?? []
        #expect(instances.count == 2 && instances.allSatisfy { ($0["image"] as? String) == "hello@" + hello.digests["1.0.0"]! }, "the new version's instances are gone: \(instances)")
        let containers = try run("/usr/sbin/runc", ["--root", state + "/runc", "list", "--quiet"]).stdout.split(separator: "\n")
        #expect(containers.count == 2, "only the old version's containers run: \(containers)")
        let history = try daemon.command(["history", "hello", "--json"])
        let records = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]] ?? []
        let cut = records.first { ($0["image"] as? String) == "hello@" + hello.digests["2.0.0"]! }
        #expect(cut?["state"] as? String == "Failed" && (cut?["reason"] as? String ?? "").contains("the daemon stopped while this rollout was HealthChecking"), "\(records)")
    }

    @Test("a front that is killed is started again by the daemon on the same socket: a request sent while no front runs waits and is answered, by the first daemon, by one that re-adopted the front, and after upgrade-front")
    func killedFrontRestarts() throws {
        let hello = try DeployTests.versions.get()
        var daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        for round in ["the daemon that started the front", "a daemon started again, which adopted it", "a front that took over by upgrade-front"] {
            if round.contains("upgrade-front") {
                let upgraded = try daemon.command(["upgrade-front", "hello"])
                #expect(upgraded.status == 0, "\(upgraded.stdout)\(upgraded.stderr)")
            }
            let pid = try #require(try daemon.status("hello")["frontPID"] as? Int)
            kill(Int32(pid), SIGKILL)
            // Gone, with every descriptor it held closed (it is a zombie at most).
            for _ in 0..<5000 where (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.isEmpty == false { usleep(1000) }
            // Sent before the daemon has noticed: the daemon's copy of the socket keeps it listening.
            let client = try RawConnection(port: port)
            client.send("GET / HTTP/1.1\r\nHost: hello\r\n\r\n")
            let answer = client.readAnswer()
            #expect(answer?.status == 200 && String(decoding: answer?.body ?? Data(), as: UTF8.self).contains("hello 1.0.0"),
                    "\(round): the request sent while no front ran was answered: \(String(describing: answer))")
            let now = try daemon.status("hello")["frontPID"] as? Int
            #expect(now != nil && now != pid, "\(round): a new front serves")
            daemon.kill9()
            daemon = try DeployDaemon(state: daemon.state)
            // Once it has adopted the front (and asked it for a copy of its socket).
            for _ in 0..<300 {
                let status = try daemon.status("hello")
                let last = status["lastRollout"] as? [String: Any]
                if last?["kind"] as? String == "readopt", last?["state"] as? String == "Succeeded", status["rolloutRunning"] as? Bool == false { break }
                usleep(100_000)
            }
            let adopted = try daemon.status("hello")["lastRollout"] as? [String: Any]
            #expect(adopted?["kind"] as? String == "readopt" && adopted?["state"] as? String == "Succeeded", "the daemon started again adopted the service: \(String(describing: adopted))")
        }
    }

    @Test("a front that dies just after it took over (upgrade-front) is started again on the kept socket while the front it replaced still drains: a request sent meanwhile is answered")
    func successorDiesAfterTakingOver() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        // A keep-alive connection that goes quiet keeps the replaced front draining, for its drain timeout (30 s).
        let quiet = try RawConnection(port: port)
        quiet.send("GET / HTTP/1.1\r\nHost: hello\r\n\r\n")
        #expect(quiet.readAnswer()?.status == 200)
        let oldPID = try #require(try daemon.status("hello")["frontPID"] as? Int)
        let upgrade = Process()
        upgrade.executableURL = URL(fileURLWithPath: daemon.binary)
        upgrade.arguments = ["upgrade-front", "hello", "--state", daemon.state]
        upgrade.standardOutput = FileHandle.nullDevice
        upgrade.standardError = FileHandle.nullDevice
        try upgrade.run()
        var newPID: Int?
        for _ in 0..<200 where newPID == nil {
            usleep(50_000)
            if let pid = try daemon.status("hello")["frontPID"] as? Int, pid != oldPID { newPID = pid }
        }
        let successor = try #require(newPID, "the new front took over")
        // Once the replaced front has been told to retire (before that, it would take the service back).
        let log = daemon.state + "/fronts/hello.log"
        var retiring = false
        for _ in 0..<200 where !retiring {
            retiring = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("[\(oldPID)] handed over")
            if !retiring { usleep(20_000) }
        }
        #expect(retiring, "the replaced front retires")
        kill(Int32(successor), SIGKILL)
        for _ in 0..<5000 where (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(successor)/fd"))?.isEmpty == false { usleep(1000) }
        let client = try RawConnection(port: port)
        client.send("GET / HTTP/1.1\r\nHost: hello\r\n\r\n")
        let answer = client.readAnswer()
        #expect(answer?.status == 200 && String(decoding: answer?.body ?? Data(), as: UTF8.self).contains("hello 1.0.0"), "\(String(describing: answer))")
        // Answered by a front started while the replaced one still drained, not after it had gone.
        #expect((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(oldPID)/fd"))?.isEmpty == false, "the replaced front still drains")
        let serving = try daemon.status("hello")["frontPID"] as? Int
        #expect(serving != nil && serving != oldPID && serving != successor, "a third front serves: \(String(describing: serving))")
        upgrade.waitUntilExit()
    }

    @Test("fronts killed one after another as they start are a crash loop: status says so, the port refuses connections during the backoff, and the next front serves")
    func frontCrashLoop() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        #expect(try daemon.command(["apply", hello.spec("1.0.0", port: port)]).status == 0)
        // Each front is killed as soon as it serves, until status says the daemon is in a crash loop and waits
        // more than 3 s before the next start (the fourth quick exit in a row waits 4 s): time enough to look.
        var killed: Set<Int> = []
        var looping: String?
        for _ in 0..<600 where looping == nil && killed.count < 10 {
            let text = try daemon.command(["status", "hello"]).stdout
            let wait = text.firstMatch(of: /next start in (\d+) s/).flatMap { Int($0.1) } ?? 0
            if text.contains("new connections are refused until one runs"), wait >= 4 {
                looping = text
            } else if let pid = text.firstMatch(of: /\(pid (\d+),/).flatMap({ Int($0.1) }), !killed.contains(pid) {
                kill(Int32(pid), SIGKILL)
                killed.insert(pid)
            } else {
                usleep(20_000)
            }
        }
        let text = try #require(looping, "status said the front was in a crash loop after \(killed.count) kills")
        #expect(connectLoopback(port) == nil, "during the backoff, connections are refused")
        #expect(text.contains("see \(daemon.state)/fronts/hello.log"), "\(text)")
        // After the backoff a front starts, and it is let be.
        var answer: RawConnection.Answer?
        for _ in 0..<300 where answer?.status != 200 {
            usleep(100_000)
            guard let client = try? RawConnection(port: port) else { continue }
            client.send("GET / HTTP/1.1\r\nHost: hello\r\n\r\n")
            answer = client.readAnswer()
        }
        #expect(answer?.status == 200 && String(decoding: answer?.body ?? Data(), as: UTF8.self).contains("hello 1.0.0"), "\(String(describing: answer))")
        let restarts = try daemon.status("hello")["frontRestarts"] as? [String: Any]
        #expect((restarts?["restarts"] as? Int ?? 0) >= 3, "\(String(describing: restarts))")
    }

    @Test("a verify policy deploys the signed image and refuses an unsigned one, one signed by another key, one without an SBOM or with another image's, one without passing tests, before anything starts")
    func verifyPolicy() throws {
        let hello = try DeployTests.versions.get()
        let keys = makeTemporaryDirectory("deploy-keys")
        for name in ["alice", "mallory"] { #expect(try imgbuild(["keygen", keys + "/" + name]).status == 0) }
        // A store of its own, so the signatures do not leak into the other tests' images.
        let store = makeTemporaryDirectory("policy-store")
        for version in ["1.0.0", "2.0.0", "3.0.0"] {
            #expect(try imgbuild(["copy", "hello@" + hello.digests[version]!, "oci:" + store + "-layout:" + version, "--store", hello.store]).status == 0)
            #expect(try imgbuild(["copy", "oci:" + store + "-layout:" + version, "hello:" + version, "--store", store]).status == 0)
        }
        #expect(try imgbuild(["sign", "hello:2.0.0", "--key", keys + "/alice.key", "--store", store]).status == 0)
        #expect(try imgbuild(["sign", "hello:3.0.0", "--key", keys + "/mallory.key", "--store", store]).status == 0)
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        func spec(_ version: String) -> String {
            let path = hello.spec(version, port: port, extra: "verify: { key: \(keys)/alice.pub }")
            let text = try! String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "source: \(hello.store)", with: "source: \(store)")
            write(text, to: path)
            return path
        }
        let signed = try daemon.command(["apply", spec("2.0.0")])
        #expect(signed.status == 0, "\(signed.stdout)\(signed.stderr)")
        #expect(try frontPage(port).contains("hello 2.0.0"))
        for (version, reason) in [("1.0.0", "has no signature"), ("3.0.0", "signed by another key")] {
            let refused = try daemon.command(["apply", spec(version)])
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("the deploy policy refuses hello@\(hello.digests[version]!)") && refused.stderr.contains(reason), "\(refused.stderr)")
            #expect(!refused.stdout.contains("Provisioning"), "nothing was started: \(refused.stdout)")
            #expect(try frontPage(port).contains("hello 2.0.0"))
        }
        let releases = try FileManager.default.contentsOfDirectory(atPath: daemon.state + "/releases")
        #expect(releases == ["sha256-" + hello.digests["2.0.0"]!.dropFirst(7)], "only the signed release was unpacked: \(releases)")

        // requireSBOM: refused without one, deployed with one, refused with one that describes another image.
        func sbomSpec(_ version: String) -> String {
            let path = spec(version)
            let text = try! String(contentsOfFile: path, encoding: .utf8)
                .replacingOccurrences(of: "verify: { key: \(keys)/alice.pub }", with: "verify: { key: \(keys)/alice.pub, requireSBOM: true }")
            write(text, to: path)
            return path
        }
        let noSBOM = try daemon.command(["apply", sbomSpec("2.0.0")])
        #expect(noSBOM.status != 0 && noSBOM.stderr.contains("has no SBOM"), "\(noSBOM.stderr)")
        #expect(try imgbuild(["sbom", "hello:2.0.0", "--store", store]).status == 0)
        let withSBOM = try daemon.command(["apply", sbomSpec("2.0.0")])
        #expect(withSBOM.status == 0, "\(withSBOM.stdout)\(withSBOM.stderr)")
        // 1.0.0, signed, with 2.0.0's SBOM listed among its referrers.
        #expect(try imgbuild(["sign", "hello:1.0.0", "--key", keys + "/alice.key", "--store", store]).status == 0)
        let from = store + "/repositories/hello/referrers/sha256-" + hello.digests["2.0.0"]!.dropFirst(7)
        let to = store + "/repositories/hello/referrers/sha256-" + hello.digests["1.0.0"]!.dropFirst(7)
        for record in try FileManager.default.contentsOfDirectory(atPath: from) where try String(contentsOfFile: from + "/" + record, encoding: .utf8).contains("spdx") {
            try FileManager.default.copyItem(atPath: from + "/" + record, toPath: to + "/" + record)
        }
        let misplaced = try daemon.command(["apply", sbomSpec("1.0.0")])
        #expect(misplaced.status != 0 && misplaced.stderr.contains("has no SBOM"), "an SBOM of another subject is not taken: \(misplaced.stderr)")
        // An artifact whose subject is 1.0.0 but whose document describes 2.0.0.
        for record in try FileManager.default.contentsOfDirectory(atPath: to) where try String(contentsOfFile: to + "/" + record, encoding: .utf8).contains("spdx") {
            let manifest = try String(contentsOfFile: store + "/blobs/sha256/" + record.dropFirst(7), encoding: .utf8)
            let resubjected = manifest.replacingOccurrences(of: hello.digests["2.0.0"]!, with: hello.digests["1.0.0"]!)
            let file = makeTemporaryDirectory("forged") + "/manifest.json"
            write(resubjected, to: file)
            let hex = String(try run("/usr/bin/sha256sum", [file]).stdout.prefix(64))
            try FileManager.default.copyItem(atPath: file, toPath: store + "/blobs/sha256/" + hex)
            try FileManager.default.removeItem(atPath: to + "/" + record)
            write("{\"artifactType\":\"application/spdx+json\",\"digest\":\"sha256:\(hex)\",\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":\(resubjected.utf8.count)}", to: to + "/sha256-" + hex)
        }
        let forged = try daemon.command(["apply", sbomSpec("1.0.0")])
        #expect(forged.status != 0 && forged.stderr.contains("describes another image"), "stderr: \(forged.stderr)")
        #expect(try frontPage(port).contains("hello 2.0.0"))

        // requireTests: the copy into this store left the test record behind; `imgbuild test` makes one.
        func testedSpec(_ version: String) -> String {
            let path = spec(version)
            let text = try! String(contentsOfFile: path, encoding: .utf8)
                .replacingOccurrences(of: "verify: { key: \(keys)/alice.pub }", with: "verify: { key: \(keys)/alice.pub, requireTests: true }")
            write(text, to: path)
            return path
        }
        let untested = try daemon.command(["apply", testedSpec("2.0.0")])
        #expect(untested.status != 0 && untested.stderr.contains("has no test results"), "\(untested.stderr)")
        #expect(try imgbuild(["test", "hello:2.0.0", "--store", store]).status == 0)
        let tested = try daemon.command(["apply", testedSpec("2.0.0")])
        #expect(tested.status == 0, "\(tested.stdout)\(tested.stderr)")
        // Status names what admitted each instance: the verified signature and the passing test record,
        // artifacts in the deployer's own store.
        let admitted = try daemon.status("hello")["instances"] as? [[String: Any]] ?? []
        #expect(admitted.count == 2)
        for instance in admitted {
            let admission = instance["admission"] as? [String: Any]
            let signatures = admission?["signatures"] as? [String] ?? []
            let record = admission?["testRecord"] as? String
            #expect(!signatures.isEmpty && record != nil, "\(instance)")
            for digest in signatures + [record].compactMap({ $0 }) {
                #expect(FileManager.default.fileExists(atPath: daemon.state + "/store/blobs/sha256/" + digest.dropFirst(7)), "\(digest)")
            }
        }
    }

    @Test("the bwrap runner runs the image as its own user (shifted by the user namespace)")
    func bwrapRunner() throws {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        let result = try daemon.command(["apply", hello.spec("1.0.0", port: port, replicas: 1, runner: "bwrap")])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(try frontPage(port).contains("hello 1.0.0"))
        let instance = try #require((try daemon.status("hello")["instances"] as? [[String: Any]])?.first)
        let pid = try #require(instance["pid"] as? Int)
        let uid = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8).split(separator: "\n").first { $0.hasPrefix("Uid:") }
        #expect(uid?.split(separator: "\t").dropFirst().first.map(String.init) == String((1 << 30) + 65534),
                "the image's user 65534:65534, shifted into the instances' user namespace range: \(uid ?? "")")
    }

    @Test("hostile images are refused and nothing is written outside the release folder", arguments: ["traversal", "symlink", "climbing-symlink", "device"])
    func hostileImage(kind: String) throws {
        let store = makeTemporaryDirectory("hostile-store")
        let layout = makeTemporaryDirectory("hostile-layout")
        let outside = makeTemporaryDirectory("outside")
        let escape = outside + "/pwned-\(kind)"
        let made = try run("/usr/bin/python3", [repositoryRoot + "/fixtures/hostile/make_layout.py", kind, layout, escape])
        let digest = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try imgbuild(["copy", "oci:\(layout):1.0.0", "hostile:1.0.0", "--store", store]).status == 0)
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let spec = makeTemporaryDirectory("spec") + "/release.yaml"
        write("service: hostile\nimage: hostile@\(digest)\nsource: \(store)\nport: 8080\nlisten: 127.0.0.1:\(freePort())\n", to: spec)
        let result = try daemon.command(["apply", spec])
        #expect(result.status != 0)
        let expected = ["traversal": "climbs out of the image root", "symlink": "written through the symlink 'escape'",
                        "climbing-symlink": "leads outside the image root", "device": "device node"][kind]!
        #expect(result.stderr.contains("refused to unpack") && result.stderr.contains(expected), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: escape), "nothing was written outside")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        let releases = (try? FileManager.default.contentsOfDirectory(atPath: daemon.state + "/releases")) ?? []
        #expect(releases.isEmpty, "no release folder, partial or whole, is left: \(releases)")
    }

    @Test("a spec naming a tag, a version or a short digest is refused with how to get the digest", arguments: [
        ("hello:1.4.0", "names the tag '1.4.0', not a digest"),
        ("hello@sha256:abc", "has no complete digest"),
        ("hello", "names no digest"),
    ])
    func tagsAreRefused(image: String, message: String) throws {
        let spec = makeTemporaryDirectory("spec") + "/release.yaml"
        write("service: hello\nimage: \(image)\nsource: /nonexistent\nport: 8080\nlisten: 127.0.0.1:9000\n", to: spec)
        // No daemon runs: the spec is refused before anything is sent.
        let result = try run(imgdeployBinary, ["apply", spec, "--state", makeTemporaryDirectory("no-daemon")])
        #expect(result.status != 0)
        #expect(result.stderr.contains("release.yaml:2:8"), "the place in the spec: \(result.stderr)")
        #expect(result.stderr.contains(message) && result.stderr.contains("imgbuild resolve") && result.stderr.contains("@sha256:<64 hex digits>"), "\(result.stderr)")
    }

    @Test("spec mistakes are reported at their place", arguments: [
        ("replicas: two\n", "'replicas' must be a whole number", 6),
        ("strategy: gradual\n", "'strategy' must be one of blue-green, rolling, canary", 6),
        ("canary: { steps: [100] }\n", "'canary' is read only with 'strategy: canary'", 6),
        ("strategy: canary\ncanary: { steps: [5, 50] }\n", "'canary.steps' must end with 100", 7),
        ("strategy: canary\ncanary: { steps: [50, 5, 100] }\n", "'canary.steps' must grow from step to step", 7),
        ("strategy: canary\ncanary: { steps: [5, halfway, 100] }\n", "a canary step is a percent of requests from 1 to 100, or 'pause'", 7),
        ("strategy: canary\ncanary: { analysis: { maxErrorRate: 0.01 } }\n", "'canary.analysis.maxErrorRate' must be a percentage", 7),
        ("strategy: canary\ncanary: { analysis: { maxP99Ratio: 0.5 } }\n", "'canary.analysis.maxP99Ratio' is how many times", 7),
        ("strategy: canary\ncanary: { analysis: {} }\n", "'canary.analysis' names no rule", 7),
        ("strategy: canary\ncanary: { sticky: header }\n", "'canary.sticky' may be cookie", 7),
        ("strategy: canary\ncanary: { stepDuration: soon }\n", "'canary.stepDuration' must be a duration", 7),
        ("health: { path: healthz }\n", "'health.path' must start with '/'", 6),
        ("colour: blue\n", "unknown key 'colour'", 6),
        ("keep: 0\n", "'keep' must be a whole number from 1 to 100, not '0'", 6),
        // A duration past what Int64 milliseconds hold trapped the reader (found by FuzzReleaseSpec).
        ("stopTimeout: 9999999999999999s\n", "'stopTimeout' must be a duration", 6),
    ])
    func specMistakes(extra: String, message: String, line: Int) throws {
        let spec = makeTemporaryDirectory("spec") + "/release.yaml"
        write("service: hello\nimage: hello@sha256:\(String(repeating: "a", count: 64))\nsource: /nonexistent\nport: 8080\nlisten: 127.0.0.1:9000\n" + extra, to: spec)
        let result = try run(imgdeployBinary, ["apply", spec, "--state", makeTemporaryDirectory("no-daemon")])
        #expect(result.status != 0 && result.stderr.contains("release.yaml:\(line):") && result.stderr.contains(message), "\(result.stderr)")
    }

    @Test("without a daemon, the client says how to start one")
    func noDaemon() throws {
        let result = try run(imgdeployBinary, ["status", "--state", makeTemporaryDirectory("no-daemon")])
        #expect(result.status != 0 && result.stderr.contains("imgdeploy up"), "\(result.stderr)")
    }
}

@Suite("imgdeploy render --kubernetes", .mayBlock)
struct KubernetesRenderTests {
    /// `kubernetes-validate` from PyPI, installed by `.ci/install-deps --test`.
    static let validator: String = {
        if let explicit = ProcessInfo.processInfo.environment["KUBERNETES_VALIDATE"] { return explicit }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        let candidates = [home + "/.cache/imgbuild/k8s-venv/bin/kubernetes-validate", "/usr/local/bin/kubernetes-validate"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "kubernetes-validate"
    }()

    static let digest = "sha256:" + String(repeating: "5e", count: 32)

    func spec(strategy: String, source: String = "http://127.0.0.1:5000") -> String {
        let path = makeTemporaryDirectory("k8s") + "/release.yaml"
        write("""
        service: hello
        image: hello@\(KubernetesRenderTests.digest)
        source: \(source)
        replicas: 3
        port: 8080
        listen: 127.0.0.1:9000
        strategy: \(strategy)
        health: { path: /healthz, interval: 2s, timeout: 1s, healthyAfter: 2, deadline: 45s }
        limits: { memory: 256Mi }

        """, to: path)
        return path
    }

    @Test("rolling and blue-green manifests pass kubernetes-validate --strict and pin the digest", arguments: [
        ("rolling", nil as String?), ("blue-green", "blue"), ("blue-green", "green"),
    ])
    func validManifests(strategy: String, slot: String?) throws {
        let output = makeTemporaryDirectory("k8s") + "/manifests.yaml"
        let render = try run(imgdeployBinary, ["render", "--kubernetes", spec(strategy: strategy), "-o", output] + (slot.map { ["--slot", $0] } ?? []))
        #expect(render.status == 0, "\(render.stderr)")
        let text = try String(contentsOfFile: output, encoding: .utf8)
        #expect(text.contains("image: 127.0.0.1:5000/hello@\(KubernetesRenderTests.digest)"))
        #expect(!text.contains("hello:"), "no tag anywhere")
        #expect(text.contains("path: /healthz") && text.contains("progressDeadlineSeconds: 45") && text.contains("successThreshold: 2"))
        if strategy == "rolling" {
            #expect(text.contains("maxSurge: 1") && text.contains("maxUnavailable: 0") && text.contains("replicas: 3"))
        } else {
            #expect(text.contains("name: hello-\(slot!)") && text.contains("slot: \(slot!)"), "the Deployment of the slot and the Service selecting it")
        }
        let validation = try run(KubernetesRenderTests.validator, ["--strict", output])
        #expect(validation.status == 0, "\(validation.stdout)\(validation.stderr)")
        #expect(validation.stdout.contains("passed for resource deployment/hello") && validation.stdout.contains("passed for resource service/hello"), "\(validation.stdout)")

        // The validator is a real check: a manifest with a wrong field fails it.
        let broken = makeTemporaryDirectory("k8s") + "/broken.yaml"
        write(text.replacingOccurrences(of: "replicas: 3", with: "replicas: three"), to: broken)
        #expect(try run(KubernetesRenderTests.validator, ["--strict", broken]).status != 0)
    }

    @Test("a store source needs --registry, and the message says so")
    func storeSourceNeedsRegistry() throws {
        let refused = try run(imgdeployBinary, ["render", "--kubernetes", spec(strategy: "rolling", source: "/var/lib/imgbuild")])
        #expect(refused.status != 0 && refused.stderr.contains("--registry"), "\(refused.stderr)")
        // With --registry the image's config is read from the store, which here does not exist: an error, not a guess.
        let given = try run(imgdeployBinary, ["render", "--kubernetes", spec(strategy: "rolling", source: "/nonexistent/imgbuild"), "--registry", "registry.example:5000"])
        #expect(given.status != 0 && !given.stderr.contains("--registry") && given.stderr.contains("/nonexistent/imgbuild"), "\(given.stderr)")
    }
}
