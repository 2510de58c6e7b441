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
        for platform in platforms {
            guard let entry = lock.platforms.first(where: { Platform(parsing: $0.platform)?.matches(platform) ?? false }) else {
                throw .entry(location, "\(lockName) has no packages for \(platform) (it has \(lock.platforms.map(\.platform).joined(separator: ", "))): run 'imgbuild lock \(imagefile.path)'")
            }
            for package in entry.packages {
                let repository = lock.inputs.repositories[package.repository]
                // Unknown here (a variable unset), the address is only needed if the file is not cached yet.
                let root = (try? RepositoryAddress.resolve(repository.url, suite: repository.suite, environment: environment).root) ?? repository.url
                dependencies.append(Imagefile.Dependency(source: .url(root + "/" + package.filename), sha256: Digest(hex: package.sha256)!,
                                                         destination: "", platform: platform, location: location))
            }
        }
        return dependencies
    }
}
