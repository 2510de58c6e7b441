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
    /// Images kept without a version that `forgetting` let go of (each counted once, whatever its repositories).
    public var forgottenImages = 0
    /// Blobs that a descriptor types as a manifest but that are not one: kept, reaching nothing, and
    /// named here so that an operator can look at them (`imgbuild fsck` says which tags reach them).
    public var warnings: [String] = []
}

extension Store {
    /// Removes every blob no tag reaches (nor a referrer of what a tag reaches), and the temporary files of
    /// writers that died.
    ///
    /// It holds the write lease exclusively, so no build or tag is between writing a blob and tagging it
    /// while it runs. If it cannot tell what a tag reaches (an unreadable tag or manifest) it removes
    /// nothing and says why: run `fsck`. A blob whose verified bytes are not the manifest its descriptor
    /// claims is a leaf: it is kept, reaches nothing, and is reported in ``GCReport/warnings``.
    /// `onWait` is called if builds, tags or a writable `imgbuild serve` hold the store, before waiting;
    /// if it throws, the collection does not wait and throws that error.
    ///
    /// `forgetting` first lets go of images kept without a version (pulled by digest): their pins in every
    /// repository, and the referrers and artifact tags (signatures, SBOMs, test records) that refer to them.
    /// A version tag still keeps such an image. With `dryRun` nothing changes: the report says what would go.
    public func collectGarbage(forgetting images: Set<Digest> = [], dryRun: Bool = false, onWait: () throws(StoreError) -> Void = {}) throws(StoreError) -> GCReport {
        let lease = try acquireExclusiveLease(onWait: onWait)
        defer { withExtendedLifetime(lease) {} }
        // A multi-platform image's SBOMs refer to its platforms' images: forgetting the index forgets what
        // refers to those too, unless something kept (a tag, another pin, another index) still reaches them.
        var images = images
        var children = Set<Digest>()
        for digest in images {
            if case .index(let index)? = try? manifest(digest).manifest { children.formUnion(index.manifests.map(\.digest)) }
        }
        children.subtract(images)
        if !children.isEmpty {
            var kept = Set<Digest>()
            var ignored: [String] = []
            for repository in repositories() {
                for (_, descriptor) in try tags(repository) { try mark(descriptor, into: &kept, warnings: &ignored) }
                for descriptor in try pins(repository) where !images.contains(descriptor.digest) { try mark(descriptor, into: &kept, warnings: &ignored) }
            }
            images.formUnion(children.subtracting(kept))
        }
        var reachable = Set<Digest>()
        var report = GCReport()
        var letGo: [(repository: RepositoryName, pins: [Digest], artifactTags: [String], subjects: [Digest])] = []
        do {
            for repository in repositories() {
                let referrers = Set(images.flatMap { self.referrers(repository, subject: $0).map(\.digest) })
                let subjectPrefixes = images.map { ReferrerTag.prefix(subject: $0) }
                var dropped: (pins: [Digest], artifactTags: [String]) = ([], [])
                for (_, descriptor) in try tags(repository) { try mark(descriptor, into: &reachable, warnings: &report.warnings) }
                for descriptor in try pins(repository) {
                    if images.contains(descriptor.digest) { dropped.pins.append(descriptor.digest); continue }
                    try mark(descriptor, into: &reachable, warnings: &report.warnings)
                }
                for (tag, descriptor) in try artifactTags(repository) {
                    if referrers.contains(descriptor.digest) || subjectPrefixes.contains(where: { tag.hasPrefix($0) }) {
                        dropped.artifactTags.append(tag)
                        continue
                    }
                    try mark(descriptor, into: &reachable, warnings: &report.warnings)
                }
                let subjects = images.filter { FileSystem.exists(referrersDirectory(repository, subject: $0)) }
                if !dropped.pins.isEmpty || !dropped.artifactTags.isEmpty || !subjects.isEmpty {
                    letGo.append((repository, dropped.pins, dropped.artifactTags, subjects.sorted { $0.hex < $1.hex }))
                }
            }
            // What refers to a kept manifest is kept with it: every signature and SBOM its repository lists
            // for it, not only the one a fallback tag names (two signatures of one image share that tag).
            // Referrers may have referrers of their own, hence the rounds.
            var added = true
            while added {
                added = false
                for repository in repositories() {
                    for folder in FileSystem.list(repositoryDirectory(repository) + "/referrers") where folder.hasPrefix("sha256-") {
                        guard let subject = Digest(hex: String(folder.dropFirst(7))), reachable.contains(subject), !images.contains(subject) else { continue }
                        for referrer in referrers(repository, subject: subject) where !reachable.contains(referrer.digest) {
                            try mark(referrer, into: &reachable, warnings: &report.warnings)
                            added = true
                        }
                    }
                }
            }
        } catch {
            throw .gcRefused(reason: error.description)
        }
        report.forgottenImages = Set(letGo.flatMap(\.pins)).count
        if !dryRun {
            // What kept the forgotten images goes first: a crash after this leaves only unreachable blobs,
            // which the next collection removes.
            for entry in letGo {
                let directory = repositoryDirectory(entry.repository)
                for digest in entry.pins where unlink(directory + "/pins/sha256-" + digest.hex) != 0 && errno != ENOENT {
                    throw FileSystem.failure(directory + "/pins/sha256-" + digest.hex)
                }
                for tag in entry.artifactTags where unlink(directory + "/artifacts/" + tag) != 0 && errno != ENOENT {
                    throw FileSystem.failure(directory + "/artifacts/" + tag)
                }
                for subject in entry.subjects {
                    let folder = referrersDirectory(entry.repository, subject: subject)
                    for file in FileSystem.list(folder) { unlink(folder + "/" + file) }
                    if rmdir(folder) != 0 && errno != ENOENT { throw FileSystem.failure(folder) }
                }
                for folder in ["/pins", "/artifacts", "/referrers"] where FileSystem.isDirectory(directory + folder) {
                    try FileSystem.fsyncDirectory(directory + folder)
                }
            }
        }
        for name in FileSystem.list(blobsDirectory) {
            guard let digest = Digest(hex: name) else { continue }
            if reachable.contains(digest) {
                report.keptBlobs += 1
                continue
            }
            let size = (try? blobSize(digest)) ?? 0
            if !dryRun, unlink(blobPath(digest)) != 0 { throw FileSystem.failure(blobPath(digest)) }
            report.removedBlobs += 1
            report.freedBytes += size
        }
        if dryRun { return report }
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
