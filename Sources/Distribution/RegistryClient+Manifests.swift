import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import OCI

extension RegistryClient {
    static let manifestAccept = [MediaType.imageManifest, MediaType.imageIndex, MediaType.dockerManifest, MediaType.dockerManifestList].joined(separator: ", ")

    /// Fetches a manifest or index by tag or digest, checks `Docker-Content-Digest` and the bytes, and
    /// refuses one over 4 MiB.
    public func manifest(_ reference: ManifestReference) async throws -> (descriptor: Descriptor, data: Data) {
        let response = try await send("get manifest \(repository):\(reference)", retryable: true, expecting: [200, 404]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/manifests/\(reference)")
            request.headers.add(name: "Accept", value: RegistryClient.manifestAccept)
            return request
        }
        if response.status.code == 404 {
            throw DistributionError.notFound("\(base)/\(repository):\(reference)")
        }
        if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > ManifestLimit.maxBytes {
            throw DistributionError.manifestTooLarge(size: length)
        }
        let body: ByteBuffer
        do { body = try await response.body.collect(upTo: ManifestLimit.maxBytes) } catch is NIOTooManyBytesError {
            throw DistributionError.manifestTooLarge(size: ManifestLimit.maxBytes + 1)
        }
        let data = Data(buffer: body)
        let actual = Digest.of(data)
        if case .digest(let expected) = reference, expected != actual {
            throw DistributionError.digestMismatch(what: "manifest \(repository)@\(expected)", expected: expected, actual: actual)
        }
        if let header = response.headers.first(name: "Docker-Content-Digest"), header != actual.description {
            throw DistributionError.digestMismatch(what: "manifest \(repository):\(reference) (Docker-Content-Digest)",
                                                   expected: (try? Digest(parsing: header)) ?? actual, actual: actual)
        }
        let contentType = response.headers.first(name: "Content-Type")?.split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) }
        let mediaType = (try? AnyManifest(decoding: data))?.mediaType ?? contentType ?? MediaType.imageManifest
        return (Descriptor(mediaType: mediaType, digest: actual, size: Int64(data.count)), data)
    }

    /// Manifests that refer to `subject`: the referrers API, else the `sha256-<hex>.{sig,sbom,att}` tags.
    public func referrers(of subject: Digest) async throws -> [Descriptor] {
        let response = try await send("list referrers of \(repository)@\(subject)", retryable: true, expecting: [200, 404, 400, 405]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/referrers/\(subject)")
            request.headers.add(name: "Accept", value: MediaType.imageIndex)
            return request
        }
        let contentType = response.headers.first(name: "Content-Type") ?? ""
        if response.status.code == 200, contentType.contains(MediaType.imageIndex) {
            let body = try await response.body.collect(upTo: ManifestLimit.maxBytes)
            if let index = try? JSONDecoder().decode(ImageIndex.self, from: Data(buffer: body)) { return index.manifests }
        } else {
            _ = try? await response.body.collect(upTo: 1 << 20)
        }
        var found: [Descriptor] = []
        for suffix in ReferrerTag.suffixes {
            let tag = ReferrerTag.tag(subject: subject, suffix: suffix)
            guard try await manifestDigest(tag) != nil else { continue }
            let (descriptor, data) = try await manifest(.tag(tag))
            guard case .image(let artifact)? = try? AnyManifest(decoding: data), artifact.subject?.digest == subject else { continue }
            var listed = descriptor
            listed.artifactType = artifact.artifactType ?? artifact.config.mediaType
            found.append(listed)
        }
        return found
    }

    /// The digest a tag points at, or nil if there is no such tag (`HEAD`).
    public func manifestDigest(_ tag: String) async throws -> Digest? {
        let response = try await send("check tag \(repository):\(tag)", retryable: true, expecting: [200, 404]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/manifests/\(tag)")
            request.method = .HEAD
            request.headers.add(name: "Accept", value: RegistryClient.manifestAccept)
            return request
        }
        guard response.status.code == 200 else { return nil }
        if let header = response.headers.first(name: "Docker-Content-Digest"), let digest = try? Digest(parsing: header) { return digest }
        return try await manifest(.tag(tag)).descriptor.digest
    }

    /// Stores a manifest under a tag or its digest, with its media type as Content-Type.
    public func putManifest(_ data: Data, mediaType: String, reference: ManifestReference) async throws {
        let response = try await send("put manifest \(repository):\(reference)", retryable: true, expecting: [201]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/manifests/\(reference)")
            request.method = .PUT
            request.headers.add(name: "Content-Type", value: mediaType)
            request.body = .bytes(ByteBuffer(data: data))
            return request
        }
        if let header = response.headers.first(name: "Docker-Content-Digest"), header != Digest.of(data).description {
            throw DistributionError.digestMismatch(what: "the registry's copy of the manifest", expected: Digest.of(data), actual: (try? Digest(parsing: header)) ?? Digest.of(data))
        }
    }
}

/// A repository on a registry as a source or destination.
public final class RegistryEndpoint: ImageSource, ImageDestination, Sendable {
    public let client: RegistryClient
    public var displayName: String { client.base + "/" + client.repository }
    public var registryLocation: (base: String, repository: String)? { (client.base, client.repository) }

    public init(client: RegistryClient) {
        self.client = client
    }

    public func manifest(_ reference: ManifestReference) async throws -> (descriptor: Descriptor, data: Data) {
        switch reference {
        case .tag(let tag): return try await client.manifest(.tag(WireTag.encode(tag)))
        case .digest: return try await client.manifest(reference)
        }
    }

    public func blob(_ descriptor: Descriptor, offset: Int64) async throws -> BlobStream {
        try await client.openBlob(descriptor, offset: offset)
    }

    public func hasBlob(_ descriptor: Descriptor) async throws -> Bool { try await client.blobExists(descriptor.digest) }

    public func putBlob(_ descriptor: Descriptor, open: @escaping BlobOpener) async throws -> Int64 {
        try await client.uploadBlob(descriptor, open: open)
    }

    public func mountBlob(_ descriptor: Descriptor, from source: any ImageSource) async throws -> Bool {
        guard let location = source.registryLocation, location.base == client.base, location.repository != client.repository else { return false }
        return try await client.mountBlob(descriptor.digest, from: location.repository)
    }

    public func putManifest(_ data: Data, descriptor: Descriptor) async throws {
        try verify(data, descriptor)
        try await client.putManifest(data, mediaType: descriptor.mediaType, reference: .digest(descriptor.digest))
    }

    public func taggedDigest(_ tag: String) async throws -> Digest? {
        try await client.manifestDigest(WireTag.encode(tag))
    }

    public func tag(_ tag: String, descriptor: Descriptor, data: Data) async throws {
        try await client.putManifest(data, mediaType: descriptor.mediaType, reference: .tag(WireTag.encode(tag)))
    }

    public func referrers(of subject: Digest) async throws -> [Descriptor] {
        try await client.referrers(of: subject)
    }

    public func putReferrer(_ data: Data, descriptor: Descriptor, subject: Digest, fallbackTag: String) async throws {
        // By tag: a registry with the referrers API indexes the subject anyway; one without finds it by the tag.
        try await client.putManifest(data, mediaType: descriptor.mediaType, reference: .tag(fallbackTag))
    }

    public func close() async { await client.shutdown() }
}
