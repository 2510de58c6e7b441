import Foundation
import OCI

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

    /// The suite as its label's value: canonical JSON, so the same suite gives the same image config.
    public func labelValue() throws -> String {
        String(decoding: try CanonicalJSON.encode(self), as: UTF8.self)
    }

    /// The suite that an image config's labels carry, or nil when they carry none.
    public static func carried(in labels: [String: String]?) throws(LabelError) -> ImageTestSuite? {
        guard let text = labels?[label] else { return nil }
        do { return try JSONDecoder().decode(ImageTestSuite.self, from: Data(text.utf8)) } catch {
            throw LabelError(reason: "\(error)")
        }
    }

    /// The image's `dev.imgbuild.tests` label is not a suite this version of imgbuild can read.
    public struct LabelError: Error, CustomStringConvertible {
        public var reason: String
        public var description: String {
            "the image's '\(ImageTestSuite.label)' label is not a test suite (\(reason)): build the image again from its Imagefile"
        }
    }

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
