import Foundation
import Imagefile
import Layers
import OCI

/// The `dependencies` section as one layer: every artefact verified against its pinned digest, then
/// unpacked in order into one tree (a later artefact's file replaces an earlier one's).
struct DependencyLayer {
    let imagefile: Imagefile
    let cacheDirectory: String
    let progress: @Sendable (String) -> Void

    /// A dependency's local file, checked against its pinned digest, and its label for messages.
    struct VerifiedFile {
        var dependency: Imagefile.Dependency
        var path: String
        var label: String
    }

    /// Every dependency's local file (a URL's fetched first), each checked against its digest, in order:
    /// a mismatch is reported before anything is unpacked.
    func verifiedFiles(_ dependencies: [Imagefile.Dependency]) async throws(BuildError) -> [VerifiedFile] {
        var files: [VerifiedFile] = []
        for dependency in dependencies {
            files.append(try await localFile(for: dependency))
        }
        return files
    }

    /// The verified files unpacked in order into one tree (a later artefact's file replaces an earlier one's),
    /// with its entries finalized.
    /// `dpkgStatus`: also write dpkg's status file of every Debian package unpacked (for locked `packages`).
    func read(_ files: [VerifiedFile], dpkgStatus: Bool = false) throws(BuildError) -> (LayerTree, [LayerEntry]) {
        let spool: Spool
        do { spool = try Spool() } catch { throw .layer(error) }
        var tree = LayerTree(spool: spool)
        var controls: [[UInt8]] = []
        for file in files {
            let importer = ArchiveImporter(label: file.label)
            do {
                if isDebianPackage(file.dependency) {
                    if let control = try importer.importDebianPackage(at: file.path, into: &tree) { controls.append(control) }
                } else {
                    try importer.importArchive(at: file.path, under: file.dependency.destination, into: &tree)
                }
            } catch {
                throw .entry(file.dependency.location, error.description)
            }
        }
        if dpkgStatus, !controls.isEmpty {
            do { try tree.insertFile(ArchiveImporter.dpkgStatusPath, bytes: ArchiveImporter.dpkgStatus(controls), mode: 0o644) } catch { throw .layer(error) }
        }
        do { return (tree, try tree.finalizedEntries()) } catch { throw .entry(files[0].dependency.location, error.description) }
    }

    private func isDebianPackage(_ dependency: Imagefile.Dependency) -> Bool {
        switch dependency.source {
        case .deb: return true
        case .archive: return false
        case .url(let url): return (URL(string: url)?.path ?? url).hasSuffix(".deb")
        }
    }

    /// The verified local file of a dependency, and its label for messages.
    private func localFile(for dependency: Imagefile.Dependency) async throws(BuildError) -> VerifiedFile {
        switch dependency.source {
        case .deb(let relative), .archive(let relative):
            let path = relative.hasPrefix("/") ? relative : imagefile.contextDirectory + "/" + relative
            guard FileManager.default.fileExists(atPath: path) else {
                throw .entry(dependency.location, "'\(relative)' does not exist: dependency paths are relative to the Imagefile's folder")
            }
            let actual: Digest
            do { actual = try Digest.ofFile(atPath: path).digest } catch {
                throw .entry(dependency.location, "cannot read '\(relative)': \(error)")
            }
            guard actual == dependency.sha256 else {
                throw .dependencyMismatch(dependency.location, source: relative, expected: dependency.sha256, actual: actual)
            }
            return VerifiedFile(dependency: dependency, path: path, label: relative)
        case .url(let url):
            let fetcher = DependencyFetcher(cacheDirectory: cacheDirectory)
            do {
                let path = try await fetcher.file(url: url, digest: dependency.sha256, size: dependency.expectedSize)
                progress("dependency \(url): \(dependency.sha256)")
                return VerifiedFile(dependency: dependency, path: path, label: url)
            } catch {
                switch error {
                case .mismatch(let actual):
                    if let package = dependency.lockedPackage {
                        throw .lockedPackageMismatch(dependency.location, package: package, url: url, expected: dependency.sha256, actual: actual)
                    }
                    throw .dependencyMismatch(dependency.location, source: url, expected: dependency.sha256, actual: actual)
                case .other(let reason):
                    throw .fetchFailed(dependency.location, url: url, reason: reason)
                }
            }
        }
    }
}
