import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Keeps a manifest in a repository without a version (an image pulled by digest): it is reachable
    /// for `gc`, checked by `fsck`, and `NAME@DIGEST` finds it. Pinning twice is a no-op.
    public func pin(_ name: RepositoryName, _ descriptor: Descriptor) throws(StoreError) {
        let lease = try acquireWriteLease()
        defer { withExtendedLifetime(lease) {} }
        guard hasBlob(descriptor.digest) else { throw .blobMissing(descriptor.digest) }
        _ = try prepareRepository(name)
        let pinsDirectory = repositoryDirectory(name) + "/pins"
        try FileSystem.makeDirectories(pinsDirectory)
        let path = pinsDirectory + "/sha256-" + descriptor.digest.hex
        if FileSystem.exists(path) { return }
        let record = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size)
        let staged = try FileSystem.stage(try! CanonicalJSON.encode(record), in: temporaryDirectory)
        defer { unlink(staged) }
        if link(staged, path) != 0 && errno != EEXIST { throw FileSystem.failure(path) }
        try FileSystem.fsyncDirectory(pinsDirectory)
    }

    /// The manifests pinned in a repository.
    public func pins(_ name: RepositoryName) throws(StoreError) -> [Descriptor] {
        let directory = repositoryDirectory(name) + "/pins"
        var result: [Descriptor] = []
        for file in FileSystem.list(directory).sorted() where file.hasPrefix("sha256-") {
            let data = try FileSystem.read(directory + "/" + file)
            guard let descriptor = try? JSONDecoder().decode(Descriptor.self, from: data), "sha256-" + descriptor.digest.hex == file else {
                throw .corruptTag(repository: name.value, version: file, path: directory + "/" + file)
            }
            result.append(descriptor)
        }
        return result
    }
}
