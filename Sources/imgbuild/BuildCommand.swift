import ArgumentParser
import Builder
import BuildReplay
import BuildPipeline
import Foundation
import Layers
import SemVer
import Store
import Synchronization

struct BuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build an Imagefile into the store and tag it with its version.",
        discussion: "Progress goes to standard error; the manifest digest is the last line on standard output."
    )

    @Argument(help: "An Imagefile, or a folder holding one named 'Imagefile'.")
    var path: String = "."

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: "Layer compression: gzip or zstd.")
    var compression: String = "gzip"

    @Option(name: .customLong("source-date-epoch"), help: "Timestamp of every file and of 'created' (overrides the Imagefile and $SOURCE_DATE_EPOCH).")
    var sourceDateEpoch: Int64?

    @Option(help: "Tag this version instead of the Imagefile's.")
    var version: String?

    @Option(name: .customLong("zstd-threads"), help: ArgumentHelp("zstd worker threads (the output does not depend on it).", visibility: .hidden))
    var zstdThreads: Int?

    @Flag(name: .long, help: "Also keep an SPDX 2.3 SBOM of the image as a referrer (as `imgbuild sbom` does).")
    var sbom = false

    @Flag(name: .long, help: "Also keep an in-toto SLSA provenance statement of the build (Imagefile, context files, dependencies, base, parameters) as a referrer.")
    var provenance = false

    @Flag(name: .shortAndLong, help: "Print no progress.")
    var quiet = false

    func run() async throws {
        guard let compression = Compression(rawValue: compression) else {
            throw ValidationError("--compression must be gzip or zstd, not '\(compression)'")
        }
        if let epoch = sourceDateEpoch, epoch < 0 { throw ValidationError("--source-date-epoch must not be negative") }
        var options = BuildOptions(path: path, storePath: storeOptions.store ?? Store.defaultPath())
        options.compression = compression
        options.sourceDateEpoch = sourceDateEpoch
        options.listContextFiles = provenance
        if let version {
            do { options.version = try Version(parsing: version) } catch { throw ValidationError(error.description) }
        }
        if let zstdThreads { options.zstdThreads = max(1, zstdThreads) }
        let started = Int(Date().timeIntervalSince1970)
        let quiet = self.quiet
        // What went to standard error, for a replay of this build.
        let printed = Mutex<[UInt8]>([])
        let progress: @Sendable (String) -> Void = { line in
            guard !quiet else { return }
            printError(line)
            printed.withLock { $0 += Array((line + "\n").utf8) }
        }
        let image: WrittenImage
        do { image = try await Builder(options: options, progress: progress).build() } catch { throw PipelineError.build(error) }
        var pipeline = BuildPipeline(progress: progress)
        pipeline.attachSBOM = sbom
        pipeline.attachProvenance = provenance
        let result = try await pipeline.publish(image)
        let digestLine = "\(result.manifest.digest)\n"
        do { try FileHandle.standardOutput.write(contentsOf: Data(digestLine.utf8)) } catch {
            printError("Error: cannot write the digest to standard output: \(error.localizedDescription)")
            throw ExitCode.failure
        }
        // A version tagged anew, or attestations attached, print what a repeat would not: only a build that
        // changed nothing is remembered.
        if !result.newlyTagged, !sbom, !provenance, let command = BuildReplay.command(CommandLine.arguments),
           let record = BuildReplay.record(of: image, command: command, options: options, started: started,
                                           standardOutput: Array(digestLine.utf8), standardError: printed.withLock { $0 }) {
            BuildReplay.remember(record)
        }
    }
}
