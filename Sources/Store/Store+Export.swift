import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Writes an image (and everything it reaches) into a standalone OCI image layout at `directory`,
    /// creating it if absent and reusing blobs it already holds. `refName` becomes the
    /// `org.opencontainers.image.ref.name` annotation in the layout's `index.json`.
    ///
    /// Every copied blob is re-hashed as it is copied; a blob that does not match its digest is not kept.
    public func exportLayout(_ manifest: Descriptor, refName: String?, to directory: String) throws(StoreError) {
        let blobs = try reachableBlobs(from: manifest)
        let layoutBlobs = directory + "/blobs/sha256"
        if FileSystem.exists(directory) && !FileSystem.exists(directory + "/oci-layout") && !FileSystem.list(directory).isEmpty {
            throw .io(path: directory, reason: "exists, is not empty and is not an OCI image layout: choose a new or empty folder")
        }
        try FileSystem.makeDirectories(layoutBlobs)
        let temporary = directory + "/.imgbuild-tmp"
        try FileSystem.makeDirectories(temporary)
        defer { try? FileManager.default.removeItem(atPath: temporary) }

        for blob in blobs {
            let destination = layoutBlobs + "/" + blob.digest.hex
            if FileSystem.exists(destination) { continue }
            try copyBlob(blob.digest, to: destination, temporaryDirectory: temporary)
        }
        try FileSystem.fsyncDirectory(layoutBlobs)

        var index = ImageIndex(manifests: [])
        let indexPath = directory + "/index.json"
        if FileSystem.exists(indexPath) {
            let data = try FileSystem.read(indexPath)
            guard let existing = try? JSONDecoder().decode(ImageIndex.self, from: data) else {
                throw .io(path: indexPath, reason: "not a valid OCI index.json")
            }
            index = existing
        }
        var entry = manifest
        entry.annotations = refName.map { [AnnotationKey.refName: $0] }
        if let refName, let clash = index.manifests.first(where: { $0.annotations?[AnnotationKey.refName] == refName }) {
            guard clash.digest == manifest.digest else {
                throw .layoutConflict(path: directory, refName: refName, existing: clash.digest, requested: manifest.digest)
            }
        } else if !index.manifests.contains(where: { $0.digest == manifest.digest && $0.annotations == entry.annotations }) {
            index.manifests.append(entry)
        }
        try FileSystem.replace(directory + "/oci-layout", with: try! CanonicalJSON.encode(ImageLayoutHeader()), temporaryDirectory: temporary)
        try FileSystem.replace(indexPath, with: try! CanonicalJSON.encode(index), temporaryDirectory: temporary)
    }

    /// Copies a blob to `destination` through a temporary file, verifying its digest on the way.
    func copyBlob(_ digest: Digest, to destination: String, temporaryDirectory: String) throws(StoreError) {
        let (fd, temporaryPath) = try FileSystem.temporaryFile(in: temporaryDirectory, prefix: "copy")
        defer { close(fd); unlink(temporaryPath) }
        let hasher = SHA256Hasher()
        do {
            try FileChunks.forEach(path: blobPath(digest)) { chunk in
                hasher.update(chunk)
                try FileSystem.writeAll(fd, chunk, path: temporaryPath)
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw hasBlob(digest) ? .io(path: blobPath(digest), reason: "\(error)") : .blobMissing(digest)
        }
        let actual = hasher.finalize()
        guard actual == digest else { throw .blobCorrupt(expected: digest, actual: actual) }
        try FileSystem.fsync(fd, path: temporaryPath)
        fchmod(fd, 0o444)
        guard rename(temporaryPath, destination) == 0 else { throw FileSystem.failure(destination) }
    }
}
