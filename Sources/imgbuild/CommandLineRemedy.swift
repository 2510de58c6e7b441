import ArgumentParser
import Builder
import BuildPipeline
import Distribution
import Store

/// imgbuild's flags and commands for what its libraries report in their own terms: a store error says
/// "use an existing store", and imgbuild adds "--store DIR or IMGBUILD_STORE". The libraries serve
/// imgdeploy too, whose command line is another.
enum CommandLineRemedy {
    /// What imgbuild's command line offers against `error`, if anything.
    static func hint(for error: any Error) -> String? {
        switch error {
        case let error as StoreError: hint(store: error)
        case let error as DistributionError: hint(distribution: error)
        case let BuildError.store(error): hint(store: error)
        case let BuildError.unusableBase(_, _, _, cause?): hint(for: cause)
        case let PipelineError.build(error): hint(for: error)
        case let PipelineError.store(error): hint(store: error)
        case let PipelineError.attestationsNotWritten(_, cause): hint(for: cause)
        case let PipelineError.testRecordNotWritten(_, cause): hint(for: cause)
        case let PipelineError.testsNotRun(_, cause): hint(for: cause)
        default: nil
        }
    }

    /// `error` with imgbuild's hint appended, for ArgumentParser to print; errors of the parser itself
    /// (usage, help, version, exit codes) unchanged.
    static func explained(_ error: any Error) -> any Error {
        guard let hint = hint(for: error) else { return error }
        return ExplainedError(message: "\(error) (\(hint))")
    }

    private static func hint(store error: StoreError) -> String? {
        switch error {
        case .notAStore, .readOnly: "imgbuild: the store is --store DIR, else $IMGBUILD_STORE, else $XDG_DATA_HOME/imgbuild, else ~/.local/share/imgbuild"
        case .blobCorrupt, .corruptTag, .gcRefused: "imgbuild: 'imgbuild fsck' checks every blob and tag"
        case let .unknownTag(repository, _): "imgbuild: 'imgbuild tags \(repository)' lists its versions"
        case .unknownRepository: "imgbuild: 'imgbuild images' lists the repositories"
        case .noMatchingVersion: "imgbuild: --include-prerelease"
        default: nil
        }
    }

    private static func hint(distribution error: DistributionError) -> String? {
        switch error {
        case .unauthorized:
            "imgbuild: 'imgbuild login', --username with --password-stdin, IMGBUILD_USERNAME/IMGBUILD_PASSWORD, or ~/.docker/config.json"
        case .untrustedCertificate: "imgbuild: --ca-file PEM"
        case .insecureRefused: "imgbuild: --insecure"
        case let .store(error): hint(store: error)
        default: nil
        }
    }
}

/// A library's error with imgbuild's hint, as printed.
struct ExplainedError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
