import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// The path of a blob's file (whether or not it exists).
    public func blobPath(_ digest: Digest) -> String { blobsDirectory + "/" + digest.hex }

    /// Whether the blob is present.
    public func hasBlob(_ digest: Digest) -> Bool { FileSystem.exists(blobPath(digest)) }

    /// The size of a present blob.
    public func blobSize(_ digest: Digest) throws(StoreError) -> Int64 {
        var info = stat()
        guard stat(blobPath(digest), &info) == 0 else {
            if errno == ENOENT { throw .blobMissing(digest) }
            throw FileSystem.failure(blobPath(digest))
        }
        return Int64(info.st_size)
    }

    /// Reads a small blob (a manifest or config, at most 4 MiB) and checks it against its digest.
    public func readBlob(_ digest: Digest) throws(StoreError) -> Data {
        guard hasBlob(digest) else { throw .blobMissing(digest) }
        let data = try FileSystem.read(blobPath(digest))
        let actual = Digest.of(data)
        guard actual == digest else { throw .blobCorrupt(expected: digest, actual: actual) }
        return data
    }

    /// Whether the blob is present with `size` bytes: one of another size (cut short by a crash of the
    /// disk, or by hand) is written again, not kept.
    func hasBlob(_ digest: Digest, size: Int64) -> Bool { (try? blobSize(digest)) == size }

    /// Stores bytes as a blob; returns its digest. Storing a blob that exists whole is a no-op.
    @discardableResult
    public func writeBlob(_ data: Data) throws(StoreError) -> Digest {
        let digest = Digest.of(data)
        if hasBlob(digest, size: Int64(data.count)) { return digest }
        let staged = try FileSystem.stage(data, in: temporaryDirectory)
        try commit(stagedFile: staged, as: digest)
        return digest
    }

    /// Starts a blob whose bytes are written through the returned file descriptor; call
    /// ``BlobUpload/commit(as:)`` with the digest the writer computed, or ``BlobUpload/abandon()``.
    public func beginBlob() throws(StoreError) -> BlobUpload {
        let (fd, path) = try FileSystem.temporaryFile(in: temporaryDirectory, prefix: "blob")
        return BlobUpload(store: self, fd: fd, path: path)
    }

    /// Moves a fully written, fsynced temporary file into place as the blob `digest`.
    func commit(stagedFile: String, as digest: Digest) throws(StoreError) {
        let destination = blobPath(digest)
        // rename() replaces atomically; if another writer committed the same content first, the bytes are
        // identical, so either file is right.
        guard rename(stagedFile, destination) == 0 else {
            let error = FileSystem.failure(destination)
            unlink(stagedFile)
            throw error
        }
        try FileSystem.fsyncDirectory(blobsDirectory)
    }
}

/// A blob being written into the store.
public final class BlobUpload {
    public let store: Store
    /// Write the blob's bytes here.
    public let fd: Int32
    let path: String
    private var open = true

    init(store: Store, fd: Int32, path: String) {
        self.store = store
        self.fd = fd
        self.path = path
    }

    deinit { abandon() }

    /// Makes the written bytes the blob `digest`. The caller vouches for the digest because it hashed
    /// the bytes as it wrote them; ``Store/verifyBlob(_:)`` (and fsck) check it again.
    public func commit(as digest: Digest) throws(StoreError) {
        guard open else { return }
        open = false
        defer { close(fd) }
        do {
            try FileSystem.fsync(fd, path: path)
            fchmod(fd, 0o444)
            var staged = stat()
            if fstat(fd, &staged) == 0, store.hasBlob(digest, size: Int64(staged.st_size)) {
                unlink(path)
                return
            }
            try store.commit(stagedFile: path, as: digest)
        } catch {
            unlink(path)
            throw error
        }
    }

    /// Discards what was written.
    public func abandon() {
        guard open else { return }
        open = false
        close(fd)
        unlink(path)
    }
}
