import Foundation
import OCI

/// What a copy did.
public struct CopyResult: Sendable {
    /// The root manifest (or index) copied.
    public var descriptor: Descriptor
    /// Blobs the destination already had (or mounted), and blobs sent, with their bytes.
    public var blobsSkipped = 0
    public var blobsSent = 0
    public var bytesSent: Int64 = 0
    /// Artifacts referring to the image (signatures, SBOMs, attestations) copied with it.
    public var referrersCopied = 0
    /// The tag written at the destination; nil for an image copied by digest (kept untagged).
    public var tag: String?
}

/// Copies an image from any source to any destination — store, OCI layout or registry — as one algorithm:
/// check the tag's immutability, then blobs (in parallel, skipping or mounting what the destination has,
/// streamed and verified), then child manifests, then the root manifest, then the tag.
///
/// Nothing is tagged unless everything it reaches arrived whole; a failure leaves at most unreferenced
/// blobs, which `gc` (or the registry's garbage collection) removes.
public struct Copier: Sendable {
    public var source: any ImageSource
    public var destination: any ImageDestination
    /// Blobs in flight at once.
    public var parallelism = 4
    /// Also copy the artifacts that refer to the image (signatures, SBOMs, attestations).
    public var carryReferrers = true
    /// Copy only the image for this platform when the source is an index (an image manifest is copied as it is).
    public var platform: Platform?
    /// One line per step, for people.
    public var progress: @Sendable (String) -> Void
    /// Bytes of a blob streamed so far, and its size (for progress bars).
    public var onBytes: @Sendable (_ blob: Digest, _ done: Int64, _ total: Int64) -> Void = { _, _, _ in }

    public init(source: any ImageSource, destination: any ImageDestination, progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.source = source
        self.destination = destination
        self.progress = progress
    }

    /// Copies the image `reference` names; tags it `tag` at the destination, or keeps it untagged if nil.
    public func copy(_ reference: ManifestReference, tag: String?) async throws -> CopyResult {
        var (root, rootData) = try await source.manifest(reference)
        if let platform { (root, rootData) = try await platformImage(platform, of: root, rootData, tag: tag) }
        if let tag, let existing = try await destination.taggedDigest(tag), existing != root.digest {
            throw DistributionError.tagImmutable(destination: destination.displayName, tag: tag, existing: existing, requested: root.digest)
        }
        // Gather child manifests (of an index) and every blob.
        var manifests: [(Descriptor, Data)] = []
        var blobs: [Descriptor] = []
        var seen = Set<Digest>()
        func gather(_ descriptor: Descriptor, _ data: Data) async throws {
            let parsed: AnyManifest
            do { parsed = try AnyManifest(decoding: data) } catch {
                throw DistributionError.invalidLocation(source.displayName, reason: "manifest \(descriptor.digest): \(error)")
            }
            switch parsed {
            case .image(let image):
                for blob in [image.config] + image.layers where seen.insert(blob.digest).inserted { blobs.append(blob) }
            case .index(let index):
                for child in index.manifests where seen.insert(child.digest).inserted {
                    let (childDescriptor, childData) = try await source.manifest(.digest(child.digest))
                    try await gather(childDescriptor, childData)
                    manifests.append((childDescriptor, childData))
                }
            }
        }
        try await gather(root, rootData)

        var result = CopyResult(descriptor: root)
        try await withThrowingTaskGroup(of: (sent: Bool, bytes: Int64).self) { group in
            var pending = blobs[...]
            func startNext() {
                guard let blob = pending.popFirst() else { return }
                group.addTask { try await transfer(blob) }
            }
            for _ in 0..<parallelism { startNext() }
            while let outcome = try await group.next() {
                if outcome.sent { result.blobsSent += 1; result.bytesSent += outcome.bytes } else { result.blobsSkipped += 1 }
                startNext()
            }
        }
        for (descriptor, data) in manifests { try await destination.putManifest(data, descriptor: descriptor) }
        try await destination.putManifest(rootData, descriptor: root)
        if let tag {
            try await destination.tag(tag, descriptor: root, data: rootData)
        } else {
            try await destination.keep(root)
        }
        if carryReferrers {
            // A multi-platform image's SBOMs refer to each platform's image, not to the index.
            for digest in [root.digest] + manifests.map(\.0.digest) { result.referrersCopied += try await copyReferrers(of: digest) }
        }
        progress("\(tag.map { "\(destination.displayName):\($0)" } ?? destination.displayName) \(root.digest): \(result.blobsSent) blob(s) sent (\(result.bytesSent) bytes), \(result.blobsSkipped) already there")
        return result
    }

    /// The image for `platform` of the root: the index's image for it, or the root itself when it is an
    /// image of that platform (anything else is refused, as an index without it is).
    private func platformImage(_ platform: Platform, of root: Descriptor, _ data: Data, tag: String?) async throws -> (Descriptor, Data) {
        let parsed: AnyManifest
        do { parsed = try AnyManifest(decoding: data) } catch {
            throw DistributionError.invalidLocation(source.displayName, reason: "manifest \(root.digest): \(error)")
        }
        switch parsed {
        case .index(let index):
            guard let child = index.image(for: platform) else {
                throw DistributionError.platformMissing(source.displayName, platform: platform, offered: index.platforms)
            }
            progress("note: only the \(platform) image of \(root.digest) is copied, as \(child.digest)\(tag.map { "; \($0) names it there, not the index" } ?? ""); "
                     + "what refers to the index (its signature, its test record) stays behind")
            return try await source.manifest(.digest(child.digest))
        case .image(let image):
            let config = try await source.smallBlob(image.config)
            let own: Platform
            do { own = try JSONDecoder().decode(ImageConfig.self, from: config).platform } catch {
                throw DistributionError.invalidLocation(source.displayName, reason: "config \(image.config.digest): \(error)")
            }
            guard own.matches(platform) else { throw DistributionError.platformMissing(source.displayName, platform: platform, offered: [own]) }
            return (root, data)
        }
    }

    /// Copies every artifact that refers to `subject`, with its blobs; returns how many.
    private func copyReferrers(of subject: Digest) async throws -> Int {
        var copied = 0
        for referrer in try await source.referrers(of: subject) {
            let (descriptor, data) = try await source.manifest(.digest(referrer.digest))
            guard case .image(let artifact) = try AnyManifest(decoding: data), artifact.subject?.digest == subject else { continue }
            for blob in [artifact.config] + artifact.layers { _ = try await transfer(blob) }
            var stored = descriptor
            stored.artifactType = artifact.artifactType ?? artifact.config.mediaType
            try await destination.putReferrer(data, descriptor: stored, subject: subject,
                                              fallbackTag: ReferrerTag.tag(subject: subject, artifactType: stored.artifactType))
            progress("\(referrer.digest.description.prefix(19)): referrer (\(stored.artifactType ?? "artifact")) copied")
            copied += 1
        }
        return copied
    }

    private func transfer(_ blob: Descriptor) async throws -> (sent: Bool, bytes: Int64) {
        if try await destination.hasBlob(blob) {
            progress("\(blob.digest.description.prefix(19)): already there")
            return (false, 0)
        }
        if try await destination.mountBlob(blob, from: source) {
            progress("\(blob.digest.description.prefix(19)): mounted")
            return (false, 0)
        }
        progress("\(blob.digest.description.prefix(19)): sending \(blob.size) bytes")
        let source = self.source
        let onBytes = self.onBytes
        let bytes = try await destination.putBlob(blob) { offset in
            let counted = Counter(offset)
            let stream = try await source.blob(blob, offset: offset)
            let box = IteratorBox(stream.makeAsyncIterator())
            return BlobStream(unfolding: {
                guard let chunk = try await box.next() else { return nil }
                onBytes(blob.digest, counted.add(Int64(chunk.readableBytes)), blob.size)
                return chunk
            })
        }
        progress("\(blob.digest.description.prefix(19)): done")
        return (true, bytes)
    }
}
