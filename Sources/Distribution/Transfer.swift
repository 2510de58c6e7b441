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
    /// Copy only the image for this platform of a multi-platform image (its own digest travels, not the index's).
    public var platform: Platform?
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
        try refuseAmbiguous(from)
        try refuseAmbiguous(to)
        var tag: String?
        switch (to.reference, reference) {
        case (.digest?, _): throw DistributionError.invalidLocation("\(to)", reason: "a destination takes a tag, not a digest (the digest is the image's own)")
        case (.tag(let t)?, _): tag = t
        case (nil, .tag(let t)): tag = t
        case (nil, .digest): tag = nil
        }
        if case .registry = from, let wire = tag { tag = WireTag.decode(wire) }
        let opener = EndpointOpener(storePath: storePath, options: options, progress: progress)
        var result = try await opener.withEndpoints(from: from, to: to) { source, destination in
            var copier = Copier(source: source, destination: destination, progress: progress)
            copier.onBytes = onBytes
            copier.carryReferrers = carryReferrers
            copier.platform = platform
            return try await copier.copy(reference, tag: tag)
        }
        result.tag = tag
        return result
    }

    /// A registry written as `HOST/PATH` whose `HOST/PATH` is also a repository of the local store could
    /// mean either: refused, saying how to write each.
    private func refuseAmbiguous(_ location: ImageLocation) throws {
        guard case .registry(let base, let repository, let reference, .bare) = location else { return }
        let host = String(base.dropFirst("https://".count))
        // Docker Hub's names were rewritten (docker.io/app is registry-1.docker.io/library/app): check them as written too.
        var written = [host + "/" + repository]
        if host == "registry-1.docker.io" {
            let short = repository.hasPrefix("library/") ? String(repository.dropFirst("library/".count)) : repository
            written += ["docker.io/" + repository, "docker.io/" + short, "index.docker.io/" + repository, "index.docker.io/" + short]
        }
        guard let store = try? Store.open(at: storePath, create: false),
              let name = written.compactMap({ try? RepositoryName($0) }).first(where: { store.hasRepository($0) }) else { return }
        let suffix = reference.map { reference -> String in
            switch reference {
            case .tag(let tag): return ":" + tag
            case .digest(let digest): return "@" + digest.description
            }
        } ?? ""
        throw DistributionError.invalidLocation(host + "/" + repository + suffix, reason: "it names the registry \(host), and the local store also has a repository "
            + "'\(name)': write docker://\(host)/\(repository)\(suffix) for the registry, or store:\(name)\(suffix) for the store")
    }
}
