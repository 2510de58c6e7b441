import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Points a non-version tag (such as cosign's `sha256-<hex>.sig`) at an artifact manifest that refers
    /// to a subject. Unlike versions these may move: a new signature replaces the old list.
    public func setArtifactTag(_ name: RepositoryName, _ tag: String, _ descriptor: Descriptor) throws(StoreError) {
        guard Store.isValidArtifactTag(tag) else { throw .invalidVersion(tag, reason: "not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})") }
        let lease = try acquireWriteLease()
        defer { withExtendedLifetime(lease) {} }
        guard hasBlob(descriptor.digest) else { throw .blobMissing(descriptor.digest) }
        _ = try prepareRepository(name)
        let directory = repositoryDirectory(name) + "/artifacts"
        try FileSystem.makeDirectories(directory)
        let record = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size)
        try FileSystem.replace(directory + "/" + tag, with: try! CanonicalJSON.encode(record), temporaryDirectory: temporaryDirectory)
    }

    /// Artifact tags of a repository with their descriptors, sorted by tag.
    public func artifactTags(_ name: RepositoryName) throws(StoreError) -> [(tag: String, descriptor: Descriptor)] {
        let directory = repositoryDirectory(name) + "/artifacts"
        var result: [(String, Descriptor)] = []
        for tag in FileSystem.list(directory).sorted() where Store.isValidArtifactTag(tag) {
            let data = try FileSystem.read(directory + "/" + tag)
            guard let descriptor = try? JSONDecoder().decode(Descriptor.self, from: data) else {
                throw .corruptTag(repository: name.value, version: tag, path: directory + "/" + tag)
            }
            result.append((tag, descriptor))
        }
        return result
    }

    /// The distribution spec's tag grammar.
    public static func isValidArtifactTag(_ tag: String) -> Bool {
        guard let first = tag.utf8.first, tag.utf8.count <= 128 else { return false }
        func word(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x41...0x5a).contains(b) || (0x61...0x7a).contains(b) || b == 0x5f }
        return word(first) && tag.utf8.allSatisfy { word($0) || $0 == 0x2e || $0 == 0x2d }
    }

    /// Records that `referrer` (a manifest of this repository) refers to `subject`, for the referrers API.
    public func addReferrer(_ name: RepositoryName, subject: Digest, referrer: Descriptor) throws(StoreError) {
        _ = try prepareRepository(name)
        let directory = referrersDirectory(name, subject: subject)
        try FileSystem.makeDirectories(directory)
        try FileSystem.replace(directory + "/sha256-" + referrer.digest.hex, with: try! CanonicalJSON.encode(referrer), temporaryDirectory: temporaryDirectory)
    }

    /// Where a repository records the manifests that refer to `subject`, one file each.
    func referrersDirectory(_ name: RepositoryName, subject: Digest) -> String {
        repositoryDirectory(name) + "/referrers/sha256-" + subject.hex
    }

    /// The manifests of a repository that refer to `subject`, as descriptors with `artifactType`.
    public func referrers(_ name: RepositoryName, subject: Digest) -> [Descriptor] {
        let directory = referrersDirectory(name, subject: subject)
        return FileSystem.list(directory).sorted().compactMap { file in
            (try? FileSystem.read(directory + "/" + file)).flatMap { try? JSONDecoder().decode(Descriptor.self, from: $0) }
        }
    }
}
