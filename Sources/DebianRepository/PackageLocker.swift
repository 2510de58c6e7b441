import AsyncHTTPClient
import DebianArchive
import DocumentReader
import Foundation
import Imagefile
import OCI
import PackageLock

/// `imgbuild lock`: reads the Imagefile's repositories (signatures and index hashes checked), resolves its
/// `packages` into their closure for every platform of the image, and says how the new lock differs from
/// the old one. Nothing is written here: the caller writes the lock only when all of it succeeded.
public struct PackageLocker {
    public let imagefile: Imagefile
    public let environment: [String: String]
    public let aptDirectory: String
    let progress: @Sendable (String) -> Void

    public init(imagefile: Imagefile, environment: [String: String], aptDirectory: String = "/etc/apt",
                progress: @escaping @Sendable (String) -> Void) {
        self.imagefile = imagefile
        self.environment = environment
        self.aptDirectory = aptDirectory
        self.progress = progress
    }

    /// The new lock and, one line each, what changed from `previous` and why.
    public struct Outcome: Sendable {
        public var lock: PackageLockFile
        public var changes: [String]
    }

    /// `update`: resolve afresh; otherwise every version `previous` has is kept while the archive still
    /// offers it and it still fits.
    public func lock(previous: PackageLockFile?, update: Bool) async throws(LockError) -> Outcome {
        var platforms: [(platform: Platform, architecture: String)] = []
        for platform in imagefile.lockPlatforms {
            guard let architecture = DebianArchitecture.forImage(os: platform.os, architecture: platform.architecture, variant: platform.variant) else {
                throw .unsupportedPlatform(platform)
            }
            platforms.append((platform, architecture))
        }
        let architectures = Array(Set(platforms.map(\.architecture))).sorted()
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let candidates: [String: [Resolver.Candidate]]
        do {
            candidates = try await read(architectures: architectures, client: client)
            try? await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
        let requests = imagefile.packages.map { $0.relation.map(Resolver.Request.package) ?? .essential }
        var resolved: [(platform: String, architecture: String, packages: [Resolver.Resolved])] = []
        for (platform, architecture) in platforms {
            let preferred = update ? [:] : Dictionary(
                (previous?.platforms.first { $0.platform == platform.description }?.packages ?? []).map { ($0.name, $0.version) },
                uniquingKeysWith: { a, _ in a })
            let resolver = Resolver(candidates: candidates[architecture] ?? [], architecture: architecture)
            do {
                resolved.append((platform.description, architecture, try resolver.resolve(requests, preferring: preferred)))
            } catch {
                // A version kept from the lock may be what stands in the way of a changed Imagefile: resolve
                // afresh before giving up (the changes are explained all the same).
                guard !preferred.isEmpty, let fresh = try? resolver.resolve(requests) else { throw .unresolvable(platform: platform, error) }
                resolved.append((platform.description, architecture, fresh))
            }
        }
        let lock = PackageLockFile(inputs: PackageLockFile.Inputs(imagefile), resolved: resolved)
        return Outcome(lock: lock, changes: Self.changes(from: previous, to: lock, update: update))
    }

    /// Every repository's packages for each architecture, in the Imagefile's order of repositories.
    private func read(architectures: [String], client: HTTPClient) async throws(LockError) -> [String: [Resolver.Candidate]] {
        var result: [String: [Resolver.Candidate]] = [:]
        for (index, repository) in imagefile.repositories.enumerated() {
            let address: RepositoryAddress
            do { address = try RepositoryAddress.resolve(repository.url, suite: repository.suite, environment: environment, aptDirectory: aptDirectory) } catch {
                throw .address(repository.location, error.description)
            }
            var keyrings = address.keyrings
            if let keyring = repository.keyring {
                let path = keyring.hasPrefix("/") ? keyring : imagefile.contextDirectory + "/" + keyring
                guard FileManager.default.fileExists(atPath: path) else {
                    throw .keyring(repository.location, "the keyring '\(keyring)' does not exist (paths are relative to the Imagefile's folder)")
                }
                keyrings = [path]
            }
            guard !keyrings.isEmpty else {
                throw .keyring(repository.location, "no keyring: the machine's apt source for \(repository.suite) names none; give 'keyring'")
            }
            let reader = SuiteReader(root: address.root, suite: repository.suite, keyrings: keyrings, checkValidUntil: repository.checkValidUntil,
                                     downloader: ArchiveDownloader(client: client))
            do {
                let release = try await reader.release()
                progress("\(reader.suiteURL): signature good (\(release.date ?? "undated"))")
                for component in repository.components {
                    guard release.components.isEmpty || release.components.contains(component) || release.components.contains(where: { $0.hasSuffix("/" + component) }) else {
                        throw LockError.repository(repository.location, url: reader.suiteURL, "the suite has no component '\(component)' (it has \(release.components.joined(separator: ", "))): fix 'components'")
                    }
                    // With `all` among the architectures, `all` packages are in binary-all alone, unless the Release
                    // says they are repeated in each architecture's index (No-Support-for-Architecture-all); read
                    // once for every platform.
                    let allPackages = release.architectures.contains("all") && !release.architectureAllRepeated
                        ? try await reader.packages(component: component, architecture: "all", release: release) : []
                    for architecture in architectures {
                        let records = try await reader.packages(component: component, architecture: architecture, release: release) + allPackages
                        progress("\(reader.suiteURL) \(component)/\(architecture): \(records.count) packages")
                        result[architecture, default: []] += records.map { Resolver.Candidate(record: $0, repository: index, priority: release.pinPriority) }
                    }
                }
            } catch let error as LockError {
                throw error
            } catch let failure as SuiteReader.Failure {
                throw .repository(repository.location, url: failure.url, failure.message)
            } catch {
                throw .repository(repository.location, url: reader.suiteURL, "\(error)")
            }
        }
        return result
    }

    /// What differs between two locks, one line per package and platform, and why.
    static func changes(from previous: PackageLockFile?, to lock: PackageLockFile, update: Bool) -> [String] {
        guard let previous else { return [] }
        var lines: [String] = []
        if previous.inputs != lock.inputs { lines.append("the Imagefile's repositories or packages changed since the last lock") }
        for platform in lock.platforms {
            let old = Dictionary((previous.platforms.first { $0.platform == platform.platform }?.packages ?? []).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let new = Dictionary(platform.packages.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let prefix = lock.platforms.count > 1 ? "\(platform.platform): " : ""
            for package in platform.packages {
                guard let before = old[package.name] else {
                    lines.append("\(prefix)added \(package.name) \(package.version) (\(package.requiredBy.joined(separator: "; ")))")
                    continue
                }
                if before.version != package.version {
                    let why = update ? "--update takes the newest that fits" : "the archive no longer offers \(before.version), or it no longer fits"
                    lines.append("\(prefix)\(package.name) \(before.version) -> \(package.version) (\(why))")
                } else if before.sha256 != package.sha256 {
                    lines.append("\(prefix)\(package.name) \(package.version): the archive now has another file for the same version (sha256 \(before.sha256.prefix(12))… -> \(package.sha256.prefix(12))…)")
                }
            }
            for name in old.keys.sorted() where new[name] == nil {
                lines.append("\(prefix)removed \(name) \(old[name]!.version) (nothing asks for it any more)")
            }
        }
        return lines
    }
}

extension SuiteReader.Failure {
    var message: String {
        switch kind {
        case .fetch(let reason): return "cannot fetch it: \(reason)"
        case .signature(let reason): return "its signature is not accepted: \(reason). Nothing was locked"
        case .release(let reason): return reason
        case .index(let reason): return "the index is refused: \(reason)"
        }
    }
}

/// Why `imgbuild lock` failed. The lock and the store are left as they were.
public enum LockError: Error, CustomStringConvertible {
    case address(SourceLocation, String)
    case keyring(SourceLocation, String)
    case repository(SourceLocation, url: String, String)
    case unsupportedPlatform(Platform)
    case unresolvable(platform: Platform, Resolver.ResolveError)

    public var description: String {
        switch self {
        case let .address(location, reason): return "\(location): \(reason)"
        case let .keyring(location, reason): return "\(location): \(reason)"
        case let .repository(location, url, reason): return "\(location): \(url): \(reason)"
        case let .unsupportedPlatform(platform): return "Debian has no architecture for the platform \(platform): build 'packages' for Debian's platforms (linux/amd64, linux/arm64, linux/arm/v7, linux/386, linux/ppc64le, linux/s390x, linux/riscv64)"
        case let .unresolvable(platform, error): return "cannot resolve the packages for \(platform): \(error.description)"
        }
    }
}
