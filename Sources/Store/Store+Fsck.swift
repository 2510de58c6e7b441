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
        var parsed = ParsedBlobs()
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
                check(descriptor, role: "manifest", tag: tag, corrupt: corrupt, reachedBy: &reachedBy, problems: &report.problems, parsed: &parsed)
            }
        }
        for repository in repositories() {
            do {
                for descriptor in try pins(repository) {
                    check(descriptor, role: "manifest", tag: "\(repository)@\(descriptor.digest)", corrupt: corrupt,
                          reachedBy: &reachedBy, problems: &report.problems, parsed: &parsed)
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

    /// Checks everything `root` reaches, for one tag. The walk keeps its own stack (an index of indexes
    /// nested thousands deep is as easy as a flat one) and visits each blob once per tag; manifests and
    /// configs are parsed once for the whole run (`parsed`), however many tags reach them.
    private func check(_ root: Descriptor, role: String, tag: String, corrupt: [Digest: Digest],
                       reachedBy: inout [Digest: Set<String>], problems: inout [String], parsed: inout ParsedBlobs) {
        var pending: [(descriptor: Descriptor, role: String)] = [(root, role)]
        var seen = Set<Digest>()
        while let (descriptor, role) = pending.popLast() {
            reachedBy[descriptor.digest, default: []].insert(tag)
            guard seen.insert(descriptor.digest).inserted else { continue }
            guard hasBlob(descriptor.digest) else {
                problems.append("\(tag): its \(role) \(descriptor.digest) is missing")
                continue
            }
            if let size = try? blobSize(descriptor.digest), size != descriptor.size {
                problems.append("\(tag): its \(role) \(descriptor.digest) has \(size) bytes, but its descriptor says \(descriptor.size)")
            }
            guard corrupt[descriptor.digest] == nil else { continue }  // reported once, with every tag, below
            if [MediaType.imageConfig, MediaType.dockerConfig].contains(descriptor.mediaType) {
                if let problem = parsed.configProblem(descriptor.digest, in: self) { problems.append("\(tag): \(problem)") }
                continue
            }
            guard MediaType.isManifest(descriptor.mediaType) else { continue }
            switch parsed.manifest(descriptor.digest, in: self) {
            case .failure(let failure):
                problems.append("\(tag): its \(role) \(descriptor.digest): \(failure.reason)")
            case .success(.image(let image)):
                let layers = image.layers.enumerated().map { (descriptor: $0.element, role: "layer \($0.offset)") }
                pending.append(contentsOf: ([(image.config, "config")] + layers).reversed())
            case .success(.index(let index)):
                pending.append(contentsOf: index.manifests.map { (descriptor: $0, role: "child manifest") }.reversed())
            }
        }
    }
}

/// Manifests and configs read during one fsck, each parsed once.
struct ParsedBlobs {
    struct Failure: Error { let reason: String }
    private var manifests: [Digest: Result<AnyManifest, Failure>] = [:]
    private var configs: [Digest: String?] = [:]

    mutating func manifest(_ digest: Digest, in store: Store) -> Result<AnyManifest, Failure> {
        if manifests[digest] == nil {
            do { manifests[digest] = .success(try store.manifest(digest).manifest) } catch {
                manifests[digest] = .failure(Failure(reason: error.description))
            }
        }
        return manifests[digest]!
    }

    mutating func configProblem(_ digest: Digest, in store: Store) -> String? {
        if let known = configs[digest] { return known }
        var problem: String?
        do { _ = try store.imageConfig(digest) } catch { problem = error.description }
        configs[digest] = .some(problem)
        return problem
    }
}
