import DebianArchive
import DocumentReader
import Glob
import OCI
import SemVer

/// A parsed and validated Imagefile: what to build, from what, and how the image runs.
///
/// Paths of copies and local dependencies are as written, relative to ``contextDirectory``.
public struct Imagefile: Sendable {
    /// The Imagefile's own path, for messages.
    public var path: String
    /// The folder holding the Imagefile: the build context.
    public var contextDirectory: String
    public var name: RepositoryName
    public var version: Version
    public var base: Base
    /// The target platform of a one-platform image; nil means the host's (or the base's).
    public var platform: Platform?
    /// The platforms of a multi-platform image (`platforms:`), in the Imagefile's order: the version then
    /// tags an OCI image index with one image manifest per platform. Nil for a one-platform image.
    public var platforms: [Platform]?
    /// The timestamp of every file and of the config's `created`, if the Imagefile fixes it.
    public var sourceDateEpoch: Int64?
    public var dependencies: [Dependency]
    /// The Debian archives `packages` are resolved from (by `imgbuild lock`), in order of preference.
    public var repositories: [PackageRepository] = []
    /// Debian packages, installed with their dependency closure as `Imagefile.lock` pins it.
    public var packages: [PackageRequest] = []
    public var runtime: [Copy]
    public var code: [Copy]
    public var config: RunConfig
    /// What must hold of the image before its version is tagged.
    public var tests: ImageTestSuite

    /// The image the new layers go on top of.
    public enum Base: Sendable, Equatable {
        case scratch
        /// An image in the local store, named by manifest digest.
        case image(Reference)
    }

    /// A third-party artefact, pinned by SHA-256.
    public struct Dependency: Sendable {
        public enum Source: Sendable, Equatable {
            /// A Debian package: its `data.tar.*` is unpacked at the root.
            case deb(path: String)
            /// Any archive libarchive reads, unpacked at `destination`.
            case archive(path: String)
            /// An archive (or `.deb`) fetched over HTTP(S) once and cached by its digest.
            case url(String)
        }
        public var source: Source
        public var sha256: Digest
        /// Where the archive's contents go in the image (a layer path, "" for the root).
        public var destination: String
        /// The one platform whose image gets this dependency; nil for every platform.
        public var platform: Platform?
        public var location: SourceLocation
        /// `NAME VERSION` of a package `Imagefile.lock` pins (the dependency stands for it); nil for the
        /// Imagefile's own `dependencies`.
        public var lockedPackage: String?
        /// The size the lock gives for it: a download that goes past it is stopped.
        public var expectedSize: Int64?

        public init(source: Source, sha256: Digest, destination: String, platform: Platform?, location: SourceLocation) {
            self.source = source
            self.sha256 = sha256
            self.destination = destination
            self.platform = platform
            self.location = location
        }

        /// Whether the image for `target` gets this dependency.
        public func applies(to target: Platform) -> Bool {
            platform.map { $0.matches(target) } ?? true
        }
    }

    /// A Debian archive (`repositories` entry): a suite and its components, signed by a keyring.
    public struct PackageRepository: Sendable, Equatable {
        /// As written: an http(s) address, one with `${VARIABLE}`s, or `system` (the machine's apt sources).
        public var url: String
        public var suite: String
        public var components: [String]
        /// OpenPGP keys the suite's `InRelease` must be signed with (relative to the Imagefile's folder, or
        /// absolute); nil only with `system`, whose apt sources name their keys.
        public var keyring: String?
        /// False (`checkValidUntil: false`) for a snapshot archive, whose Release is old on purpose.
        public var checkValidUntil: Bool = true
        public var location: SourceLocation

        public static func == (a: PackageRepository, b: PackageRepository) -> Bool {
            a.url == b.url && a.suite == b.suite && a.components == b.components && a.keyring == b.keyring
        }
    }

    /// A `packages` entry: a name, with a version relation if it has one, or `?essential`.
    public struct PackageRequest: Sendable {
        /// As written.
        public var text: String
        /// Nil for `?essential` (every package marked Essential).
        public var relation: Relation?
        public var location: SourceLocation
    }

    /// Where the lock of the Imagefile's `packages` is kept: beside it, with `.lock` added to its name.
    public var lockPath: String { path + ".lock" }

    /// The most platforms one Imagefile builds (imgdeploy reads at most 64 entries of an index).
    public static let maxPlatforms = 64

    /// The platforms the version is built for: `platforms`, else the one `platform` (nil: decided by the
    /// base or the host).
    public var targets: [Platform?] {
        platforms ?? [platform]
    }

    /// A `copy` entry of the `runtime` or `code` section.
    public struct Copy: Sendable {
        public var source: String
        public var destination: String
        public var excludes: [Glob]
        public var fileMode: UInt32?
        public var owner: Owner?
        public var location: SourceLocation
    }

    /// A numeric owner, `uid:gid`.
    public struct Owner: Sendable, Equatable {
        public var uid: Int
        public var gid: Int

        public init(uid: Int, gid: Int) {
            self.uid = uid
            self.gid = gid
        }
    }

    /// The `config` section: how a container of the image runs. It adds no layer.
    public struct RunConfig: Sendable, Equatable {
        public var entrypoint: [String]?
        public var cmd: [String]?
        /// In the Imagefile's order.
        public var env: [(key: String, value: String)] = []
        public var workdir: String?
        public var user: String?
        /// `8080/tcp` form.
        public var ports: [String] = []
        public var labels: [String: String] = [:]
        public var stopSignal: String?
        public var volumes: [String] = []
        public var health: Health?

        public init() {}

        public static func == (lhs: RunConfig, rhs: RunConfig) -> Bool {
            lhs.entrypoint == rhs.entrypoint && lhs.cmd == rhs.cmd && lhs.env.map { "\($0.key)=\($0.value)" } == rhs.env.map { "\($0.key)=\($0.value)" }
                && lhs.workdir == rhs.workdir && lhs.user == rhs.user && lhs.ports == rhs.ports && lhs.labels == rhs.labels
                && lhs.stopSignal == rhs.stopSignal && lhs.volumes == rhs.volumes && lhs.health == rhs.health
        }
    }

    /// An HTTP health check: the path to GET and the port the image listens on.
    public struct Health: Sendable, Equatable {
        public var path: String
        public var port: Int

        public init(path: String, port: Int) {
            self.path = path
            self.port = port
        }
    }
}

/// A problem with an Imagefile, at a place in it when there is one.
public typealias ImagefileError = DocumentError
