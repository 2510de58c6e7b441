/// The content of one layer while it is being assembled: entries by path, where a later entry for the
/// same path replaces an earlier one (as extracting archives in order would).
///
/// ``finalizedEntries()`` yields every entry sorted by the bytes of its path, with each missing parent
/// directory added, which is the order and completeness that make a tar stream reproducible.
public struct LayerTree: Sendable {
    private var entries: [String: LayerEntry] = [:]
    /// Where bytes taken out of archives are kept until the layer is written.
    public let spool: Spool?

    public init(spool: Spool? = nil) {
        self.spool = spool
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }

    /// Adds an entry, replacing one at the same path. A directory added over a directory keeps the
    /// later one's metadata.
    public mutating func insert(_ entry: LayerEntry) {
        if !entry.isDirectory, let old = entries[entry.path], old.isDirectory {
            // A file replacing a directory removes what was below it.
            let prefix = entry.path + "/"
            entries = entries.filter { !$0.key.hasPrefix(prefix) }
        }
        entries[entry.path] = entry
    }

    /// Adds a regular file (owner 0:0) whose bytes are `bytes`, kept in the spool.
    public mutating func insertFile(_ path: String, bytes: [UInt8], mode: UInt32) throws(LayerError) {
        guard let spool else { throw .writeFailed(reason: "no spool to hold \(path)") }
        let offset = spool.currentLength
        var failure: LayerError?
        bytes.withUnsafeBytes { raw in
            do throws(LayerError) { try spool.append(raw) } catch { failure = error }
        }
        if let failure { throw failure }
        insert(LayerEntry(path: path, kind: .regularFile(.spool(offset: offset, size: Int64(bytes.count))), mode: mode))
    }

    /// The entry at a path, if any.
    public subscript(path: String) -> LayerEntry? { entries[path] }

    /// All entries sorted by path bytes, with missing parent directories (mode 0755, owner 0:0) added.
    public func finalizedEntries() throws(LayerError) -> [LayerEntry] {
        var all = entries
        for path in entries.keys {
            var parent = LayerPath.parent(of: path)
            while let p = parent {
                if let existing = all[p] {
                    guard existing.isDirectory else { throw .pathConflict(path: path, blocker: p) }
                    break
                }
                all[p] = LayerEntry(path: p, kind: .directory, mode: 0o755)
                parent = LayerPath.parent(of: p)
            }
        }
        for entry in all.values {
            if case .hardlink(let target) = entry.kind {
                guard let t = all[target], case .regularFile = t.kind else {
                    throw .hardlinkTargetMissing(path: entry.path, target: target)
                }
            }
        }
        // Sorting the keys and then looking entries up moves far less than sorting the entries themselves.
        return all.keys.sorted(by: LayerPath.precedes).map { all[$0]! }
    }
}
