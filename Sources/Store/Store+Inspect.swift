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
    /// The image for `platform` of the image `descriptor` names: its own when it is an image manifest of
    /// that platform, or the index's manifest for it.
    public func platformImage(_ descriptor: Descriptor, platform: Platform) throws(StoreError) -> Descriptor {
        switch try manifest(descriptor.digest).manifest {
        case .index(let index):
            guard let child = index.image(for: platform) else { throw .platformNotInImage(descriptor.digest, platform: platform, offered: index.platforms) }
            return child
        case .image(let image):
            let own = try imageConfig(image.config.digest).config.platform
            guard own.matches(platform) else { throw .platformNotInImage(descriptor.digest, platform: platform, offered: [own]) }
            return descriptor
        }
    }

    /// The manifest (or index) and config of an image, for display; with `platform`, those of the
    /// index's image for that platform.
    public func inspect(_ reference: Reference, platform: Platform? = nil) throws(StoreError) -> ImageInspection {
        var descriptor = try resolve(reference)
        if let platform { descriptor = try platformImage(descriptor, platform: platform) }
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
