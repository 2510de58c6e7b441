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

/// Where images come from or go to: an image source can hand out manifests and blobs.
public protocol ImageSource: Sendable {
    /// A name for messages.
    var displayName: String { get }
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
public protocol ImageDestination: Sendable {
    var displayName: String { get }
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
    /// Called once everything is written (releases locks, connections).
    func finish() async throws
}

extension ImageDestination {
    public func putReferrer(_ data: Data, descriptor: Descriptor, subject: Digest, fallbackTag: String) async throws {
        try await putManifest(data, descriptor: descriptor)
    }
    public func mountBlob(_ descriptor: Descriptor, from source: any ImageSource) async throws -> Bool { false }
    public func keep(_ descriptor: Descriptor) async throws {}
    public func finish() async throws {}
}

/// Remote tags cannot hold `+`: SemVer build metadata maps to `_` on the wire, as Helm does.
public enum WireTag {
    public static func encode(_ version: String) -> String { version.replacingOccurrences(of: "+", with: "_") }
    public static func decode(_ tag: String) -> String { tag.replacingOccurrences(of: "_", with: "+") }
}
