import ArgumentParser
import ImageDiff
import OCI

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what changed between two images: layers, files, Debian packages and configuration.",
        discussion: """
        Files are the regular files each image's layers leave (whiteouts applied), compared by content, size and mode. \
        Packages come from the Debian package records (var/lib/dpkg/status.d/ and var/lib/dpkg/status), versions ordered \
        as dpkg orders them. Exits 0 either way; --format json gives one document for scripts.
        """)

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>: the image before.", completion: StoreCompletion.references) var from: String
    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>: the image after.", completion: StoreCompletion.references) var to: String
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() throws {
        let diff = try ImageDiff.compare(try Reference(parsing: from), try Reference(parsing: to), in: storeOptions.openExisting())
        if output.json { return try printJSONDocument(diff) }
        print("\(diff.from.reference) (\(diff.from.digest)) → \(diff.to.reference) (\(diff.to.digest))")
        if diff.isEmpty { print("no differences"); return }
        print("layers: \(diff.layers.shared.count) shared, \(diff.layers.removed.count) removed, \(diff.layers.added.count) added")
        for layer in diff.layers.removed { print("  - \(layer)") }
        for layer in diff.layers.added { print("  + \(layer)") }
        if !diff.files.isEmpty { print("files: \(diff.files.count) changed") }
        for file in diff.files {
            switch file.change {
            case .added: print("  + /\(file.path)  \(file.after!.size) bytes  \(file.after!.mode)")
            case .removed: print("  - /\(file.path)  \(file.before!.size) bytes  \(file.before!.mode)")
            case .changed:
                let (old, new) = (file.before!, file.after!)
                var parts: [String] = []
                if old.sha256 != new.sha256 { parts.append(old.size == new.size ? "content (\(new.size) bytes)" : "\(old.size) → \(new.size) bytes") }
                if old.mode != new.mode { parts.append("mode \(old.mode) → \(new.mode)") }
                print("  ~ /\(file.path)  " + parts.joined(separator: ", "))
            }
        }
        if !diff.packages.isEmpty { print("packages:") }
        for package in diff.packages {
            switch package.change {
            case .added: print("  + \(package.name) \(package.after!)")
            case .removed: print("  - \(package.name) \(package.before!)")
            default: print("  \(package.change.rawValue) \(package.name) \(package.before!) → \(package.after!)")
            }
        }
        if !diff.config.isEmpty { print("config:") }
        for change in diff.config { print("  \(change.field): \(change.before ?? "(none)") → \(change.after ?? "(none)")") }
    }
}
