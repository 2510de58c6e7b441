import Foundation
import Imagefile
import Layers
import OCI
import Store
#if canImport(Glibc)
import Glibc
#endif

/// Layers already written, by fingerprint (``LayerFingerprint``): a no-op rebuild reads no file and
/// compresses nothing. Records live in the build cache (`CACHE/layers/<hex>.json`); a record counts only
/// while its blob is in the store being built into.
///
/// Beside them, for each section of the context, the snapshot of its last walk (``ContextSnapshot``)
/// with the fingerprint it gave (`CACHE/contexts/<key hex>`): while the snapshot holds, the section
/// need not be walked to know its fingerprint.
struct LayerCache {
    let directory: String
    let contexts: String

    init(cacheDirectory: String) {
        directory = cacheDirectory + "/layers"
        contexts = cacheDirectory + "/contexts"
    }

    /// A section's snapshot and the fingerprint of the layer its walk gave.
    struct SnapshotRecord {
        var fingerprint: Digest
        var snapshot: ContextSnapshot.Encoded
    }

    /// What names a section's snapshot: everything its walk and its layer's fingerprint depend on other
    /// than the files (the context, the section's `copy` instructions, the writer's settings, and who
    /// reads, since a file's readability depends on it).
    static func snapshotKey(section: String, copies: [Imagefile.Copy], context: String, settings: String) -> Digest {
        var text = "\(LayerFingerprint.writerFormat)\n\(settings)\n\(section)\n\(context)\n\(geteuid()):\(getegid())\n"
        for copy in copies {
            let owner = copy.owner.map { "\($0.uid):\($0.gid)" } ?? "-"
            let mode = copy.fileMode.map { String($0, radix: 8) } ?? "-"
            text += [copy.source, copy.destination, owner, mode].joined(separator: "\u{0}") + "\u{0}"
            text += copy.excludes.map(\.pattern).joined(separator: "\u{0}") + "\n"
        }
        return Digest.of(Data(text.utf8))
    }

    func snapshot(_ key: Digest) -> SnapshotRecord? {
        guard let data = FileManager.default.contents(atPath: contexts + "/" + key.hex) else { return nil }
        let bytes = [UInt8](data)
        // The fingerprint's hex and a newline, then the snapshot.
        guard bytes.count > 65, bytes[64] == UInt8(ascii: "\n"),
              let fingerprint = Digest(hex: String(decoding: bytes[..<64], as: UTF8.self)),
              let snapshot = ContextSnapshot.Encoded(Array(bytes[65...])) else { return nil }
        return SnapshotRecord(fingerprint: fingerprint, snapshot: snapshot)
    }

    /// Keeps a section's snapshot with the fingerprint its walk gave; a failure only costs a walk later.
    func remember(_ snapshot: ContextSnapshot, fingerprint: Digest, as key: Digest) {
        var bytes = Array((fingerprint.hex + "\n").utf8)
        bytes.append(contentsOf: snapshot.encoded())
        try? FileManager.default.createDirectory(atPath: contexts, withIntermediateDirectories: true)
        try? Data(bytes).write(to: URL(fileURLWithPath: contexts + "/" + key.hex), options: .atomic)
    }

    func lookup(_ fingerprint: Digest, in store: Store) -> WrittenLayer? {
        guard let data = FileManager.default.contents(atPath: path(fingerprint)),
              let record = try? JSONDecoder().decode(WrittenLayer.self, from: data),
              store.hasBlob(record.digest), (try? store.blobSize(record.digest)) == record.size else { return nil }
        return record
    }

    /// Records a written layer; a failure only costs a rebuild later.
    func remember(_ layer: WrittenLayer, as fingerprint: Digest) {
        guard let data = try? JSONEncoder().encode(layer) else { return }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? data.write(to: URL(fileURLWithPath: path(fingerprint)), options: .atomic)
    }

    private func path(_ fingerprint: Digest) -> String { directory + "/" + fingerprint.hex + ".json" }

}
