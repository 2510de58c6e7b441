import Foundation
import OCI
import SemVer

/// What `fsck` found. It never changes the store.
public struct FsckReport: Sendable {
    /// One line per problem, each naming the blob or tag and what is wrong.
    public var problems: [String] = []
    public var blobsChecked = 0
    public var tagsChecked = 0
    /// Files left in `tmp/` by writers that died; not a problem (`gc` removes them).
    public var temporaryFiles = 0

    public var isClean: Bool { problems.isEmpty }
}

extension Store {
    /// Re-hashes every blob and checks that every manifest, config and layer any tag reaches is present
    /// and valid. Reads only; takes no lock.
    public func fsck() -> FsckReport {
        var report = FsckReport()
        var corrupt: [Digest: Digest] = [:]
        for name in FileSystem.list(blobsDirectory).sorted() {
            guard let digest = Digest(hex: name) else {
                report.problems.append("blobs/sha256/\(name): not a blob name (64 lowercase hex digits); remove it")
                continue
            }
            report.blobsChecked += 1
            do {
                let actual = try Digest.ofFile(atPath: blobPath(digest)).digest
                if actual != digest { corrupt[digest] = actual }
            } catch {
                report.problems.append("blob \(digest): unreadable: \(error)")
            }
        }

        var reachedBy: [Digest: Set<String>] = [:]
        for repository in repositories() {
            let tagsDirectory = repositoryDirectory(repository) + "/tags"
            for file in FileSystem.list(tagsDirectory).sorted() {
                report.tagsChecked += 1
                guard let version = try? Version(parsing: file) else {
                    report.problems.append("\(repository): tag file '\(file)' is not a SemVer version")
                    continue
                }
                let tag = "\(repository):\(version)"
                let descriptor: Descriptor
                do { descriptor = try readTag(repository, version) } catch {
                    report.problems.append("\(tag): \(error)")
                    continue
                }
                check(descriptor, role: "manifest", tag: tag, corrupt: corrupt, reachedBy: &reachedBy, problems: &report.problems)
            }
        }
        for repository in repositories() {
            do {
                for descriptor in try pins(repository) {
                    check(descriptor, role: "manifest", tag: "\(repository)@\(descriptor.digest)", corrupt: corrupt,
                          reachedBy: &reachedBy, problems: &report.problems)
                }
            } catch {
                report.problems.append("\(repository): \(error)")
            }
        }
        for (digest, actual) in corrupt.sorted(by: { $0.key < $1.key }) {
            let tags = reachedBy[digest].map { $0.sorted().joined(separator: ", ") } ?? "no tag (gc will remove it)"
            report.problems.append("blob \(digest) is corrupt: its bytes hash to \(actual); reached by \(tags)")
        }
        report.temporaryFiles = FileSystem.list(temporaryDirectory).count
        return report
    }

    private func check(_ descriptor: Descriptor, role: String, tag: String, corrupt: [Digest: Digest],
                       reachedBy: inout [Digest: Set<String>], problems: inout [String]) {
        reachedBy[descriptor.digest, default: []].insert(tag)
        guard hasBlob(descriptor.digest) else {
            problems.append("\(tag): its \(role) \(descriptor.digest) is missing")
            return
        }
        if let size = try? blobSize(descriptor.digest), size != descriptor.size {
            problems.append("\(tag): its \(role) \(descriptor.digest) has \(size) bytes, but its descriptor says \(descriptor.size)")
        }
        guard corrupt[descriptor.digest] == nil else { return }  // reported once, with every tag, below
        if MediaType.isManifest(descriptor.mediaType) {
            let parsed: AnyManifest
            do { parsed = try manifest(descriptor.digest).manifest } catch {
                problems.append("\(tag): its \(role) \(descriptor.digest): \(error)")
                return
            }
            switch parsed {
            case .image(let image):
                check(image.config, role: "config", tag: tag, corrupt: corrupt, reachedBy: &reachedBy, problems: &problems)
                let isImageConfig = [MediaType.imageConfig, MediaType.dockerConfig].contains(image.config.mediaType)
                if isImageConfig, corrupt[image.config.digest] == nil, hasBlob(image.config.digest) {
                    do { _ = try imageConfig(image.config.digest) } catch { problems.append("\(tag): \(error)") }
                }
                for (index, layer) in image.layers.enumerated() {
                    check(layer, role: "layer \(index)", tag: tag, corrupt: corrupt, reachedBy: &reachedBy, problems: &problems)
                }
            case .index(let index):
                for child in index.manifests {
                    check(child, role: "child manifest", tag: tag, corrupt: corrupt, reachedBy: &reachedBy, problems: &problems)
                }
            }
        }
    }
}
