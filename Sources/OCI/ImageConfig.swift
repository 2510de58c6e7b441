/// An OCI image configuration (`application/vnd.oci.image.config.v1+json`).
public struct ImageConfig: Codable, Hashable, Sendable {
    public var created: String?
    public var author: String?
    public var architecture: String
    public var os: String
    public var variant: String?
    public var config: Execution?
    public var rootfs: RootFS
    public var history: [History]?

    public init(created: String?, platform: Platform, config: Execution?, rootfs: RootFS, history: [History]?) {
        self.created = created
        self.architecture = platform.architecture
        self.os = platform.os
        self.variant = platform.variant
        self.config = config
        self.rootfs = rootfs
        self.history = history
    }

    /// The platform this configuration declares.
    public var platform: Platform { Platform(os: os, architecture: architecture, variant: variant) }

    /// How a container of the image is run. Field names are the spec's, in upper camel case.
    public struct Execution: Codable, Hashable, Sendable {
        public var user: String?
        public var exposedPorts: [String: EmptyObject]?
        public var env: [String]?
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var volumes: [String: EmptyObject]?
        public var workingDir: String?
        public var labels: [String: String]?
        public var stopSignal: String?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case user = "User", exposedPorts = "ExposedPorts", env = "Env", entrypoint = "Entrypoint"
            case cmd = "Cmd", volumes = "Volumes", workingDir = "WorkingDir", labels = "Labels"
            case stopSignal = "StopSignal"
        }
    }

    /// The layers' uncompressed digests, bottom first.
    public struct RootFS: Codable, Hashable, Sendable {
        public var type: String = "layers"
        public var diffIDs: [Digest]

        public init(diffIDs: [Digest]) { self.diffIDs = diffIDs }

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }

    /// One step of the image's history.
    public struct History: Codable, Hashable, Sendable {
        public var created: String?
        public var createdBy: String?
        public var author: String?
        public var comment: String?
        public var emptyLayer: Bool?

        public init(created: String?, createdBy: String?, comment: String? = nil, emptyLayer: Bool? = nil) {
            self.created = created
            self.createdBy = createdBy
            self.comment = comment
            self.emptyLayer = emptyLayer
        }

        enum CodingKeys: String, CodingKey {
            case created, author, comment
            case createdBy = "created_by"
            case emptyLayer = "empty_layer"
        }
    }
}

/// `{}` — the value type of `ExposedPorts` and `Volumes` entries.
public struct EmptyObject: Codable, Hashable, Sendable {
    public init() {}
}
