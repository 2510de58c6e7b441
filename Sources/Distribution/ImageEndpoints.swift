import Foundation
import OCI

/// What a manifest is asked for by.
public enum ManifestReference: Sendable, Equatable, CustomStringConvertible {
    case tag(String)
    case digest(Digest)

    public var description: String {
        switch self {
        case .tag(let tag): return tag
        case .digest(let digest): return digest.description
        }
    }
}

/// What every source and destination has: a name for messages, and resources to let go of.
public protocol ImageEndpoint: Sendable {
    /// A name for messages.
    var displayName: String { get }
    /// Releases what the endpoint holds (a store's write lease, a registry client's connections,
    /// scratch files), whether or not the copy succeeded. Whoever opened the endpoint closes it, once.
    func close() async
}

extension ImageEndpoint {
    public func close() async {}
}

/// Where images come from: an image source can hand out manifests and blobs.
public protocol ImageSource: ImageEndpoint {
    /// The manifest (or index) bytes and their descriptor; the bytes are checked against the digest.
    func manifest(_ reference: ManifestReference) async throws -> (descriptor: Descriptor, data: Data)
    /// The blob's bytes from `offset`.
    func blob(_ descriptor: Descriptor, offset: Int64) async throws -> BlobStream
    /// Where this source is on a registry, for cross-repository mounts; nil for local sources.
    var registryLocation: (base: String, repository: String)? { get }
    /// Manifests that refer to `subject` (signatures, SBOMs, attestations).
    func referrers(of subject: Digest) async throws -> [Descriptor]
}

extension ImageSource {
    public func referrers(of subject: Digest) async throws -> [Descriptor] { [] }
}

/// An image destination receives blobs, then manifests, then tags. It verifies what it stores.
public protocol ImageDestination: ImageEndpoint {
    func hasBlob(_ descriptor: Descriptor) async throws -> Bool
    /// Stores a blob read through `open`, verifying its digest and size. Returns the bytes sent.
    func putBlob(_ descriptor: Descriptor, open: @escaping BlobOpener) async throws -> Int64
    /// Tries a cross-repository mount from `source`; true if the blob is now present.
    func mountBlob(_ descriptor: Descriptor, from source: any ImageSource) async throws -> Bool
    /// Stores a manifest by digest.
    func putManifest(_ data: Data, descriptor: Descriptor) async throws
    /// The digest a tag points at, if it exists.
    func taggedDigest(_ tag: String) async throws -> Digest?
    /// Points a tag at a stored manifest.
    func tag(_ tag: String, descriptor: Descriptor, data: Data) async throws
    /// Keeps a manifest copied by digest, without a tag (a pin in the store, an unnamed index entry in a
    /// layout; a registry keeps it already).
    func keep(_ descriptor: Descriptor) async throws
    /// Stores an artifact manifest that refers to `subject`, where the referrers API (or, failing that,
    /// `fallbackTag`) finds it.
    func putReferrer(_ data: Data, descriptor: Descriptor, subject: Digest, fallbackTag: String) async throws
}

extension ImageDestination {
    public func putReferrer(_ data: Data, descriptor: Descriptor, subject: Digest, fallbackTag: String) async throws {
        try await putManifest(data, descriptor: descriptor)
    }
    public func mountBlob(_ descriptor: Descriptor, from source: any ImageSource) async throws -> Bool { false }
    public func keep(_ descriptor: Descriptor) async throws {}
}

/// Remote tags cannot hold `+`: SemVer build metadata maps to `_` on the wire, as Helm does.
public enum WireTag {
    public static func encode(_ version: String) -> String { version.replacingOccurrences(of: "+", with: "_") }
    public static func decode(_ tag: String) -> String { tag.replacingOccurrences(of: "_", with: "+") }
}
