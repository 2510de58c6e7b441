import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Where blob upload sessions of `imgbuild serve` keep their bytes until they are complete.
    public var uploadsDirectory: String { root + "/uploads" }

    /// Starts an upload session; returns its id (a UUID) and creates its empty file.
    public func newUploadSession() throws(StoreError) -> String {
        try FileSystem.makeDirectories(uploadsDirectory)
        let id = UUID().uuidString.lowercased()
        let fd = Glibc.open(uploadsDirectory + "/" + id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FileSystem.failure(uploadsDirectory) }
        close(fd)
        return id
    }

    /// The file of an upload session, if `id` names one (ids are UUIDs; nothing else is accepted).
    public func uploadPath(_ id: String) -> String? {
        guard id.count == 36, id.allSatisfy({ $0.isHexDigit || $0 == "-" }), UUID(uuidString: id) != nil else { return nil }
        let path = uploadsDirectory + "/" + id
        return FileSystem.exists(path) ? path : nil
    }

    /// Bytes an upload session holds so far.
    public func uploadSize(_ id: String) -> Int64? {
        guard let path = uploadPath(id) else { return nil }
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }

    /// Ends an upload session without keeping anything.
    public func cancelUpload(_ id: String) {
        if let path = uploadPath(id) { unlink(path) }
    }

    /// Makes a finished file the blob `expected`: re-hashes it, and only if the digest matches fsyncs it
    /// and renames it into place. A mismatch removes the file and throws, so nothing unverified is ever
    /// visible.
    public func commitFile(at path: String, as expected: Digest) throws(StoreError) {
        let actual: Digest
        do { actual = try Digest.ofFile(atPath: path).digest } catch { throw .io(path: path, reason: "\(error)") }
        guard actual == expected else {
            unlink(path)
            throw .digestMismatch(expected: expected, actual: actual)
        }
        if hasBlob(expected) {
            unlink(path)
            return
        }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            Glibc.fsync(fd)
            fchmod(fd, 0o444)
            close(fd)
        }
        try commit(stagedFile: path, as: expected)
    }
}
