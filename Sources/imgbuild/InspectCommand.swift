import ArgumentParser
import Foundation
import OCI
import Store

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print an image's manifest and config as JSON (a multi-platform image's index, or with --platform one platform's image)."
    )

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references)
    var reference: String

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var platform: PlatformOption
    /// Accepted for uniformity: the output is JSON either way.
    @OptionGroup var output: FormatOptions

    func run() throws {
        let reference = try Reference(parsing: self.reference)
        let store = try Store.open(at: storeOptions.store ?? Store.defaultPath(), create: false)
        let inspection = try store.inspect(reference, platform: try platform.parsed())
        print(String(decoding: try CanonicalJSON.encodePretty(inspection), as: UTF8.self))
    }
}
