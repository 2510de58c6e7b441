import Foundation
import OCI
import Store

/// push, pull, copy and export in one: from any ``ImageLocation`` to any other.
public struct Transfer: Sendable {
    public var storePath: String
    public var options: RegistryOptions
    public var progress: @Sendable (String) -> Void
    /// Also copy the artifacts that refer to the image (signatures, SBOMs, attestations).
    public var carryReferrers = true
    /// Bytes of a blob streamed so far, and its size.
    public var onBytes: @Sendable (Digest, Int64, Int64) -> Void = { _, _, _ in }

    public init(storePath: String, options: RegistryOptions, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.storePath = storePath
        self.options = options
        self.progress = progress
    }

    /// Copies the image `from` names to `to`. The tag at the destination is `to`'s own, else the
    /// source's version; an image named by digest only is kept untagged (pinned).
    public func run(from: ImageLocation, to: ImageLocation) async throws -> CopyResult {
        guard let reference = from.reference else {
            throw DistributionError.invalidLocation("\(from)", reason: "name the image: add :VERSION or @sha256:<digest>")
        }
        var tag: String?
        switch (to.reference, reference) {
        case (.digest?, _): throw DistributionError.invalidLocation("\(to)", reason: "a destination takes a tag, not a digest (the digest is the image's own)")
        case (.tag(let t)?, _): tag = t
        case (nil, .tag(let t)): tag = t
        case (nil, .digest): tag = nil
        }
        if case .registry = from, let wire = tag { tag = WireTag.decode(wire) }
        var copier = Copier(source: try source(from), destination: try destination(to), progress: progress)
        copier.onBytes = onBytes
        copier.carryReferrers = carryReferrers
        return try await copier.copy(reference, tag: tag)
    }

    private func source(_ location: ImageLocation) throws -> any ImageSource {
        switch location {
        case .store(let name, _):
            return try StoreEndpoint(store: Store.open(at: storePath, create: false), repository: name, writing: false)
        case .layout(let directory, _):
            return LayoutEndpoint(directory: directory)
        case .registry(let base, let repository, _):
            return RegistryEndpoint(client: try RegistryClient(base: base, repository: repository, push: false, options: options))
        }
    }

    private func destination(_ location: ImageLocation) throws -> any ImageDestination {
        switch location {
        case .store(let name, _):
            return try StoreEndpoint(store: Store.open(at: storePath, create: true), repository: name, writing: true)
        case .layout(let directory, _):
            return LayoutEndpoint(directory: directory)
        case .registry(let base, let repository, _):
            return RegistryEndpoint(client: try RegistryClient(base: base, repository: repository, push: true, options: options))
        }
    }
}
