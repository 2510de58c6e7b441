import Foundation
import Layers
import OCI
import Store

/// Layers already written, by fingerprint (``LayerFingerprint``): a no-op rebuild reads no file and
/// compresses nothing. Records live in the build cache (`CACHE/layers/<hex>.json`); a record counts only
/// while its blob is in the store being built into.
struct LayerCache {
    let directory: String

    init(cacheDirectory: String) {
        directory = cacheDirectory + "/layers"
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
