import ArgumentParser
import Foundation

@main
struct IMGBuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imgbuild",
        abstract: "Build reproducible OCI images from Imagefiles and keep them under immutable versions.",
        version: "0.1.0",
        subcommands: [BuildCommand.self, InspectCommand.self, ExportCommand.self]
    )
}

/// `--store DIR`, shared by every command that uses the local store.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The local store folder.", discussion: "Default: $IMGBUILD_STORE, else $XDG_DATA_HOME/imgbuild, else ~/.local/share/imgbuild.", valueName: "DIR"))
    var store: String?
}

/// Writes a line to standard error.
func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
