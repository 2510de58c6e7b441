import ArgumentParser
import Distribution
import Store

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an image as a standalone OCI image layout (the same as push to oci:DIR).",
        discussion: "The version becomes the layout's org.opencontainers.image.ref.name, so 'skopeo inspect oci:DIR:VERSION' finds it."
    )

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references)
    var reference: String

    @Argument(help: "oci:DIR — the layout folder, created if absent.")
    var destination: String

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var platform: PlatformOption

    func run() async throws {
        guard destination.hasPrefix("oci:"), destination.count > 4 else {
            throw ValidationError("the destination must be oci:DIR (an OCI image layout folder), not '\(destination)'")
        }
        var transfer = Transfer(storePath: storeOptions.store ?? Store.defaultPath(), options: RegistryOptions())
        transfer.platform = try platform.parsed()
        let source = try ImageLocation(parsing: reference.hasPrefix("store:") ? reference : "store:" + reference)
        let result = try await transfer.run(from: source, to: try ImageLocation(parsing: destination))
        print(result.descriptor.digest)
    }
}
