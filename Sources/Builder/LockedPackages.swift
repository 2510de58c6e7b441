import DebianArchive
import DocumentReader
import Foundation
import Imagefile
import OCI
import PackageLock

/// The `packages` of an Imagefile as dependencies: exactly the `.deb`s `Imagefile.lock` pins for each
/// platform, fetched by SHA-256 through the download cache (so a build needs no index, and no network once
/// they are cached). A missing lock, or one whose inputs are not the Imagefile's, is refused.
struct LockedPackages {
    let imagefile: Imagefile
    let environment: [String: String]
    let cacheDirectory: String

    /// Each platform's packages, by name, ahead of the Imagefile's own `dependencies`.
    func dependencies(for platforms: [Platform]) throws(BuildError) -> [Imagefile.Dependency] {
        let location = imagefile.packages[0].location
        let lockName = (imagefile.lockPath as NSString).lastPathComponent
        guard let data = FileManager.default.contents(atPath: imagefile.lockPath) else {
            throw .entry(location, "'packages' is locked in \(lockName), which does not exist: run 'imgbuild lock \(imagefile.path)' to resolve the packages and write it")
        }
        let lock: PackageLockFile
        do { lock = try PackageLockFile.decode(data, path: imagefile.lockPath) } catch { throw .entry(location, error.description) }
        guard lock.inputs == PackageLockFile.Inputs(imagefile) else {
            throw .entry(location, "the Imagefile's 'repositories' or 'packages' are not the ones \(lockName) was resolved from: run 'imgbuild lock \(imagefile.path)' to lock them again")
        }
        var dependencies: [Imagefile.Dependency] = []
        let downloads = DependencyFetcher(cacheDirectory: cacheDirectory).downloadsDirectory
        for platform in platforms {
            // The platform the lock was resolved for, and Debian's architecture for it: `linux/arm` locked as
            // armhf is not a lock for `linux/arm/v5` (armel).
            let architecture = DebianArchitecture.forImage(os: platform.os, architecture: platform.architecture, variant: platform.variant)
            guard let entry = lock.platforms.first(where: { ($0.platform == platform.description || Platform(parsing: $0.platform) == platform)
                                                            && $0.architecture == architecture }) else {
                throw .entry(location, "\(lockName) has no packages for \(platform)\(architecture.map { " (\($0))" } ?? "") (it has \(lock.platforms.map { "\($0.platform) (\($0.architecture))" }.joined(separator: ", "))): run 'imgbuild lock \(imagefile.path)'")
            }
            // Every request is in the lock as one (the package of that name, in a version that fits, unless the
            // name is a virtual one): a lock edited by hand cannot drop a package the Imagefile asks for.
            for request in imagefile.packages {
                let reason = "requested: " + (request.relation?.description ?? request.text)
                let named = request.relation.flatMap { relation in entry.packages.first { $0.name == relation.name } }
                let fits = named.map { package in
                    package.requiredBy.contains(reason) && (request.relation?.constraint.map { constraint in
                        DebianVersion(package.version).map(constraint.isSatisfied) ?? false
                    } ?? true)
                } ?? entry.packages.contains { $0.requiredBy.contains(reason) }
                guard fits else {
                    throw .entry(request.location, "\(lockName) does not install '\(request.text)' for \(platform): run 'imgbuild lock \(imagefile.path)'")
                }
            }
            if let stray = entry.packages.first(where: { $0.architecture != entry.architecture && $0.architecture != "all" }) {
                throw .entry(location, "\(lockName) installs \(stray.name) for \(stray.architecture) into the \(entry.architecture) image of \(platform): run 'imgbuild lock \(imagefile.path)'")
            }
            for package in entry.packages {
                let repository = lock.inputs.repositories[package.repository]
                var root = repository.url
                do {
                    root = try RepositoryAddress.resolve(repository.url, suite: repository.suite, environment: environment).root
                } catch {
                    // Unknown here (a variable unset), the address is only needed for a file not cached yet.
                    guard FileManager.default.fileExists(atPath: downloads + "/" + package.sha256) else {
                        throw .entry(location, "\(package.name) \(package.version) is not in the download cache, and \(error.description)")
                    }
                }
                var dependency = Imagefile.Dependency(source: .url(root + "/" + package.filename), sha256: Digest(hex: package.sha256)!,
                                                      destination: "", platform: platform, location: location)
                dependency.lockedPackage = "\(package.name) \(package.version)"
                dependency.expectedSize = package.size
                dependencies.append(dependency)
            }
        }
        return dependencies
    }
}
