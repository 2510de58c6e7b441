import Distribution
import Foundation
import NIOCore
import OCI
import CommandLineTesting

/// An image source and destination held in memory: blobs and manifests by digest, tags, referrers, and
/// a log of what was written in which order. As a destination it checks every byte, as the real ones do.
final class MemoryEndpoint: ImageSource, ImageDestination, Sendable {
    struct Contents {
        var blobs: [Digest: Data] = [:]
        var manifests: [Digest: (descriptor: Descriptor, data: Data)] = [:]
        var tags: [String: Digest] = [:]
        var referrers: [Digest: [Descriptor]] = [:]
        /// `blob sha256:…`, `manifest sha256:…`, `tag NAME`, `referrer sha256:…`, in the order they were written.
        var written: [String] = []
        var closed = 0
    }

    let displayName: String
    var registryLocation: (base: String, repository: String)? { nil }
    let contents = Locked(Contents())
    /// Blobs served in chunks of this many bytes.
    let chunk = 1000
    /// A blob whose stream fails after its first chunk.
    let failing: Locked<Digest?> = Locked(nil)

    init(_ name: String) {
        displayName = name
    }

    var written: [String] { contents.withLock { $0.written } }

    // MARK: Filling a source

    /// Stores `data` as a blob and returns its descriptor.
    @discardableResult
    func addBlob(_ data: Data, mediaType: String = MediaType.layerGzip) -> Descriptor {
        let descriptor = Descriptor(mediaType: mediaType, digest: Digest.of(data), size: Int64(data.count))
        contents.withLock { $0.blobs[descriptor.digest] = data }
        return descriptor
    }

    /// Stores an image of `layers` (and a config), tagged `tag` when given.
    @discardableResult
    func addImage(layers: [Data], tag: String? = nil, platform: Platform? = nil) throws -> Descriptor {
        let config = addBlob(Data("{\"architecture\":\"\(platform?.architecture ?? "amd64")\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}".utf8),
                             mediaType: MediaType.imageConfig)
        let manifest = ImageManifest(config: config, layers: layers.map { addBlob($0) })
        return try addManifest(try CanonicalJSON.encode(manifest), mediaType: MediaType.imageManifest, tag: tag, platform: platform)
    }

    @discardableResult
    func addManifest(_ data: Data, mediaType: String, tag: String? = nil, platform: Platform? = nil) throws -> Descriptor {
        let descriptor = Descriptor(mediaType: mediaType, digest: Digest.of(data), size: Int64(data.count), platform: platform)
        contents.withLock { contents in
            contents.manifests[descriptor.digest] = (descriptor, data)
            if let tag { contents.tags[tag] = descriptor.digest }
        }
        return descriptor
    }

    // MARK: ImageSource

    func manifest(_ reference: ManifestReference) async throws -> (descriptor: Descriptor, data: Data) {
        try contents.withLock { contents in
            let digest: Digest? = switch reference {
            case .tag(let tag): contents.tags[tag]
            case .digest(let digest): digest
            }
            guard let digest, let found = contents.manifests[digest] else { throw DistributionError.notFound("\(displayName) \(reference)") }
            return (Descriptor(mediaType: found.descriptor.mediaType, digest: digest, size: found.descriptor.size), found.data)
        }
    }

    func blob(_ descriptor: Descriptor, offset: Int64) async throws -> BlobStream {
        guard let data = contents.withLock({ $0.blobs[descriptor.digest] }) else { throw DistributionError.notFound("\(descriptor.digest)") }
        let fails = failing.withLock { $0 == descriptor.digest }
        let pieces = stride(from: Int(offset), to: data.count, by: chunk).map { data[$0..<min($0 + chunk, data.count)] }
        return BlobStream { continuation in
            for (index, piece) in pieces.enumerated() {
                if fails && index == 1 {
                    continuation.finish(throwing: DistributionError.transport(operation: "read \(descriptor.digest)", reason: "connection reset"))
                    return
                }
                continuation.yield(ByteBuffer(bytes: piece))
            }
            continuation.finish()
        }
    }

    func referrers(of subject: Digest) async throws -> [Descriptor] {
        contents.withLock { $0.referrers[subject] ?? [] }
    }

    // MARK: ImageDestination

    func hasBlob(_ descriptor: Descriptor) async throws -> Bool {
        contents.withLock { $0.blobs[descriptor.digest] != nil }
    }

    func putBlob(_ descriptor: Descriptor, open: @escaping BlobOpener) async throws -> Int64 {
        var received = Data()
        for try await buffer in try await open(0) { received.append(contentsOf: buffer.readableBytesView) }
        let actual = Digest.of(received)
        guard actual == descriptor.digest else { throw DistributionError.digestMismatch(what: "blob", expected: descriptor.digest, actual: actual) }
        guard Int64(received.count) == descriptor.size else {
            throw DistributionError.sizeMismatch(what: "blob \(descriptor.digest)", expected: descriptor.size, actual: Int64(received.count))
        }
        contents.withLock { contents in
            contents.blobs[descriptor.digest] = received
            contents.written.append("blob \(descriptor.digest)")
        }
        return Int64(received.count)
    }

    func putManifest(_ data: Data, descriptor: Descriptor) async throws {
        let actual = Digest.of(data)
        guard actual == descriptor.digest else { throw DistributionError.digestMismatch(what: "manifest", expected: descriptor.digest, actual: actual) }
        contents.withLock { contents in
            contents.manifests[descriptor.digest] = (descriptor, data)
            contents.written.append("manifest \(descriptor.digest)")
        }
    }

    func taggedDigest(_ tag: String) async throws -> Digest? {
        contents.withLock { $0.tags[tag] }
    }

    func tag(_ tag: String, descriptor: Descriptor, data: Data) async throws {
        contents.withLock { contents in
            contents.tags[tag] = descriptor.digest
            contents.written.append("tag \(tag)")
        }
    }

    func putReferrer(_ data: Data, descriptor: Descriptor, subject: Digest, fallbackTag: String) async throws {
        try await putManifest(data, descriptor: descriptor)
        contents.withLock { contents in
            contents.referrers[subject, default: []].append(descriptor)
            contents.tags[fallbackTag] = descriptor.digest
            contents.written.append("referrer \(descriptor.digest)")
        }
    }

    func close() async {
        contents.withLock { $0.closed += 1 }
    }
}
