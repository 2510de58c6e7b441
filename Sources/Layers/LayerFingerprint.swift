import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// What a layer's bytes depend on, hashed, so an unchanged layer need not be written again.
///
/// Like git's index, a file in the build context stands for its contents through the `stat` data read
/// when the context was walked (``FileStamp``): device, inode, size, and modification and change times to
/// the nanosecond (the change time moves on every write and cannot be set back). Bytes taken out of
/// archives are hashed. Every entry's path, kind, mode and owner go in, and so do the writer's settings.
public enum LayerFingerprint {
    /// Bumped whenever the layer writer's output for the same input changes.
    public static let writerFormat = "imgbuild-layer-v4"

    /// Files changed less than this long before their stat data was read are "racily clean": their
    /// stat data could stay the same through another write in the same clock tick, so such a layer is
    /// not cached.
    public static let racyWindow: Int = 2

    /// The fingerprint of a layer whose entries hash to `contents` (``contents(of:spool:)``), written
    /// with `settings` (e.g. compression and mtime).
    public static func combining(_ contents: Digest, settings: String) -> Digest {
        Digest.of(Data("\(writerFormat)\n\(settings)\n\(contents)\n".utf8))
    }

    /// What finalized `entries` (spooled contents in `spool`) stand for, without the writer's settings:
    /// a context snapshot keeps it, so that a build with other settings (a new SOURCE_DATE_EPOCH on every
    /// commit, say) needs no snapshot of its own. Nil when the layer should not be cached: a file without
    /// stat data, or changed within the racy window before `walkStarted` (seconds since 1970, when its
    /// stat data began to be read) or since.
    public static func contents(of entries: [LayerEntry], spool: Spool?,
                                walkStarted: Int = Int(Date().timeIntervalSince1970)) throws(LayerError) -> Digest? {
        let hasher = SHA256Hasher()
        let recent = walkStarted - racyWindow
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 16)
        func add<T>(_ value: T) {
            withUnsafeBytes(of: value) { buffer.append(contentsOf: $0) }
        }
        func add(_ text: String) {
            var text = text
            text.withUTF8 { buffer.append(contentsOf: $0) }
            buffer.append(0)
        }
        for entry in entries {
            add(entry.path)
            add(entry.mode)
            add(entry.uid)
            add(entry.gid)
            switch entry.kind {
            case .directory:
                buffer.append(UInt8(ascii: "d"))
            case .symlink(let target):
                buffer.append(UInt8(ascii: "l"))
                add(target)
            case .hardlink(let target):
                buffer.append(UInt8(ascii: "h"))
                add(target)
            case .regularFile(.file(_, let size, let stamp)):
                guard let stamp, stamp.size == size else { return nil }
                if stamp.touched(since: recent) { return nil }
                buffer.append(UInt8(ascii: "f"))
                add(stamp.device)
                add(stamp.inode)
                add(stamp.size)
                add(stamp.modified.tv_sec)
                add(stamp.modified.tv_nsec)
                add(stamp.changed.tv_sec)
                add(stamp.changed.tv_nsec)
            case .regularFile(.spool(let offset, let size)):
                guard let spool else { return nil }
                let contents = SHA256Hasher()
                try spool.read(offset: offset, size: size) { contents.update($0) }
                buffer.append(UInt8(ascii: "s"))
                add(contents.finalize().description)
            }
            if buffer.count > 1 << 15 {
                buffer.withUnsafeBytes { hasher.update($0) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        buffer.withUnsafeBytes { hasher.update($0) }
        return hasher.finalize()
    }
}
