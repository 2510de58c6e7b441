import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// What `gc` removed.
public struct GCReport: Sendable {
    public var removedBlobs = 0
    public var freedBytes: Int64 = 0
    public var keptBlobs = 0
    public var removedTemporaryFiles = 0
}

extension Store {
    /// Removes every blob no tag reaches, and the temporary files of writers that died.
    ///
    /// It holds the write lease exclusively, so no build or tag is between writing a blob and tagging it
    /// while it runs. If it cannot tell what a tag reaches (an unreadable tag or manifest) it removes
    /// nothing and says why: run `fsck`.
    /// `onWait` is called if builds, tags or a writable `imgbuild serve` hold the store, before waiting.
    public func collectGarbage(onWait: () -> Void = {}) throws(StoreError) -> GCReport {
        let lease = try acquireExclusiveLease(onWait: onWait)
        defer { withExtendedLifetime(lease) {} }
        var reachable = Set<Digest>()
        do {
            for repository in repositories() {
                for (_, descriptor) in try tags(repository) { try mark(descriptor, into: &reachable) }
                for descriptor in try pins(repository) { try mark(descriptor, into: &reachable) }
                for (_, descriptor) in try artifactTags(repository) { try mark(descriptor, into: &reachable) }
            }
        } catch {
            throw .gcRefused(reason: error.description)
        }
        var report = GCReport()
        for name in FileSystem.list(blobsDirectory) {
            guard let digest = Digest(hex: name) else { continue }
            if reachable.contains(digest) {
                report.keptBlobs += 1
                continue
            }
            let size = (try? blobSize(digest)) ?? 0
            guard unlink(blobPath(digest)) == 0 else { throw FileSystem.failure(blobPath(digest)) }
            report.removedBlobs += 1
            report.freedBytes += size
        }
        try FileSystem.fsyncDirectory(blobsDirectory)
        // With the lease held exclusively no writer (and no writable server) is alive, so whatever is in
        // tmp/ and uploads/ was left by one that died or by clients that never finished an upload.
        for directory in [temporaryDirectory, uploadsDirectory] {
            for name in FileSystem.list(directory) where unlink(directory + "/" + name) == 0 {
                report.removedTemporaryFiles += 1
            }
        }
        for repository in repositories() { try refreshLayoutIndex(repository) }
        return report
    }

    /// Marks a descriptor and everything it reaches. A missing blob is simply not there to keep; a
    /// manifest that cannot be read stops the collection, since what it reaches is unknown.
    private func mark(_ descriptor: Descriptor, into reachable: inout Set<Digest>) throws(StoreError) {
        guard reachable.insert(descriptor.digest).inserted, hasBlob(descriptor.digest) else { return }
        let manifestTypes = [MediaType.imageManifest, MediaType.imageIndex, MediaType.dockerManifest, MediaType.dockerManifestList]
        guard manifestTypes.contains(descriptor.mediaType) else { return }
        for child in try manifest(descriptor.digest).manifest.references { try mark(child, into: &reachable) }
    }
}
