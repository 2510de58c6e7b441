import ArgumentParser
import OCI

/// `--platform os/architecture[/variant]`: one platform's image out of a multi-platform image (an index).
struct PlatformOption: ParsableArguments {
    @Option(help: ArgumentHelp("Only the image for this platform of a multi-platform image, e.g. linux/arm64.", valueName: "OS/ARCH[/VARIANT]"))
    var platform: String?

    /// The platform asked for, if any.
    func parsed() throws -> Platform? {
        guard let platform else { return nil }
        guard let parsed = Platform(parsing: platform) else {
            throw ValidationError("--platform must be os/architecture[/variant], e.g. linux/arm64, not '\(platform)'")
        }
        return parsed
    }
}
