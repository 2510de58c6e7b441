import DebianArchive
import Foundation

/// `Imagefile.lock`: the exact Debian packages an Imagefile's `packages` resolved to, per platform, each
/// pinned by SHA-256 and by its path relative to the archive's root (so the lock works against any
/// mirror of the archive), with the edges that pulled it in. The same inputs give the same bytes: JSON
/// with sorted keys, packages sorted by name, edges sorted.
public struct PackageLockFile: Codable, Equatable, Sendable {
    /// The format's version; a lock of another version is refused with what to do.
    public var lockVersion: Int
    /// What the lock was resolved from: a build refuses a lock whose inputs differ from the Imagefile's.
    public var inputs: Inputs
    public var platforms: [PlatformPackages]

    public static let currentVersion = 1

    public init(inputs: Inputs, platforms: [PlatformPackages]) {
        self.lockVersion = Self.currentVersion
        self.inputs = inputs
        self.platforms = platforms
    }

    /// The Imagefile's `repositories` (as written: a `${VARIABLE}` stays one) and `packages`.
    public struct Inputs: Codable, Equatable, Sendable {
        public var repositories: [Repository]
        public var packages: [String]

        public init(repositories: [Repository], packages: [String]) {
            self.repositories = repositories
            self.packages = packages
        }
    }

    public struct Repository: Codable, Equatable, Sendable {
        public var url: String
        public var suite: String
        public var components: [String]
        public var keyring: String?

        public init(url: String, suite: String, components: [String], keyring: String?) {
            self.url = url
            self.suite = suite
            self.components = components
            self.keyring = keyring
        }
    }

    /// One platform's packages.
    public struct PlatformPackages: Codable, Equatable, Sendable {
        /// `linux/amd64`.
        public var platform: String
        /// Debian's name for it (`amd64`).
        public var architecture: String
        public var packages: [LockedPackage]

        public init(platform: String, architecture: String, packages: [LockedPackage]) {
            self.platform = platform
            self.architecture = architecture
            self.packages = packages
        }
    }

    public struct LockedPackage: Codable, Equatable, Sendable {
        public var name: String
        public var version: String
        public var architecture: String
        /// The index of the repository in `inputs.repositories` whose archive has the file.
        public var repository: Int
        /// Relative to the archive's root, as the `Packages` index gives it.
        public var filename: String
        public var size: Int64
        /// 64 lowercase hex digits.
        public var sha256: String
        /// `requested: NAME` or `PACKAGE Depends: RELATION`, sorted.
        public var requiredBy: [String]

        public init(name: String, version: String, architecture: String, repository: Int, filename: String, size: Int64,
                    sha256: String, requiredBy: [String]) {
            self.name = name
            self.version = version
            self.architecture = architecture
            self.repository = repository
            self.filename = filename
            self.size = size
            self.sha256 = sha256
            self.requiredBy = requiredBy
        }
    }

    /// The lock of a resolved closure.
    public init(inputs: Inputs, resolved: [(platform: String, architecture: String, packages: [Resolver.Resolved])]) {
        self.init(inputs: inputs, platforms: resolved.map { entry in
            PlatformPackages(platform: entry.platform, architecture: entry.architecture, packages: entry.packages.map { resolved in
                let record = resolved.candidate.record
                return LockedPackage(name: record.name, version: record.version.description, architecture: record.architecture,
                                     repository: resolved.candidate.repository, filename: record.filename, size: record.size,
                                     sha256: record.sha256, requiredBy: resolved.requiredBy.sorted())
            }.sorted { $0.name < $1.name })
        })
    }

    /// The lock's bytes: pretty-printed JSON with sorted keys and a final newline.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = (try? encoder.encode(self)) ?? Data()
        data.append(0x0A)
        return data
    }

    /// Why a lock file cannot be used.
    public struct ReadError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Reads and checks a lock: every package's name, version, file path and digest are well formed and its
    /// repository exists, so a hand-edited lock cannot name a file outside the archive.
    public static func decode(_ data: Data, path: String) throws(ReadError) -> PackageLockFile {
        guard data.count <= 64 << 20 else { throw ReadError(description: "\(path) is over 64 MiB: not a lock imgbuild wrote") }
        let lock: PackageLockFile
        do { lock = try JSONDecoder().decode(PackageLockFile.self, from: data) } catch {
            throw ReadError(description: "\(path) is not a lock imgbuild can read (\(error)): run 'imgbuild lock' to write it again")
        }
        guard lock.lockVersion == currentVersion else {
            throw ReadError(description: "\(path) has lock version \(lock.lockVersion); this imgbuild reads version \(currentVersion): run 'imgbuild lock --update'")
        }
        for platform in lock.platforms {
            for package in platform.packages {
                func bad(_ what: String) -> ReadError {
                    ReadError(description: "\(path): the package '\(package.name)' of \(platform.platform) has \(what): run 'imgbuild lock' to write the lock again")
                }
                guard isPackageName(package.name) else { throw bad("an invalid name") }
                guard DebianVersion(package.version) != nil else { throw bad("an invalid version '\(package.version)'") }
                guard isSHA256Hex(package.sha256) else { throw bad("an invalid sha256") }
                guard isArchiveFilename(package.filename) else {
                    throw bad("a file path '\(package.filename)' that is not a .deb inside the archive")
                }
                guard lock.inputs.repositories.indices.contains(package.repository) else { throw bad("no repository \(package.repository)") }
            }
        }
        return lock
    }
}
