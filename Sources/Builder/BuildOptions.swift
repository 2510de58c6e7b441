import Foundation
import Imagefile
import Layers
import OCI
import SemVer
import Store

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
    /// List every context file the image takes (``WrittenImage/contextFiles``), as provenance needs:
    /// the context is then walked even where a snapshot says nothing changed.
    public var listContextFiles = false
    /// The environment, read for `SOURCE_DATE_EPOCH`.
    public var environment: [String: String] = ProcessInfo.processInfo.environment

    public init(path: String, storePath: String) {
        self.path = path
        self.storePath = storePath
    }

    /// `$IMGBUILD_CACHE`, else `$XDG_CACHE_HOME/imgbuild`, else `~/.cache/imgbuild`.
    public static func defaultCacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        defaultCacheDirectory { environment[$0] }
    }

    /// The same, with each variable looked up by `variable`: a build's replay asks without making a
    /// dictionary of the environment.
    public static func defaultCacheDirectory(variable: (String) -> String?) -> String {
        if let explicit = variable("IMGBUILD_CACHE"), !explicit.isEmpty { return explicit }
        if let cache = variable("XDG_CACHE_HOME"), !cache.isEmpty { return cache + "/imgbuild" }
        let home = variable("HOME").flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/imgbuild"
    }
}

/// An image the builder wrote into the store, not yet tagged, with what went into it.
public struct WrittenImage: Sendable {
    public var imagefile: Imagefile
    /// The version to tag: the Imagefile's, or the one the options name.
    public var version: Version
    /// The manifest's descriptor: the image manifest, or the index of a multi-platform image.
    public var manifest: OCI.Descriptor
    public var store: Store
    /// Keeps `gc` from collecting the image's blobs until it is tagged: drop it after the tag.
    public var lease: Store.WriteLease
    public var epoch: Int64
    /// The image's platform (the first one of a multi-platform image).
    public var platform: Platform
    /// A multi-platform image's manifests, each with its platform, in the Imagefile's order; empty for one platform.
    public var platformImages: [OCI.Descriptor] = []
    public var compression: Compression
    /// The digest of the base the Imagefile names (an image manifest or an index), when it names one.
    public var baseDigest: Digest?
    /// Every context file copied into the `runtime` and `code` layers, by path on this machine, as the
    /// build read them; nil unless ``BuildOptions/listContextFiles``.
    public var contextFiles: [String]?
    /// Whether the build wrote no layer anew and walked no context section: every layer came from the
    /// layer cache, every context section's files stat as its snapshot says (a no-op rebuild).
    public var rebuiltNothing = false
    /// The context sections that were not read because their snapshots held.
    public var contextSnapshots: [ContextSnapshotUse] = []

    /// `name:version`
    public var reference: String { "\(imagefile.name):\(version)" }
}

/// A context section's snapshot in the build cache, and what it vouched for when a build relied on it:
/// while the same snapshot (``contents``) still holds, the section's files are the ones that build took.
public struct ContextSnapshotUse: Sendable, Equatable {
    public var key: Digest
    public var contents: Digest

    public init(key: Digest, contents: Digest) {
        self.key = key
        self.contents = contents
    }

    /// Whether the cache still holds this snapshot and every folder and file of the section stats as it
    /// says.
    public func holds(cacheDirectory: String) -> Bool {
        LayerCache(cacheDirectory: cacheDirectory).snapshot(key)?.isUnchanged(from: contents) ?? false
    }
}

extension Builder {
    /// Where a URL dependency (or a locked package) with this digest is kept once downloaded.
    public static func downloadedFile(_ digest: Digest, cacheDirectory: String) -> String {
        DependencyFetcher.downloadsDirectory(cacheDirectory) + "/" + digest.hex
    }

    /// Who this process reads files as (user, groups, capabilities, id maps): what a file's readability
    /// depends on besides the file. Nil when `/proc` does not tell.
    public static var readerIdentity: String? { LayerCache.reader }
}
