import CommandLineTesting
import Foundation
import Testing

/// `imgdeploy apply SPEC` (of `image`) run while the test watches `status`: its result, and for each
/// transition of the rollout when it was first seen and when the record says it happened (`recorded`, in
/// whole seconds: the transition happened in the second that begins there, and before it was seen, which
/// can be a second or more later when the machine is busy). `during` is called with each transition as it
/// appears.
func applyWatching(_ daemon: DeployDaemon, _ spec: String, image: String, during: (String) throws -> Void = { _ in }) throws
    -> (result: ProcessResult, seen: [(time: Double, text: String, recorded: Double)]) {
    let folder = makeTemporaryDirectory("apply")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: daemon.binary)
    process.arguments = ["apply", spec, "--state", daemon.state]
    _ = FileManager.default.createFile(atPath: folder + "/out", contents: nil)
    _ = FileManager.default.createFile(atPath: folder + "/err", contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: folder + "/out")
    process.standardError = FileHandle(forWritingAtPath: folder + "/err")
    let started = Date().timeIntervalSince1970
    try process.run()
    var seen: [(time: Double, text: String, recorded: Double)] = []
    var known = -1
    while process.isRunning {
        let status = try daemon.status("hello")
        let rollout = status["lastRollout"] as? [String: Any]
        let transitions = rollout?["transitions"] as? [[String: Any]] ?? []
        // The record of this apply: of its image, begun after it was run (the one before is the previous rollout's,
        // which may have begun in the same second).
        if rollout?["image"] as? String == image, let begun = (rollout?["started"] as? String).flatMap({ ISO8601DateFormatter().date(from: $0) }),
           begun.timeIntervalSince1970 >= started.rounded(.down) {
            if known < 0 { known = 0 }
            for transition in transitions.dropFirst(known) {
                let text = "\(transition["state"] as? String ?? ""): \(transition["note"] as? String ?? "")"
                let recorded = (transition["at"] as? String).flatMap { ISO8601DateFormatter().date(from: $0) }?.timeIntervalSince1970
                seen.append((Date().timeIntervalSince1970, text, recorded ?? 0))
                try during(text)
            }
            known = max(known, transitions.count)
        }
        usleep(100_000)
    }
    process.waitUntilExit()
    let read = { (name: String) in (try? String(contentsOfFile: folder + "/" + name, encoding: .utf8)) ?? "" }
    return (ProcessResult(status: process.terminationStatus, stdout: read("out"), stderr: read("err")), seen)
}

/// `imgdeploy metrics` read by the Prometheus project's own parser (prometheus_client): by digest, each
/// status code's count of `imgdeploy_requests_total`, and `count` for the latency histogram's.
func parsedMetrics(_ text: String) throws -> [String: [String: Double]] {
    let venv = ProcessInfo.processInfo.environment["PROMETHEUS_VENV"] ?? NSHomeDirectory() + "/.cache/imgbuild/prometheus-venv"
    let input = makeTemporaryDirectory("metrics") + "/metrics.txt"
    write(text, to: input)
    let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        for family in text_string_to_metric_families(open(sys.argv[1]).read()):
            for sample in family.samples:
                if sample.name == "imgdeploy_requests_total":
                    out.setdefault(sample.labels["digest"], {})[sample.labels["code"]] = sample.value
                if sample.name == "imgdeploy_request_duration_seconds_count":
                    out.setdefault(sample.labels["digest"], {})["count"] = sample.value
                if sample.labels.get("service") != "hello":
                    raise SystemExit("a sample without its service: %r" % (sample,))
        print(json.dumps(out))
        """
    let result = try run(venv + "/bin/python", ["-c", script, input])
    guard result.status == 0, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Double]] else {
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "prometheus_client could not read the metrics: \(result.stderr)\n\(text)"])
    }
    return object
}

extension DeployTests {
    /// A daemon serving hello 1.0.0 (blue-green) on a free port: what each canary test starts from.
    func servingFirstVersion(daemonArguments: [String] = []) throws -> (hello: HelloVersions, daemon: DeployDaemon, port: Int) {
        let hello = try DeployTests.versions.get()
        let daemon = try DeployDaemon(arguments: daemonArguments)
        let port = freePort()
        let first = try daemon.command(["apply", hello.spec("1.0.0", port: port)])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        return (hello, daemon, port)
    }

    @Test("canary under load: each step sends its share of requests to the new version (±5 points, as the load generator saw them), then all; imgdeploy metrics and its /metrics listener, read by prometheus_client, count what the load generator counted")
    func canaryShares() throws {
        let metricsPort = freePort()
        let (hello, daemon, port) = try servingFirstVersion(daemonArguments: ["--metrics", "127.0.0.1:\(metricsPort)"])
        defer { daemon.stop() }
        let load = try LoadGenerator(port: port, options: ["--timeline"])
        let spec = hello.spec("2.0.0", port: port, strategy: "canary", extra: "canary: { steps: [10, 50, 100], stepDuration: 4s, minRequests: 50 }")
        let (result, seen) = try applyWatching(daemon, spec, image: "hello@" + hello.digests["2.0.0"]!)
        usleep(300_000)
        let document = try load.finishDocument()
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("canary steps:") && result.stdout.contains("1. 10% for"), "\(result.stdout)")
        #expect((document["errors"] as? [String])?.isEmpty == true, "\(document["errors"] ?? "")")
        #expect(document["statuses"] as? [String: Int] == ["200": document["requests"] as? Int ?? -1], "\(document["statuses"] ?? "")")

        // The share each step's window got, from the load generator's own record of who answered when.
        let timeline = (document["timeline"] as? [[Any]] ?? []).compactMap { entry -> (time: Double, version: String)? in
            guard entry.count == 3, let time = entry[0] as? Double, let version = entry[1] as? String else { return nil }
            return (time, version)
        }
        let starts = ["step 1 of", "step 2 of", "all traffic to"].map { marker in seen.first { $0.text.contains(marker) } }
        #expect(starts.allSatisfy { $0 != nil }, "the steps and the switch were seen: \(seen.map(\.text))")
        if starts.allSatisfy({ $0 != nil }) {
            for (index, percent) in [10, 50].enumerated() {
                // Only answers from inside the step: after the latest its start can have been (the end of
                // its recorded second, or when it was seen if sooner) and the front's share was set (a
                // moment after it is recorded), and before the earliest the next step can have begun.
                let (start, next) = (starts[index]!, starts[index + 1]!)
                let from = min(start.recorded + 1, start.time) + 0.3
                let window = timeline.filter { $0.time > from && $0.time < next.recorded }
                let share = Double(window.filter { $0.version == "2.0.0" }.count) / Double(max(1, window.count)) * 100
                #expect(window.count >= 50 && abs(share - Double(percent)) <= 5, "step \(index + 1): \(share)% of \(window.count) answers from 2.0.0, for \(percent)% (from \(from) to \(next.recorded); steps seen at \(starts.map { $0!.time }), recorded at \(starts.map { $0!.recorded })")
            }
        }

        let metrics = try daemon.command(["metrics"])
        #expect(metrics.status == 0, "\(metrics.stderr)")
        let parsed = try parsedMetrics(metrics.stdout)
        let versions = document["versions"] as? [String: Int] ?? [:]
        for version in ["1.0.0", "2.0.0"] {
            let counts = parsed[hello.digests[version]!] ?? [:]
            #expect(counts["200"].map(Int.init) == versions[version], "\(version): the front counted \(counts), the load generator \(versions)")
            #expect(counts["count"] == counts["200"], "each answer's latency is in the histogram")
        }
        #expect(parsed.keys.allSatisfy { [hello.digests["1.0.0"]!, hello.digests["2.0.0"]!].contains($0) }, "\(parsed)")
        // The same, scraped over HTTP as Prometheus would (`imgdeploy up --metrics`).
        let scraped = try run("/usr/bin/curl", ["-sf", "--max-time", "5", "http://127.0.0.1:\(metricsPort)/metrics"])
        #expect(scraped.status == 0)
        #expect(try parsedMetrics(scraped.stdout) == parsed)
    }

    @Test("canary under load: a version that fails one request in ten is aborted at its first step, having served at most that step's share; one much slower is aborted on latency; status shows each step's figures")
    func canaryAborts() throws {
        let (hello, daemon, port) = try servingFirstVersion()
        defer { daemon.stop() }
        let load = try LoadGenerator(port: port, path: "/cgi-bin/work", mode: "work", options: ["--timeline"])

        let began = Date().timeIntervalSince1970
        let failing = try daemon.command(["apply", hello.spec("6.0.0", port: port, strategy: "canary",
                                                              extra: "canary: { steps: [5, 50, 100], stepDuration: 3s, minRequests: 60, analysis: { maxErrorRate: 1% } }")])
        let ended = Date().timeIntervalSince1970
        #expect(failing.status != 0 && failing.stderr.contains("maxErrorRate"), "\(failing.stdout)\(failing.stderr)")
        #expect(failing.stdout.contains("1. 5% for") && !failing.stdout.contains("2. 50%"), "aborted at the first step: \(failing.stdout)")
        let status = try daemon.command(["status", "hello"])
        #expect(status.stdout.contains("canary steps:") && status.stdout.contains("failed (maxErrorRate"), "\(status.stdout)")
        #expect(try daemon.status("hello")["current"] as? String == "hello@" + hello.digests["1.0.0"]!)

        let slow = try daemon.command(["apply", hello.spec("7.0.0", port: port, strategy: "canary",
                                                           extra: "canary: { steps: [5, 100], stepDuration: 3s, minRequests: 30, analysis: { maxErrorRate: 1%, maxP99Ratio: 2 } }")])
        #expect(slow.status != 0 && slow.stderr.contains("maxP99Ratio"), "\(slow.stdout)\(slow.stderr)")
        usleep(300_000)
        let document = try load.finishDocument()
        #expect((document["errors"] as? [String])?.isEmpty == true, "no connection failed: \(document["errors"] ?? "")")
        let timeline = (document["timeline"] as? [[Any]] ?? []).compactMap { entry -> (time: Double, version: String, status: Int)? in
            guard entry.count == 3, let time = entry[0] as? Double, let version = entry[1] as? String, let status = entry[2] as? Int else { return nil }
            return (time, version, status)
        }
        let failures = timeline.filter { $0.status != 200 }
        #expect(failures.allSatisfy { $0.version == "6.0.0" && $0.status == 500 }, "only the failing version failed: \(failures.prefix(5))")
        let during = timeline.filter { $0.time >= began && $0.time <= ended }
        #expect(Double(failures.count) <= 0.05 * Double(during.count), "\(failures.count) failed of \(during.count) answered while 6.0.0 was tried: at most its 5% share")
        #expect(!timeline.contains { $0.version == "6.0.0" && $0.time > ended + 0.5 } && !timeline.contains { $0.version == "7.0.0" && $0.time > Date().timeIntervalSince1970 },
                "no aborted version answered after its abort")
    }

    @Test("a sticky canary keeps each client on the side it first got through every step; promote ends a pause")
    func canarySticky() throws {
        let (hello, daemon, port) = try servingFirstVersion()
        defer { daemon.stop() }
        let spec = hello.spec("2.0.0", port: port, strategy: "canary",
                              extra: "canary: { steps: [10, 50, pause, 100], stepDuration: 2s, minRequests: 20, sticky: cookie }")
        var document: [String: Any] = [:]
        var load: LoadGenerator?
        let (result, seen) = try applyWatching(daemon, spec, image: "hello@" + hello.digests["2.0.0"]!) { transition in
            // The clients begin once the first step's split is in force (it is applied as the step is recorded).
            if transition.contains("step 1 of") {
                usleep(500_000)
                load = try LoadGenerator(port: port, connections: 16, options: ["--cookies"])
            }
            // At the pause, the clients have lived through two steps: their load stops, then the pause is promoted.
            guard transition.contains("paused until"), let running = load else { return }
            document = try running.finishDocument()
            let promoted = try daemon.command(["promote", "hello"])
            #expect(promoted.status == 0, "\(promoted.stderr)")
        }
        #expect(result.status == 0 && result.stdout.contains("promoted"), "\(result.stdout)\(result.stderr)\nseen: \(seen.map(\.text))")
        let sides = document["sides"] as? [[String]] ?? []
        #expect(sides.count == 16 && sides.allSatisfy { $0.count == 1 }, "each client saw one version through both steps: \(sides)")
        #expect(sides.contains(["2.0.0"]) && sides.contains(["1.0.0"]), "\(sides)")
        #expect((document["errors"] as? [String])?.isEmpty == true, "\(document["errors"] ?? "")")
        #expect(try daemon.status("hello")["current"] as? String == "hello@" + hello.digests["2.0.0"]!)
    }
}
