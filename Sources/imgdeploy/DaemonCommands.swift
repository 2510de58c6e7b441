import ArgumentParser
import DeployControl
import Foundation
import ReleaseSpec
import UnpackedReleases
import DeployerCore
import HostPort
import LoadBalancer

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the deployer daemon: it starts fronts and instances and rolls out releases, controlled over a Unix socket.",
        discussion: """
        Runs in the foreground until SIGTERM or SIGINT. Each service's front (its load balancer) and its instances are processes         of their own: they keep serving while the daemon is stopped, killed or replaced by a newer one, and the next daemon         adopts them without restarting anything. A rollout that was in flight is aborted (traffic stays on, or returns to,         the release that last succeeded), and a front that runs an older executable is replaced without dropping a request.         `imgdeploy down SERVICE` (or --all) stops services.
        """)

    @OptionGroup var options: StateOptions
    @Option(name: .long, help: ArgumentHelp("Also serve the fronts' metrics at GET /metrics on this address, for Prometheus to scrape (e.g. 127.0.0.1:9100).",
                                            valueName: "HOST:PORT"))
    var metrics: String?

    func run() async throws {
        let paths = options.paths
        var address: (host: String, port: Int)?
        if let metrics {
            do {
                let parsed = try HostPort.parse(metrics)
                address = (parsed.host, parsed.port)
            } catch {
                throw ValidationError("--metrics must be HOST:PORT with a host, e.g. 127.0.0.1:9100, not '\(metrics)'")
            }
        }
        try await ControlServer.run(paths: paths, metrics: address) { adopted in
            printError("imgdeploy: listening on \(paths.socket)" + (adopted.isEmpty ? "" : "; re-adopting \(adopted.joined(separator: ", "))"))
        }
    }
}

struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Roll out a release spec and wait until it succeeds or fails.",
        discussion: "The spec names its image by digest only (NAME@sha256:<64 hex>). Exits 0 when the rollout succeeded, 1 when it failed (traffic then stays on the previous version).")

    @OptionGroup var options: StateOptions
    @Argument(help: ArgumentHelp("The release spec (YAML).", valueName: "SPEC")) var spec: String
    @Flag(name: .long, help: "Print the rollout record as JSON.") var json = false

    func run() async throws {
        let parsed = try ReleaseSpec.load(path: spec)
        let record = try await ControlClient(socket: options.paths.socket).apply(parsed)
        try printRecord(record, json: json)
        if record.state != .succeeded { throw ExitCode.failure }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show services, their instances and their last rollout.")

    @OptionGroup var options: StateOptions
    @Argument(help: "Only this service.") var service: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let statuses = try await ControlClient(socket: options.paths.socket).status(service)
        if json { return try printJSON(statuses) }
        if statuses.isEmpty { print("no services"); return }
        for status in statuses {
            let restarts = status.frontRestarts.map { ", restarts \($0.restarts)" } ?? ""
            print("\(status.service)  front \(status.listen) (pid \(status.frontPID.map(String.init) ?? "-")\(restarts))  serving \(status.current?.description ?? "nothing")")
            if let front = status.frontRestarts, front.crashLoop || front.refusingConnections || front.nextStartIn != nil {
                let next = front.nextStartIn.map { String(format: "next start in %.0f s", $0.rounded(.up)) } ?? "starting it again"
                let refused = front.refusingConnections ? "; new connections are refused until one runs" : ""
                print("  front gone: \(front.quickExits) in a row exited within 10 s of starting or failed to start\(refused); \(next); see \(options.paths.frontLog(status.service))")
            }
            print("  requests \(status.requests), failed \(status.failedRequests), retried \(status.retriedRequests)")
            for instance in status.instances {
                let state = instance.serving ? "serving" : (instance.lastExit.map { "exited (\($0))" } ?? "not serving")
                print("  \(instance.id)  127.0.0.1:\(instance.port)  pid \(instance.pid.map(String.init) ?? "-")  \(state)  restarts \(instance.restarts)  \(instance.image.digest)")
            }
            for (index, release) in (status.releases ?? []).enumerated() {
                let size = release.bytes.map { "\(byteText($0)) on disk" } ?? "not here (a rollback to it fetches it again)"
                print("  \(index == 0 ? "serving " : "kept    ") \(release.image)  \(size)")
            }
            if let rollout = status.lastRollout {
                print("  last rollout: \(rollout.kind) of \(rollout.image.digest) (\(rollout.strategy.rawValue)): \(rollout.state.rawValue)")
                if let reason = rollout.reason { print("    why: \(reason)") }
                printCanarySteps(rollout, indent: "    ")
            }
        }
    }
}

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "List a service's rollouts, oldest first.")

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let records = try await ControlClient(socket: options.paths.socket).history(service)
        if json { return try printJSON(records) }
        let format = ISO8601DateFormatter()
        for record in records {
            print("\(format.string(from: record.started))  \(record.kind.padding(toLength: 8, withPad: " ", startingAt: 0))  \(record.image)  \(record.strategy.rawValue)  \(record.state.rawValue)\(record.reason.map { ": \($0)" } ?? "")")
        }
    }
}

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Roll a service back to the release before the current one, or to a digest from its history.")

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String
    @Option(name: .long, help: ArgumentHelp("A digest that served this service before.", valueName: "DIGEST")) var to: String?
    @Flag(name: .long, help: "Print the rollout record as JSON.") var json = false

    func run() async throws {
        let record = try await ControlClient(socket: options.paths.socket).rollback(service, to: to)
        try printRecord(record, json: json)
        if record.state != .succeeded { throw ExitCode.failure }
    }
}

struct MetricsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Print the fronts' counters in the Prometheus text format: answers by service, image digest and status, and their latency.",
        discussion: "Each front counts from its own start (a replaced front's successor starts again, which Prometheus reads as a counter reset).")

    @OptionGroup var options: StateOptions
    @Argument(help: "Only this service.") var service: String?

    func run() async throws {
        print(try await ControlClient(socket: options.paths.socket).metrics(service), terminator: "")
    }
}

struct PromoteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Let a canary rollout skip its remaining steps: every request to the new version (the way on from a pause step).")

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String

    func run() async throws {
        try await ControlClient(socket: options.paths.socket).promote(service)
        print("\(service): the canary is promoted (`imgdeploy status \(service)` follows it)")
    }
}

struct AbortCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort",
        abstract: "Stop a canary rollout: the new version's instances retire and the old version serves every request.")

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String

    func run() async throws {
        try await ControlClient(socket: options.paths.socket).abort(service)
        print("\(service): the canary is being aborted (`imgdeploy status \(service)` follows it)")
    }
}

struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "down", abstract: "Stop a service's front and instances (its history stays).")

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String?
    @Flag(name: .long, help: "Stop every service.") var all = false

    func validate() throws {
        guard (service != nil) != all else { throw ValidationError("name a service, or give --all") }
    }

    func run() async throws {
        let client = ControlClient(socket: options.paths.socket)
        let names: [String]
        if let service { names = [service] } else { names = try await client.status(nil).map(\.service) }
        for name in names {
            try await client.down(name)
            print("\(name) is down")
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that the files a service's instances run from are still those unpacked from the verified image.",
        discussion: """
        Nothing in the release folder is trusted: the image's manifest and layers in the deployer's store are \
        hashed again and unpacked afresh, and that tree (every path, type, mode, owner, extended attribute \
        and content hash) is compared with the folder's and with the digest recorded at unpack. Before every \
        instance starts, the folder is compared with the recorded digest, and a changed release does not \
        start. Exits 1 when a release has changed, naming its paths.
        """)

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let checks = try await ControlClient(socket: options.paths.socket).verify(service)
        if json { try printJSON(checks) } else {
            for check in checks {
                let instances = check.instances.joined(separator: ", ")
                if let problem = check.problem { printError("\(check.image) (\(instances)): CHANGED: \(problem)") } else {
                    print("\(check.image) (\(instances)): tree \(check.tree.map { "\($0)" } ?? "-") as unpacked")
                }
            }
        }
        if checks.contains(where: { $0.problem != nil }) { throw ExitCode(1) }
    }
}

struct UpgradeFrontCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade-front",
        abstract: "Replace a service's front with one running imgdeploy as installed now, without dropping a request.",
        discussion: """
        The new front takes the listening socket over from the running one (SCM_RIGHTS), so no connection is refused;         the old one stops accepting, answers each connection's next request with `Connection: close`, and exits once         they are done (or after its drain timeout). The daemon does the same at start for fronts older than its binary.
        """)

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let result = try await ControlClient(socket: options.paths.socket).upgradeFront(service)
        if json { return try printJSON(result) }
        print("\(service): front pid \(result.oldPID) replaced by pid \(result.newPID)" + (result.oldExited ? "; the old front finished and exited" : "; the old front is still finishing its connections"))
    }
}

struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove the releases outside every service's rollback window that no instance runs from.",
        discussion: """
        Each service keeps its serving release and the `keep - 1` (default 2) distinct releases that served before it, \
        ready for a rollback without the network. Everything else the deployer holds is removed: release folders, and \
        the blobs, signatures and SBOMs in its store that only they reached. A service that is down keeps nothing. \
        The daemon does the same after every rollout that succeeds.
        """)

    @OptionGroup var options: StateOptions
    @Flag(name: .long, help: "Only say what would be removed.") var dryRun = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() async throws {
        let collection = try await ControlClient(socket: options.paths.socket).collectReleases(dryRun: dryRun)
        if json { return try printJSON(collection) }
        printCollection(collection)
    }
}

func printCollection(_ collection: ReleaseCollection) {
    let verb = collection.dryRun ? "would remove" : "removed"
    for release in collection.removed {
        let names = release.names.isEmpty ? "" : " (\(release.names.joined(separator: ", ")))"
        print("\(verb) \(release.digest)\(names)" + (release.folderBytes.map { ": its release folder, \(byteText($0))" } ?? ": its blobs only"))
    }
    print("\(verb) \(collection.removed.count) release(s) and \(collection.removedBlobs) blob(s): \(byteText(collection.freedBytes)) \(collection.dryRun ? "would be " : "")freed")
    if let note = collection.storeNote { printError("note: \(note)") }
}

/// Bytes as people read them: 1.2 MB.
func byteText(_ bytes: Int64) -> String {
    bytes == 0 ? "0 bytes" : ByteCountFormatter.string(fromByteCount: bytes, countStyle: .file)
}

func printRecord(_ record: RolloutRecord, json: Bool) throws {
    if json { return try printJSON(record) }
    for transition in record.transitions {
        print("\(transition.state.rawValue)\(transition.note.map { ": \($0)" } ?? "")")
    }
    printCanarySteps(record, indent: "")
    if let removed = record.removed, !removed.isEmpty { printCollection(removed) }
    if let problem = record.cleanupProblem { printError("note: \(problem)") }
    print("\(record.service) \(record.image): \(record.state.rawValue)")
    if let reason = record.reason { printError("why: \(reason)") }
}

/// A canary's steps, one line each: its share, both versions' figures in its window, and how it ended.
func printCanarySteps(_ record: RolloutRecord, indent: String) {
    guard let steps = record.canarySteps, !steps.isEmpty else { return }
    func figures(_ figures: TrafficFigures) -> String {
        let rate = figures.requests == 0 ? "-" : String(format: "%.1f%%", figures.errorRate * 100)
        let p99 = figures.p99Microseconds.map { String(format: "%.1f ms", Double($0) / 1000) } ?? "-"
        return "\(figures.requests) req, \(rate) errors, p99 \(p99)"
    }
    print("\(indent)canary steps:")
    for step in steps {
        print("\(indent)  \(step.step). \(step.percent)% for \(String(format: "%.1f", step.seconds)) s: new \(figures(step.new)); old \(figures(step.old)): \(step.outcome.rawValue)"
              + (step.reason.map { " (\($0))" } ?? ""))
    }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
