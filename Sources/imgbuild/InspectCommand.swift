import ArgumentParser
import Foundation
import OCI
import Store

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print an image's manifest and config as JSON."
    )

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references)
    var reference: String

    @OptionGroup var storeOptions: StoreOptions
    /// Accepted for uniformity: the output is JSON either way.
    @OptionGroup var output: FormatOptions

    func run() throws {
        let reference = try Reference(parsing: self.reference)
        let store = try Store.open(at: storeOptions.store ?? Store.defaultPath(), create: false)
        let inspection = try store.inspect(reference)
        print(String(decoding: try CanonicalJSON.encodePretty(inspection), as: UTF8.self))
    }
}
