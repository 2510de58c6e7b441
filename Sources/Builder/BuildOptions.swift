import Foundation
import Layers
import OCI
import SemVer

/// What to build, where to put it, and the knobs that may change the digest (compression, epoch,
/// version) or only the speed (threads).
public struct BuildOptions: Sendable {
    /// An Imagefile, or a folder holding one named `Imagefile`.
    public var path: String
    /// The store's folder.
    public var storePath: String
    public var compression: Compression = .gzip
    /// Overrides the Imagefile's `sourceDateEpoch` and `$SOURCE_DATE_EPOCH`.
    public var sourceDateEpoch: Int64?
    /// Overrides the Imagefile's `version`.
    public var version: Version?
    /// zstd worker threads; never changes the output.
    public var zstdThreads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Where URL dependencies are cached by digest.
    public var cacheDirectory: String = BuildOptions.defaultCacheDirectory()
    /// Also keep an SPDX SBOM of the image as a referrer.
    public var attachSBOM = false
    /// Also keep an in-toto SLSA provenance statement of the build as a referrer.
    public var attachProvenance = false
    /// The environment, read for `SOURCE_DATE_EPOCH`.
    public var environment: [String: String] = ProcessInfo.processInfo.environment

    public init(path: String, storePath: String) {
        self.path = path
        self.storePath = storePath
    }

    /// `$IMGBUILD_CACHE`, else `$XDG_CACHE_HOME/imgbuild`, else `~/.cache/imgbuild`.
    public static func defaultCacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["IMGBUILD_CACHE"], !explicit.isEmpty { return explicit }
        if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/imgbuild" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/imgbuild"
    }
}

/// What a build produced.
public struct BuildResult: Sendable {
    /// `name:version`
    public var reference: String
    /// The manifest's descriptor.
    public var manifest: OCI.Descriptor
    /// Whether the version was newly tagged (false when it already pointed at the same digest).
    public var newlyTagged: Bool
}
