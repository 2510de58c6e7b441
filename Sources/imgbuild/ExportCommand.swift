import ArgumentParser
import OCI
import Store

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an image as a standalone OCI image layout.",
        discussion: "The version becomes the layout's org.opencontainers.image.ref.name, so 'skopeo inspect oci:DIR:VERSION' finds it."
    )

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>")
    var reference: String

    @Argument(help: "oci:DIR — the layout folder, created if absent.")
    var destination: String

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        guard destination.hasPrefix("oci:"), destination.count > 4 else {
            throw ValidationError("the destination must be oci:DIR (an OCI image layout folder), not '\(destination)'")
        }
        let directory = String(destination.dropFirst(4))
        let reference = try Reference(parsing: self.reference)
        let store = try Store.open(at: storeOptions.store ?? Store.defaultPath(), create: false)
        let descriptor = try store.resolve(reference)
        var refName: String?
        if case .tag(let version) = reference.target { refName = version }
        try store.exportLayout(descriptor, refName: refName, to: directory)
        print(descriptor.digest)
    }
}
