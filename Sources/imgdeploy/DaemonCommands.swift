import ArgumentParser
import DeployControl
import Foundation
import ReleaseSpec
import Rollout

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run the deployer daemon: load balancers, instances and rollouts, controlled over a Unix socket.",
        discussion: "Runs in the foreground until SIGTERM or SIGINT, which stop every service. At start it removes what a killed daemon left behind and starts again every release that was serving.")

    @OptionGroup var options: StateOptions

    func run() async throws {
        let paths = options.paths
        try await ControlServer.run(paths: paths) { adopted in
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
            print("\(status.service)  front \(status.listen)  serving \(status.current?.description ?? "nothing")")
            print("  requests \(status.requests), failed \(status.failedRequests), retried \(status.retriedRequests)")
            for instance in status.instances {
                let state = instance.serving ? "serving" : (instance.lastExit.map { "exited (\($0))" } ?? "not serving")
                print("  \(instance.id)  127.0.0.1:\(instance.port)  pid \(instance.pid.map(String.init) ?? "-")  \(state)  restarts \(instance.restarts)  \(instance.image.digest)")
            }
            if let rollout = status.lastRollout {
                print("  last rollout: \(rollout.kind) of \(rollout.image.digest) (\(rollout.strategy.rawValue)): \(rollout.state.rawValue)")
                if let reason = rollout.reason { print("    why: \(reason)") }
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

struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "down", abstract: "Stop a service's front and instances (its history stays).")

    @OptionGroup var options: StateOptions
    @Argument(help: "The service.") var service: String

    func run() async throws {
        try await ControlClient(socket: options.paths.socket).down(service)
        print("\(service) is down")
    }
}

func printRecord(_ record: RolloutRecord, json: Bool) throws {
    if json { return try printJSON(record) }
    for transition in record.transitions {
        print("\(transition.state.rawValue)\(transition.note.map { ": \($0)" } ?? "")")
    }
    print("\(record.service) \(record.image): \(record.state.rawValue)")
    if let reason = record.reason { printError("why: \(reason)") }
}

func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
