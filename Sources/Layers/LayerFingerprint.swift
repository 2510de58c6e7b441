import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// What a layer's bytes depend on, hashed, so an unchanged layer need not be written again.
///
/// Like git's index, a file in the build context stands for its contents through its `stat` data:
/// device, inode, size, and modification and change times to the nanosecond (the change time moves on
/// every write and cannot be set back). Bytes taken out of archives are hashed. Every entry's path,
/// kind, mode and owner go in, and so do the writer's settings.
public enum LayerFingerprint {
    /// Bumped whenever the layer writer's output for the same input changes.
    public static let writerFormat = "imgbuild-layer-v3"

    /// Files changed less than this long before the fingerprint was taken are "racily clean": their
    /// stat data could stay the same through another write in the same clock tick, so such a layer is
    /// not cached.
    public static let racyWindow: Int64 = 2

    /// The fingerprint of `tree` written with `settings` (e.g. compression and mtime), or nil when the
    /// layer should not be cached (a file changed within the racy window, or cannot be stat'ed).
    public static func of(_ tree: LayerTree, settings: String) throws(LayerError) -> Digest? {
        let hasher = SHA256Hasher()
        hasher.update(Data("\(writerFormat)\n\(settings)\n".utf8))
        let now = Int64(Date().timeIntervalSince1970)
        for entry in try tree.finalizedEntries() {
            var line = "\(entry.path)\u{0}\(entry.mode)\u{0}\(entry.uid)\u{0}\(entry.gid)\u{0}"
            switch entry.kind {
            case .directory:
                line += "d"
            case .symlink(let target):
                line += "l\u{0}\(target)"
            case .hardlink(let target):
                line += "h\u{0}\(target)"
            case .regularFile(.file(let path, let size)):
                var info = stat()
                guard stat(path, &info) == 0, Int64(info.st_size) == size else { return nil }
                if Int64(info.st_mtim.tv_sec) >= now - racyWindow || Int64(info.st_ctim.tv_sec) >= now - racyWindow { return nil }
                line += "f\u{0}\(info.st_dev):\(info.st_ino):\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec):\(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)"
            case .regularFile(.spool(let offset, let size)):
                guard let spool = tree.spool else { return nil }
                let contents = SHA256Hasher()
                try spool.read(offset: offset, size: size) { contents.update($0) }
                line += "s\u{0}\(contents.finalize())"
            }
            line += "\n"
            hasher.update(Data(line.utf8))
        }
        return hasher.finalize()
    }
}
