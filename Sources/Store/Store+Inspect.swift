import OCI

/// What `imgbuild inspect` shows of an image.
public struct ImageInspection: Encodable, Sendable {
    public var reference: String
    public var digest: Digest
    public var mediaType: String
    public var manifest: ImageManifest?
    public var index: ImageIndex?
    public var config: ImageConfig?
}

extension Store {
    /// The manifest (or index) and config of an image, for display.
    public func inspect(_ reference: Reference) throws(StoreError) -> ImageInspection {
        let descriptor = try resolve(reference)
        var inspection = ImageInspection(reference: reference.description, digest: descriptor.digest, mediaType: descriptor.mediaType)
        switch try manifest(descriptor.digest).manifest {
        case .image(let image):
            inspection.manifest = image
            inspection.config = try imageConfig(image.config.digest).config
        case .index(let index):
            inspection.index = index
        }
        return inspection
    }
}
