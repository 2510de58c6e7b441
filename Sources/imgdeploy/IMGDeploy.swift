import ArgumentParser
import Foundation
import DeployerCore

@main
struct IMGDeploy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imgdeploy",
        abstract: "Deploy images by digest: blue-green, rolling or canary, with health checks, history and rollback.",
        version: "0.1.0",
        subcommands: [UpCommand.self, ApplyCommand.self, StatusCommand.self, HistoryCommand.self, RollbackCommand.self,
                      PromoteCommand.self, AbortCommand.self, MetricsCommand.self, DownCommand.self, GCCommand.self, VerifyCommand.self, UpgradeFrontCommand.self, RenderCommand.self, ProxyCommand.self, FrontCommand.self]
    )
}

/// `--state DIR`, shared by the daemon and its clients.
struct StateOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The deployer's state folder (its control socket is STATE/imgdeploy.sock).",
                                            discussion: "Default: $IMGDEPLOY_STATE, else /var/lib/imgdeploy as root, else ~/.local/state/imgdeploy.",
                                            valueName: "DIR"))
    var state: String?

    var paths: DeployPaths { DeployPaths(root: state ?? DeployPaths.defaultRoot()) }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
