import Dispatch
import Foundation
import Imagefile
import Layers
import OCI
import Store
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Layers already written, by fingerprint (``LayerFingerprint``): a no-op rebuild reads no file and
/// compresses nothing. Records live in the build cache (`CACHE/layers/<hex>.json`); a record counts only
/// while its blob is in the store being built into.
///
/// Beside them, for each section of the context, the snapshot of its last walk (``ContextSnapshot``)
/// with what its entries hashed to (``LayerFingerprint/contents(of:spool:)``), in `CACHE/contexts/<key
/// hex>`: while the snapshot holds, the section need not be walked to know its layer's fingerprint. A
/// section has one snapshot whatever the writer's settings, replaced when its files change.
struct LayerCache {
    let directory: String
    let contexts: String

    init(cacheDirectory: String) {
        directory = cacheDirectory + "/layers"
        contexts = cacheDirectory + "/contexts"
    }

    /// A section's snapshot and what the entries of its walk hashed to.
    struct SnapshotRecord {
        var contents: Digest
        var snapshot: ContextSnapshot.Encoded

        /// Whether the record still vouches for `contents`: it is the one a check was planned on
        /// (another build may have replaced the file since), and the context stats as it says.
        func isUnchanged(from expected: Digest) -> Bool {
            contents == expected && snapshot.isUnchanged()
        }
    }

    /// What names a section's snapshot: everything its walk depends on other than the files (the
    /// context, the section's `copy` instructions, and who reads, since whether a file can be read depends
    /// on the user, the groups and the capabilities).
    /// Nil when who reads cannot be told (`/proc` unreadable): snapshots are then not used at all.
    static func snapshotKey(section: String, copies: [Imagefile.Copy], context: String) -> Digest? {
        guard let reader else { return nil }
        // Every field is preceded by its length, so no two different lists of fields (exclude patterns
        // may hold any character) make the same text.
        var text = ""
        func field(_ value: String) { text += "\(value.utf8.count):\(value)," }
        for value in [LayerFingerprint.writerFormat, section, context, reader] { field(value) }
        for copy in copies {
            field(copy.source)
            field(copy.destination)
            field(copy.owner.map { "\($0.uid):\($0.gid)" } ?? "-")
            field(copy.fileMode.map { String($0, radix: 8) } ?? "-")
            field("\(copy.excludes.count)")
            for exclude in copy.excludes { field(exclude.pattern) }
        }
        return Digest.of(Data(text.utf8))
    }

    /// Who this process reads files as: user, group, supplementary groups, effective capabilities, and
    /// the user namespace's id maps (root in a namespace of its own holds the same ids and capabilities
    /// as the host's root, yet cannot read what belongs to ids it has no mapping for). Nil when `/proc`
    /// does not tell.
    static let reader: String? = {
        var groups = [gid_t](repeating: 0, count: Int(getgroups(0, nil)) + 1)
        let count = max(0, Int(getgroups(Int32(groups.count), &groups)))
        guard let status = procText("/proc/self/status"),
              let capabilities = line(startingWith: "CapEff:", in: status),
              let uidMap = procText("/proc/self/uid_map"), let gidMap = procText("/proc/self/gid_map") else { return nil }
        // Made with plain loops: a no-op build's replay asks this at every start, and the generic paths
        // (an array's description, `joined` on substrings) each cost a scan of the binary's ~10,000
        // protocol conformances the first time they run.
        var sortedGroups = "["
        for (index, group) in groups[..<count].sorted().enumerated() {
            if index > 0 { sortedGroups += ", " }
            sortedGroups += String(group)
        }
        sortedGroups += "]"
        return "\(geteuid()):\(getegid()) groups \(sortedGroups) \(capabilities) uids \(squeezed(uidMap)) gids \(squeezed(gidMap))"
    }()

    /// The first line of `text` that starts with `prefix`, without its line break.
    private static func line(startingWith prefix: String, in text: String) -> String? {
        var rest = Substring(text)
        while !rest.isEmpty {
            let end = rest.firstIndex(of: "\n") ?? rest.endIndex
            if rest[..<end].hasPrefix(prefix) { return String(rest[..<end]) }
            rest = end == rest.endIndex ? "" : rest[rest.index(after: end)...]
        }
        return nil
    }

    /// `text` with each run of ASCII white space made one space, and none at either end (an id map's
    /// columns are padded to widths that differ between kernels).
    static func squeezed(_ text: String) -> String {
        var bytes: [UInt8] = []
        var pendingSpace = false
        for byte in text.utf8 {
            if byte == 0x20 || (0x09...0x0D).contains(byte) {
                pendingSpace = !bytes.isEmpty
            } else {
                if pendingSpace { bytes.append(0x20) }
                pendingSpace = false
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A small `/proc` file's text (its size reads as 0, so it is read to its end); nil if it cannot be
    /// read or is over 64 KiB. Plain reads: a no-op build's replay asks this at every start.
    private static func procText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count <= 1 << 16 {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return String(decoding: bytes, as: UTF8.self) }
            bytes += chunk[..<n]
        }
        return nil
    }

    /// What a section's snapshot vouches for, and the size of the snapshot, without reading it.
    func snapshotContents(_ key: Digest) -> (Digest, size: Int)? {
        withRecord(key) { _, contents, size in (contents, size) }
    }

    /// The record of a section's snapshot, read straight into the memory its check works on: its key and
    /// what its entries hashed to (each as hex and a newline), then the snapshot.
    func snapshot(_ key: Digest) -> SnapshotRecord? {
        withRecord(key) { fd, contents, size -> SnapshotRecord? in
            guard let storage = ByteStorage(reading: fd, offset: Self.header, size: size),
                  let snapshot = ContextSnapshot.Encoded(storage) else { return nil }
            return SnapshotRecord(contents: contents, snapshot: snapshot)
        } ?? nil
    }

    /// Where the record of `key` lies.
    func snapshotPath(_ key: Digest) -> String { contexts + "/" + key.hex }

    /// Opens the record of `key` and hands `body` its descriptor, what it vouches for and the size of its
    /// snapshot; nil when there is no such record.
    private func withRecord<T>(_ key: Digest, _ body: (Int32, Digest, Int) -> T) -> T? {
        // O_NONBLOCK: a FIFO put in a record's place is refused below, not waited on.
        let fd = open(snapshotPath(key), O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > Self.header, info.st_size < 1 << 31,
              let contents = Self.contents(fd, key: key) else { return nil }
        return body(fd, contents, Int(info.st_size) - Self.header)
    }

    /// The record's key and what it vouches for, each as hex and a newline.
    private static let header = 130

    /// What the record open at `fd` vouches for, if it is the record of `key` (a record copied or
    /// renamed to another key's name is no record).
    private static func contents(_ fd: Int32, key: Digest) -> Digest? {
        var text = [UInt8](repeating: 0, count: header)
        guard pread(fd, &text, header, 0) == header, text[64] == UInt8(ascii: "\n"), text[129] == UInt8(ascii: "\n"),
              text[..<64].elementsEqual(key.hex.utf8) else { return nil }
        return Digest(hex: String(decoding: text[65..<129], as: UTF8.self))
    }

    /// Keeps a section's snapshot with what its walk's entries hashed to; a failure only costs a walk later.
    func remember(_ snapshot: ContextSnapshot, contents: Digest, as key: Digest) {
        var bytes = Array((key.hex + "\n" + contents.hex + "\n").utf8)
        bytes.append(contentsOf: snapshot.encoded())
        try? FileManager.default.createDirectory(atPath: contexts, withIntermediateDirectories: true)
        try? Data(bytes).write(to: URL(fileURLWithPath: snapshotPath(key)), options: .atomic)
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

/// A snapshot's check, run on other threads while the build goes on (see ``Builder``).
final class BackgroundCheck: Sendable {
    private let done = DispatchGroup()
    private let unchanged = Atomic<Bool>(false)

    /// Starts `check`, which answers whether the context is unchanged.
    init(_ check: @escaping @Sendable () -> Bool) {
        done.enter()
        // A thread of its own: Dispatch's pool is as wide as the machine has cores, and the layers
        // written meanwhile compress on it.
        runDetached { [self] in
            unchanged.store(check(), ordering: .releasing)
            done.leave()
        }
    }

    /// Whether the context stats as the snapshot says, once the check has finished.
    func isUnchanged() async -> Bool {
        await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
            done.notify(queue: .global()) { finished.resume() }
        }
        return unchanged.load(ordering: .acquiring)
    }
}
