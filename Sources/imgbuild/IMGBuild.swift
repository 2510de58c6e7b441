import ArgumentParser
import BuildReplay
import Foundation
import OCI
import Store

@main
struct IMGBuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imgbuild",
        abstract: "Build reproducible OCI images from Imagefiles and keep them under immutable versions.",
        version: IMGBuild.versionText,
        subcommands: [BuildCommand.self, LockCommand.self, InspectCommand.self, ExportCommand.self, TagCommand.self, TagsCommand.self,
                      ResolveCommand.self, ImagesCommand.self, DiffCommand.self, FsckCommand.self, GCCommand.self,
                      PushCommand.self, PullCommand.self, CopyCommand.self, LoginCommand.self, LogoutCommand.self, ServeCommand.self,
                      KeygenCommand.self, SignCommand.self, VerifyCommand.self, SBOMCommand.self, TestCommand.self]
    )

    /// Runs the command; a library's error is printed with what imgbuild's own flags offer against it.
    static func main() async {
        // A no-op build answered from its record, before any argument is parsed (see BuildReplay).
        if let status = BuildReplay.replay(arguments: CommandLine.arguments) { Foundation.exit(status) }
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: CommandLineRemedy.explained(error))
        }
    }
}

extension IMGBuild {
    /// This release of imgbuild.
    static let version = "0.1.0"

    /// What `--version` prints: the version, the commit it was built from, and the store format it reads
    /// and writes (a store of another format is refused, not converted).
    static let versionText = "imgbuild \(version) (commit \(buildCommit)) store format imgbuild-store/\(Store.formatVersion)"
}

/// `--store DIR`, shared by every command that uses the local store.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The local store folder.", discussion: "Default: $IMGBUILD_STORE, else $XDG_DATA_HOME/imgbuild, else ~/.local/share/imgbuild.", valueName: "DIR"))
    var store: String?
}

extension StoreOptions {
    /// Opens the store for reading: it must exist.
    func openExisting() throws -> Store { try Store.open(at: store ?? Store.defaultPath(), create: false) }

    /// `NAME:VERSION` or `NAME@sha256:<hex>` parsed, the store opened, and the image's manifest found.
    func resolve(_ text: String) throws -> (reference: Reference, store: Store, image: Descriptor) {
        let reference = try Reference(parsing: text)
        let store = try openExisting()
        return (reference, store, try store.resolve(reference))
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    // A standard error that cannot be written (closed, a full disk) loses the line, not the command.
    try? FileHandle.standardError.write(contentsOf: Data((line + "\n").utf8))
}
