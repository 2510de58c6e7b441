/// The `tests:` section of an Imagefile: what must hold of the built image before its version is tagged.
///
/// It is kept in the image config's `dev.imgbuild.tests` label (as JSON), so `imgbuild test REF` can run
/// it again at any time.
public struct ImageTestSuite: Sendable, Codable, Equatable {
    public var files: [FileCheck] = []
    public var config: ConfigCheck?
    public var commands: [CommandCheck] = []

    public init(files: [FileCheck] = [], config: ConfigCheck? = nil, commands: [CommandCheck] = []) {
        self.files = files
        self.config = config
        self.commands = commands
    }

    public var isEmpty: Bool { files.isEmpty && config == nil && commands.isEmpty }

    /// The label that carries the suite in the image config.
    public static let label = "dev.imgbuild.tests"

    /// A file of the image: present or absent, and optionally its mode, owner and contents.
    public struct FileCheck: Sendable, Codable, Equatable {
        /// Absolute path in the image.
        public var path: String
        /// false: the path must not exist.
        public var exists: Bool = true
        public var mode: UInt32?
        /// `uid:gid`
        public var owner: String?
        /// A regular expression the file's contents must match.
        public var contains: String?
    }

    /// Fields of the image config; each given one must be equal (env: each given variable).
    public struct ConfigCheck: Sendable, Codable, Equatable {
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var env: [String: String]?
        public var user: String?
        public var workdir: String?
        public var ports: [Int]?
    }

    /// A command run inside the image with the deployer's runtime (runc), with no network.
    public struct CommandCheck: Sendable, Codable, Equatable {
        public var run: [String]
        public var exitCode: Int32 = 0
        /// A regular expression its output (stdout and stderr together) must match.
        public var output: String?
        public var timeoutMilliseconds: Int64 = 30_000
    }
}
