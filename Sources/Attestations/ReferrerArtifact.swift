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
}
