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
    /// Blobs that a descriptor types as a manifest but that are not one: kept, reaching nothing, and
    /// named here so that an operator can look at them (`imgbuild fsck` says which tags reach them).
    public var warnings: [String] = []
}

extension Store {
    /// Removes every blob no tag reaches, and the temporary files of writers that died.
    ///
    /// It holds the write lease exclusively, so no build or tag is between writing a blob and tagging it
    /// while it runs. If it cannot tell what a tag reaches (an unreadable tag or manifest) it removes
    /// nothing and says why: run `fsck`. A blob whose verified bytes are not the manifest its descriptor
    /// claims is a leaf: it is kept, reaches nothing, and is reported in ``GCReport/warnings``.
    /// `onWait` is called if builds, tags or a writable `imgbuild serve` hold the store, before waiting.
    public func collectGarbage(onWait: () -> Void = {}) throws(StoreError) -> GCReport {
        let lease = try acquireExclusiveLease(onWait: onWait)
        defer { withExtendedLifetime(lease) {} }
        var reachable = Set<Digest>()
        var report = GCReport()
        do {
            for repository in repositories() {
                for (_, descriptor) in try tags(repository) { try mark(descriptor, into: &reachable, warnings: &report.warnings) }
                for descriptor in try pins(repository) { try mark(descriptor, into: &reachable, warnings: &report.warnings) }
                for (_, descriptor) in try artifactTags(repository) { try mark(descriptor, into: &reachable, warnings: &report.warnings) }
            }
        } catch {
            throw .gcRefused(reason: error.description)
        }
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

    /// Marks a descriptor and everything it reaches, with a stack of its own (indexes may nest thousands
    /// deep). A missing blob is simply not there to keep; a manifest that cannot be read or does not
    /// match its digest stops the collection, since what it reaches is unknown. Verified bytes that do
    /// not parse as a manifest reach nothing: a warning.
    private func mark(_ root: Descriptor, into reachable: inout Set<Digest>, warnings: inout [String]) throws(StoreError) {
        var pending = [root]
        while let descriptor = pending.popLast() {
            guard reachable.insert(descriptor.digest).inserted, hasBlob(descriptor.digest),
                  MediaType.isManifest(descriptor.mediaType) else { continue }
            do {
                pending.append(contentsOf: try manifest(descriptor.digest).manifest.references)
            } catch .invalidManifest(let digest, let reason) {
                warnings.append("\(digest) is typed \(descriptor.mediaType) but is not a manifest (\(reason)): kept, reaching nothing")
            }
        }
    }
}
