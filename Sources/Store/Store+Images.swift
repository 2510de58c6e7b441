import Foundation
import OCI
import SemVer

extension Store {
    /// The manifest descriptor a reference names: a version's tag, or a manifest digest of the repository.
    public func resolve(_ reference: Reference) throws(StoreError) -> Descriptor {
        switch reference.target {
        case .tag(let text):
            let version: Version
            do { version = try Version(parsing: text) } catch { throw .invalidVersion(text, reason: error.description) }
            return try readTag(reference.name, version)
        case .digest(let digest):
            guard FileSystem.exists(repositoryDirectory(reference.name)) else { throw .unknownRepository(reference.name.value) }
            let data = try readBlob(digest)
            let manifest: AnyManifest
            do { manifest = try AnyManifest(decoding: data) } catch { throw .invalidManifest(digest, reason: error.description) }
            return Descriptor(mediaType: manifest.mediaType, digest: digest, size: Int64(data.count))
        }
    }

    /// Reads and checks a manifest blob.
    public func manifest(_ digest: Digest) throws(StoreError) -> (manifest: AnyManifest, data: Data) {
        let data = try readBlob(digest)
        do { return (try AnyManifest(decoding: data), data) } catch { throw .invalidManifest(digest, reason: error.description) }
    }

    /// Every blob an image needs, its manifest first: through indexes, each manifest, config and layer once.
    public func blobs(of root: Descriptor) throws(StoreError) -> [Digest] {
        var seen = Set<Digest>()
        var blobs: [Digest] = []
        var pending = [root]
        while let descriptor = pending.popLast() {
            guard seen.insert(descriptor.digest).inserted else { continue }
            blobs.append(descriptor.digest)
            if MediaType.isManifest(descriptor.mediaType) { pending.append(contentsOf: try manifest(descriptor.digest).manifest.contents) }
        }
        return blobs
    }

    /// Reads and checks an image configuration blob.
    public func imageConfig(_ digest: Digest) throws(StoreError) -> (config: ImageConfig, data: Data) {
        let data = try readBlob(digest)
        do { return (try CanonicalJSON.decode(ImageConfig.self, from: data), data) } catch {
            throw .invalidManifest(digest, reason: "not an OCI image config (\(error))")
        }
    }
}
