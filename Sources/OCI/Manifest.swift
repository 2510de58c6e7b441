/// An OCI image manifest (`application/vnd.oci.image.manifest.v1+json`).
public struct ImageManifest: Codable, Hashable, Sendable {
    public var schemaVersion: Int = 2
    public var mediaType: String? = MediaType.imageManifest
    public var artifactType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(config: Descriptor, layers: [Descriptor], annotations: [String: String]? = nil,
                subject: Descriptor? = nil, artifactType: String? = nil) {
        self.config = config
        self.layers = layers
        self.annotations = annotations
        self.subject = subject
        self.artifactType = artifactType
    }
}

/// An OCI image index (`application/vnd.oci.image.index.v1+json`), also the `index.json` of an image layout.
public struct ImageIndex: Codable, Hashable, Sendable {
    public var schemaVersion: Int = 2
    public var mediaType: String? = MediaType.imageIndex
    public var artifactType: String?
    public var manifests: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(manifests: [Descriptor], annotations: [String: String]? = nil) {
        self.manifests = manifests
        self.annotations = annotations
    }

    /// The image manifests the index lists for `platform` (see ``Platform/matches(_:)``): those whose
    /// platform is exactly it, if any, else those that match it (a variant on one side only).
    public func images(for platform: Platform) -> [Descriptor] {
        let candidates = manifests.filter { $0.platform.map(platform.matches) == true && MediaType.isImageManifest($0.mediaType) }
        let exact = candidates.filter { $0.platform == platform }
        return exact.isEmpty ? candidates : exact
    }

    /// The image manifest the index lists for `platform`: the exact one, else the first that matches.
    public func image(for platform: Platform) -> Descriptor? {
        images(for: platform).first
    }

    /// The index's images of a platform, in its order: image manifests with a platform, not buildx's
    /// attestations (platform `unknown/unknown`), which hold no files.
    public var platformImages: [Descriptor] {
        manifests.filter { MediaType.isImageManifest($0.mediaType) && $0.platform != nil && $0.platform?.os != "unknown" }
    }

    /// The platforms of the index's image manifests, in its order.
    public var platforms: [Platform] {
        manifests.compactMap { MediaType.isImageManifest($0.mediaType) ? $0.platform : nil }
    }
}

/// The `oci-layout` file at the root of an OCI image layout.
public struct ImageLayoutHeader: Codable, Hashable, Sendable {
    public var imageLayoutVersion: String = "1.0.0"
    public init() {}
}
