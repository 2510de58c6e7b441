import Distribution
import Foundation
import OCI
import Testing
import TestScheduling

@Suite("Copier, between endpoints in memory", .mayBlock)
struct CopierTests {
    /// Bytes that differ per seed, `count` long.
    func bytes(_ seed: UInt8, count: Int) -> Data { Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }) }

    @Test("blobs arrive before the manifest and the manifest before the tag; a second copy sends nothing")
    func order() async throws {
        let source = MemoryEndpoint("source")
        let destination = MemoryEndpoint("destination")
        let image = try source.addImage(layers: [bytes(1, count: 4_500), bytes(2, count: 10)], tag: "1.0.0")
        let first = try await Copier(source: source, destination: destination).copy(.tag("1.0.0"), tag: "1.0.0")
        #expect(first.descriptor.digest == image.digest)
        #expect(first.blobsSent == 3 && first.blobsSkipped == 0)
        let written = destination.written
        #expect(written.count == 5, "\(written)")
        #expect(written.prefix(3).allSatisfy { $0.hasPrefix("blob ") }, "\(written)")
        #expect(written.suffix(2) == ["manifest \(image.digest)", "tag 1.0.0"], "\(written)")
        #expect(first.bytesSent == Int64(destination.contents.withLock { $0.blobs.values.reduce(0) { $0 + $1.count } }))

        let second = try await Copier(source: source, destination: destination).copy(.tag("1.0.0"), tag: "1.0.0")
        #expect(second.blobsSent == 0 && second.blobsSkipped == 3 && second.bytesSent == 0)
    }

    @Test("a tag that names another image is refused before a byte moves")
    func immutableTag() async throws {
        let source = MemoryEndpoint("source")
        let destination = MemoryEndpoint("destination")
        try source.addImage(layers: [bytes(1, count: 100)], tag: "1.0.0")
        let other = try destination.addImage(layers: [bytes(9, count: 100)], tag: "1.0.0")
        let error = await #expect(throws: DistributionError.self) {
            try await Copier(source: source, destination: destination).copy(.tag("1.0.0"), tag: "1.0.0")
        }
        guard case .tagImmutable(_, "1.0.0", let existing, _)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(existing == other.digest)
        #expect(destination.written.isEmpty)
        #expect(destination.contents.withLock { $0.tags["1.0.0"] } == other.digest)
    }

    @Test("a blob whose bytes do not match its digest, or whose stream breaks: the copy fails and nothing is tagged")
    func brokenBlob() async throws {
        for breakage in ["wrong bytes", "broken stream"] {
            let source = MemoryEndpoint("source")
            let destination = MemoryEndpoint("destination")
            let layer = bytes(3, count: 5_000)
            let image = try source.addImage(layers: [layer], tag: "1.0.0")
            let layerDigest = Digest.of(layer)
            if breakage == "wrong bytes" {
                source.contents.withLock { $0.blobs[layerDigest] = bytes(4, count: 5_000) }
            } else {
                source.failing.withLock { $0 = layerDigest }
            }
            await #expect(throws: DistributionError.self, "\(breakage)") {
                try await Copier(source: source, destination: destination).copy(.tag("1.0.0"), tag: "1.0.0")
            }
            let written = destination.written
            #expect(!written.contains("manifest \(image.digest)") && !written.contains("tag 1.0.0"), "\(breakage): \(written)")
            #expect(!written.contains("blob \(layerDigest)"), "\(breakage): \(written)")
        }
    }

    @Test("an index: each platform's manifest arrives before the index, and a layer both share travels once")
    func index() async throws {
        let source = MemoryEndpoint("source")
        let destination = MemoryEndpoint("destination")
        let shared = bytes(5, count: 2_000)
        let amd64 = try source.addImage(layers: [shared, bytes(6, count: 10)], platform: Platform(os: "linux", architecture: "amd64"))
        let arm64 = try source.addImage(layers: [shared, bytes(7, count: 10)], platform: Platform(os: "linux", architecture: "arm64"))
        let index = try source.addManifest(try CanonicalJSON.encode(ImageIndex(manifests: [amd64, arm64])), mediaType: MediaType.imageIndex, tag: "2.0.0")
        let result = try await Copier(source: source, destination: destination).copy(.digest(index.digest), tag: nil)
        // Two configs, one shared layer, two own layers.
        #expect(result.blobsSent == 5)
        let written = destination.written
        let position = { (entry: String) in written.firstIndex(of: entry) ?? Int.max }
        #expect(position("manifest \(amd64.digest)") < position("manifest \(index.digest)"), "\(written)")
        #expect(position("manifest \(arm64.digest)") < position("manifest \(index.digest)"), "\(written)")
        #expect(written.filter { $0 == "blob \(Digest.of(shared))" }.count == 1)
        #expect(!written.contains { $0.hasPrefix("tag ") }, "copied by digest: kept untagged")
    }

    @Test("artifacts that refer to the image travel with it, unless told not to")
    func referrers() async throws {
        for carry in [true, false] {
            let source = MemoryEndpoint("source")
            let destination = MemoryEndpoint("destination")
            let image = try source.addImage(layers: [bytes(8, count: 10)], tag: "1.0.0")
            let payload = source.addBlob(Data("{\"sbom\":true}".utf8), mediaType: "application/spdx+json")
            let empty = source.addBlob(Data("{}".utf8), mediaType: MediaType.emptyJSON)
            let artifact = ImageManifest(config: empty, layers: [payload], subject: image, artifactType: "application/spdx+json")
            let referrer = try source.addManifest(try CanonicalJSON.encode(artifact), mediaType: MediaType.imageManifest)
            source.contents.withLock { $0.referrers[image.digest] = [referrer] }
            var copier = Copier(source: source, destination: destination)
            copier.carryReferrers = carry
            let result = try await copier.copy(.tag("1.0.0"), tag: "1.0.0")
            #expect(result.referrersCopied == (carry ? 1 : 0))
            let stored = destination.contents.withLock { $0.referrers[image.digest] ?? [] }
            #expect(stored.map(\.digest) == (carry ? [referrer.digest] : []))
            #expect(destination.contents.withLock { $0.blobs[payload.digest] != nil } == carry)
        }
    }
}
