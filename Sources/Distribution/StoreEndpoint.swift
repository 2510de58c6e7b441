import Foundation
import NIOCore
import OCI
import SemVer
import Store
import NIOConcurrencyHelpers

/// A repository of the local store as a source or destination.
///
/// As a destination it holds the store's write lease from creation to ``close()``, so `gc` never
/// removes blobs it has written but not yet tagged, and it verifies every byte before a blob is visible.
public final class StoreEndpoint: ImageSource, ImageDestination, Sendable {
    public let store: Store
    public let repository: RepositoryName
    private let lease: NIOLockedValueBox<Store.WriteLease?>

    public var displayName: String { repository.value }
    public var registryLocation: (base: String, repository: String)? { nil }

    public init(store: Store, repository: RepositoryName, writing: Bool) throws {
        self.store = store
        self.repository = repository
        lease = NIOLockedValueBox(writing ? try store.acquireWriteLease() : nil)
    }

    public func manifest(_ reference: ManifestReference) async throws -> (descriptor: Descriptor, data: Data) {
        let descriptor: Descriptor
        switch reference {
        case .tag(let tag): descriptor = try store.resolve(Reference(name: repository, target: .tag(tag)))
        case .digest(let digest): descriptor = try store.resolve(Reference(name: repository, target: .digest(digest)))
        }
        return (descriptor, try store.readBlob(descriptor.digest))
    }

    public func blob(_ descriptor: Descriptor, offset: Int64) async throws -> BlobStream {
        guard store.hasBlob(descriptor.digest) else { throw DistributionError.store(.blobMissing(descriptor.digest)) }
        return try FileStreams.stream(path: store.blobPath(descriptor.digest), offset: offset)
    }

    public func hasBlob(_ descriptor: Descriptor) async throws -> Bool { store.hasBlob(descriptor.digest) }

    public func putBlob(_ descriptor: Descriptor, open: @escaping BlobOpener) async throws -> Int64 {
        let upload = try store.beginBlob()
        do {
            let size = try await open(0).writeVerified(to: upload.fd, expecting: descriptor)
            try upload.commit(as: descriptor.digest)
            return size
        } catch {
            upload.abandon()
            throw error
        }
    }

    public func putManifest(_ data: Data, descriptor: Descriptor) async throws {
        try verify(data, descriptor)
        try store.writeBlob(data)
    }

    public func taggedDigest(_ tag: String) async throws -> Digest? {
        do { return try store.readTag(repository, try Version(parsing: tag)).digest } catch StoreError.unknownTag, StoreError.unknownRepository {
            return nil
        }
    }

    public func tag(_ tag: String, descriptor: Descriptor, data: Data) async throws {
        let version: Version
        do { version = try Version(parsing: tag) } catch {
            throw DistributionError.invalidLocation(tag, reason: "the local store keeps SemVer versions only: \(error)")
        }
        do { try store.tag(repository, version, descriptor) } catch let StoreError.tagImmutable(_, _, existing, requested) {
            throw DistributionError.tagImmutable(destination: repository.value, tag: tag, existing: existing, requested: requested)
        }
    }

    public func referrers(of subject: Digest) async throws -> [Descriptor] {
        store.referrers(repository, subject: subject)
    }

    public func putReferrer(_ data: Data, descriptor: Descriptor, subject: Digest, fallbackTag: String) async throws {
        try await putManifest(data, descriptor: descriptor)
        try store.addReferrer(repository, subject: subject, referrer: descriptor)
        try store.setArtifactTag(repository, fallbackTag, descriptor)
    }

    /// Keeps an image fetched by digest (no version) in the repository.
    public func keep(_ descriptor: Descriptor) async throws { try store.pin(repository, descriptor) }

    public func close() async { lease.withLockedValue { $0 = nil } }
}

/// Checks manifest bytes against their descriptor and the 4 MiB limit.
func verify(_ data: Data, _ descriptor: Descriptor) throws {
    guard data.count <= ManifestLimit.maxBytes else { throw DistributionError.manifestTooLarge(size: data.count) }
    let actual = Digest.of(data)
    guard actual == descriptor.digest else { throw DistributionError.digestMismatch(what: "manifest", expected: descriptor.digest, actual: actual) }
    guard Int64(data.count) == descriptor.size else {
        throw DistributionError.sizeMismatch(what: "manifest \(descriptor.digest)", expected: descriptor.size, actual: Int64(data.count))
    }
}
