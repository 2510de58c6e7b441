import ArgumentParser
import Foundation
import Front
import NIOCore

struct FrontCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "front",
        abstract: "Run one service's load balancer as a process of its own (the daemon starts it; not for use by hand).",
        discussion: """
        The listening socket is standard input, or, with --take-over, is handed over (SCM_RIGHTS) by the front whose \
        control socket is at --control, which then finishes its connections and exits. The daemon instructs the front \
        over its control socket; the front keeps serving when the daemon stops. `imgdeploy proxy` is the standalone form.
        """,
        shouldDisplay: false)

    @Option(name: .long, help: ArgumentHelp("The front's control socket.", valueName: "PATH")) var control: String
    @Flag(name: .customLong("take-over"), help: "Take the listening socket and backends from the front at --control.") var takeOver = false
    @Option(name: .customLong("idle-timeout"), help: "Seconds a client may send nothing between requests or while sending one, and an instance may take to begin answering a request sent whole (then 504).") var idleTimeout: Int64 = 60
    @Option(name: .customLong("max-connections"), help: "Client connections served at once; more wait until one closes.") var maxConnections = 4096
    @Option(name: .customLong("drain-timeout"), help: "Seconds a stopping or replaced front waits for its connections.") var drainTimeout: Int64 = 30
    @Option(name: .long, help: "The service it fronts, as its metrics are labelled.") var service = ""

    func run() async throws {
        let options = FrontProcess.Options(controlPath: control, takeOver: takeOver, idleTimeout: .seconds(max(1, idleTimeout)),
                                           maxConnections: max(1, maxConnections), drainTimeout: .seconds(max(0, drainTimeout)),
                                           service: service)
        do {
            try await FrontProcess.run(options) { printError($0) }
        } catch {
            printError("imgdeploy front: \(error)")
            throw ExitCode.failure
        }
    }
}
