import Foundation
import OCI
import Store

/// Writes an artifact that refers to an image: one layer of `mediaType`, the empty config, `subject`
/// the image; registered for the referrers API and tagged `tag` (cosign's scheme).
public enum ReferrerArtifact {
    public static func store(_ payload: Data, mediaType: String, annotations: [String: String]? = nil, artifactType: String,
                      subject image: Descriptor, repository: RepositoryName, in store: Store, tag: String) throws -> Descriptor {
        let payloadDigest = try store.writeBlob(payload)
        let empty = Data("{}".utf8)
        let emptyDigest = try store.writeBlob(empty)
        let manifest = ImageManifest(
            config: Descriptor(mediaType: MediaType.emptyJSON, digest: emptyDigest, size: Int64(empty.count)),
            layers: [Descriptor(mediaType: mediaType, digest: payloadDigest, size: Int64(payload.count), annotations: annotations)],
            subject: Descriptor(mediaType: image.mediaType, digest: image.digest, size: image.size),
            artifactType: artifactType)
        let data = try CanonicalJSON.encode(manifest)
        let digest = try store.writeBlob(data)
        let descriptor = Descriptor(mediaType: MediaType.imageManifest, digest: digest, size: Int64(data.count), artifactType: artifactType)
        try store.addReferrer(repository, subject: image.digest, referrer: descriptor)
        try store.setArtifactTag(repository, tag, descriptor)
        return descriptor
    }

    /// One artifact of a kind that refers to an image, with its single layer's descriptor and bytes.
    public struct Loaded {
        public var digest: Digest
        public var layer: Descriptor
        public var payload: Data
    }

    /// The artifacts of `artifactType` listed as referring to `image`: each loaded, or why it cannot be
    /// (not a one-layer manifest, another subject, its payload missing). Empty when there are none.
    public static func referring(to image: Digest, artifactType: String, repository: RepositoryName, in store: Store)
        -> [(digest: Digest, loaded: Result<Loaded, Problem>)] {
        store.referrers(repository, subject: image).filter { $0.artifactType == artifactType }.map { candidate in
            guard let parsed = try? store.manifest(candidate.digest).manifest, case .image(let manifest) = parsed,
                  let layer = manifest.layers.first else {
                return (candidate.digest, .failure(Problem(reason: "not an artifact manifest")))
            }
            guard manifest.subject?.digest == image else { return (candidate.digest, .failure(Problem(reason: "it refers to another image"))) }
            guard let payload = try? store.readBlob(layer.digest) else { return (candidate.digest, .failure(Problem(reason: "its payload blob is missing"))) }
            return (candidate.digest, .success(Loaded(digest: candidate.digest, layer: layer, payload: payload)))
        }
    }

    /// Why a listed artifact cannot be used.
    public struct Problem: Error {
        public var reason: String
    }
}
