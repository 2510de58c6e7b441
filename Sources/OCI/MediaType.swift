/// Media types of the OCI image spec v1.1 (and the Docker v2 schema 2 types that registries still serve).
public enum MediaType {
    public static let imageManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let imageIndex = "application/vnd.oci.image.index.v1+json"
    public static let imageConfig = "application/vnd.oci.image.config.v1+json"
    public static let layerTar = "application/vnd.oci.image.layer.v1.tar"
    public static let layerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let layerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let emptyJSON = "application/vnd.oci.empty.v1+json"
    public static let layoutHeader = "application/vnd.oci.layout.header.v1+json"

    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

    /// The media types of manifests and indexes: a descriptor of one of these points at JSON that
    /// references further blobs.
    public static let manifestTypes: Set<String> = [imageManifest, imageIndex, dockerManifest, dockerManifestList]

    /// Whether a descriptor of this media type points at a manifest or an index.
    public static func isManifest(_ mediaType: String) -> Bool { manifestTypes.contains(mediaType) }

    /// An image manifest (OCI's or Docker's), not an index.
    public static func isImageManifest(_ mediaType: String) -> Bool { mediaType == imageManifest || mediaType == dockerManifest }
}

/// Annotation keys predefined by the OCI image spec.
public enum AnnotationKey {
    public static let created = "org.opencontainers.image.created"
    public static let version = "org.opencontainers.image.version"
    public static let refName = "org.opencontainers.image.ref.name"
    public static let title = "org.opencontainers.image.title"
    public static let baseDigest = "org.opencontainers.image.base.digest"
    public static let baseName = "org.opencontainers.image.base.name"
}
