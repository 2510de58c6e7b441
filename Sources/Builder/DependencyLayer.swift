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

    func read() async throws(BuildError) -> LayerTree {
        // Verify every digest before unpacking anything, so a mismatch is reported first and fast.
        var files: [(Imagefile.Dependency, String, String)] = []
        for dependency in imagefile.dependencies {
            files.append(try await localFile(for: dependency))
        }
        let spool: Spool
        do { spool = try Spool() } catch { throw .layer(error) }
        var tree = LayerTree(spool: spool)
        for (dependency, path, label) in files {
            let importer = ArchiveImporter(label: label)
            do {
                if isDebianPackage(dependency) {
                    try importer.importDebianPackage(at: path, into: &tree)
                } else {
                    try importer.importArchive(at: path, under: dependency.destination, into: &tree)
                }
            } catch {
                throw .entry(dependency.location, error.description)
            }
        }
        do { _ = try tree.finalizedEntries() } catch { throw .entry(imagefile.dependencies[0].location, error.description) }
        return tree
    }

    private func isDebianPackage(_ dependency: Imagefile.Dependency) -> Bool {
        switch dependency.source {
        case .deb: return true
        case .archive: return false
        case .url(let url): return URL(string: url)?.path.hasSuffix(".deb") ?? false
        }
    }

    /// The verified local file of a dependency, and its label for messages.
    private func localFile(for dependency: Imagefile.Dependency) async throws(BuildError) -> (Imagefile.Dependency, String, String) {
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
            return (dependency, path, relative)
        case .url(let url):
            let fetcher = DependencyFetcher(cacheDirectory: cacheDirectory)
            do {
                let path = try await fetcher.file(url: url, digest: dependency.sha256)
                progress("dependency \(url): \(dependency.sha256)")
                return (dependency, path, url)
            } catch {
                switch error {
                case .mismatch(let actual):
                    throw .dependencyMismatch(dependency.location, source: url, expected: dependency.sha256, actual: actual)
                case .other(let reason):
                    throw .fetchFailed(dependency.location, url: url, reason: reason)
                }
            }
        }
    }
}
