import DebianArchive
import CArchive
import Foundation

/// Reads archives (any format and compression libarchive knows) and Debian packages into a
/// ``LayerTree``, keeping their modes, owners, symlinks and hard links, and copying file contents into
/// the tree's spool.
///
/// Entries that could escape the image root (`..`, hard links to outside), device files and fifos are
/// refused; leading `/` and `./` are dropped. What the files of one archive hold together, holes of
/// sparse files included, is bounded by ``maxBytes``, checked against each entry's declared size before
/// any of it is read.
public struct ArchiveImporter {
    /// A name for the archive in messages (its path in the Imagefile).
    public let label: String
    /// The most bytes the files of one archive (or package) may hold together once unpacked.
    public let maxBytes: Int64

    /// 16 GiB: far more than any dependency needs, far less than a sparse file can claim.
    public static let defaultMaxBytes: Int64 = 16 << 30

    public init(label: String, maxBytes: Int64 = ArchiveImporter.defaultMaxBytes) {
        self.label = label
        self.maxBytes = maxBytes
    }

    /// Adds every entry of the archive at `path` below `prefix` (a layer path, "" for the root).
    public func importArchive(at path: String, under prefix: String, into tree: inout LayerTree) throws(LayerError) {
        try withUTF8Locale { () throws(LayerError) in try importArchiveEntries(at: path, under: prefix, into: &tree) }
    }

    /// Adds the files of a Debian package (its `data.tar.*` member) at the image root, and its control
    /// paragraph as `var/lib/dpkg/status.d/NAME`; returns that paragraph (nil if it has none).
    @discardableResult
    public func importDebianPackage(at path: String, into tree: inout LayerTree) throws(LayerError) -> [UInt8]? {
        try withUTF8Locale { () throws(LayerError) in try importDebianEntries(at: path, into: &tree) }
    }

    private func importArchiveEntries(at path: String, under prefix: String, into tree: inout LayerTree) throws(LayerError) {
        let reader = try ArchiveReader(path: path, label: label)
        var total: Int64 = 0
        try reader.forEachEntry { entry throws(LayerError) in try add(entry, reader: reader, prefix: prefix, into: &tree, total: &total) }
    }

    /// Where a package's control paragraph goes in the image, one file per package, as distroless images
    /// keep it, so scanners and ``SBOM`` generators find the packages without a dpkg database.
    public static let packageRecordFolder = "var/lib/dpkg/status.d"

    /// dpkg's own database file: written for locked `packages`, so `dpkg --root … -l` lists them.
    public static let dpkgStatusPath = "var/lib/dpkg/status"

    /// A dpkg status file of `controls` (packages' control paragraphs): each marked installed, sorted by
    /// package name, separated by empty lines, as dpkg writes it.
    public static func dpkgStatus(_ controls: [[UInt8]]) -> [UInt8] {
        var paragraphs: [(name: String, text: String)] = []
        for control in controls {
            var lines = String(decoding: control, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            while let last = lines.last, last.trimmingCharacters(in: .whitespaces).isEmpty { lines.removeLast() }
            lines.removeAll { $0.lowercased().hasPrefix("status:") }
            guard let packageLine = lines.firstIndex(where: { $0.lowercased().hasPrefix("package:") }) else { continue }
            lines.insert("Status: install ok installed", at: packageLine + 1)
            let name = lines[packageLine].dropFirst("package:".count).trimmingCharacters(in: .whitespaces)
            paragraphs.append((name, lines.joined(separator: "\n") + "\n"))
        }
        return Array(paragraphs.sorted { $0.name < $1.name }.map(\.text).joined(separator: "\n").utf8)
    }

    private func importDebianEntries(at path: String, into tree: inout LayerTree) throws(LayerError) -> [UInt8]? {
        let outer = try ArchiveReader(path: path, label: label, formats: .ar)
        var found = false
        var control: [UInt8]?
        try outer.forEachEntry { member throws(LayerError) in
            guard let name = archive_entry_pathname(member).map({ String(cString: $0) }) else { return }
            if name.hasPrefix("control.tar"), control == nil {
                let inner = try ArchiveReader(member: outer, label: "\(label) (\(name))")
                try inner.forEachEntry { entry throws(LayerError) in
                    let entryName = (archive_entry_pathname(entry).map { String(cString: $0) } ?? "")
                    guard LayerPath.normalize(entryName) == "control" else { return }
                    var bytes: [UInt8] = []
                    try inner.copyData(of: entry, named: entryName, limit: 1 << 20, tooLarge: { size, _ in
                        "a control file over 1 MiB (\(size) bytes)"
                    }) { chunk throws(LayerError) in bytes.append(contentsOf: chunk) }
                    control = bytes
                }
                return
            }
            guard !found, name.hasPrefix("data.tar") else { return }
            found = true
            let inner = try ArchiveReader(member: outer, label: "\(label) (\(name))")
            var total: Int64 = 0
            try inner.forEachEntry { entry throws(LayerError) in try add(entry, reader: inner, prefix: "", into: &tree, total: &total) }
        }
        guard found else { throw .notADebianPackage(path: label) }
        guard let control, let package = DebianControl(String(decoding: control, as: UTF8.self)).field("Package"),
              LayerPath.normalize(package) == package, !package.contains("/") else { return nil }
        try tree.insertFile(ArchiveImporter.packageRecordFolder + "/" + package, bytes: control, mode: 0o644)
        return control
    }

    private func add(_ entry: OpaquePointer, reader: ArchiveReader, prefix: String, into tree: inout LayerTree,
                     total: inout Int64) throws(LayerError) {
        let rawPath = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
        guard let relative = LayerPath.normalize(rawPath) else {
            throw .unsafeArchiveEntry(archive: label, entry: rawPath, reason: "it climbs out of its folder with '..'")
        }
        let path = LayerPath.join(prefix, relative)
        let mode = UInt32(archive_entry_perm(entry)) & 0o7777
        let uid = Int(archive_entry_uid(entry))
        let gid = Int(archive_entry_gid(entry))
        if let hardlink = archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry) {
            let raw = String(cString: hardlink)
            guard let target = LayerPath.normalize(raw), !target.isEmpty else {
                throw .unsafeArchiveEntry(archive: label, entry: rawPath, reason: "its hard link target '\(raw)' lies outside the archive")
            }
            tree.insert(LayerEntry(path: path, kind: .hardlink(target: LayerPath.join(prefix, target)), mode: mode, uid: uid, gid: gid))
            return
        }
        if path.isEmpty { return }  // the archive's own root folder
        switch archive_entry_filetype(entry) {
        case ArchiveFileType.directory:
            tree.insert(LayerEntry(path: path, kind: .directory, mode: mode, uid: uid, gid: gid))
        case ArchiveFileType.regular:
            guard let spool = tree.spool else { throw .writeFailed(reason: "no spool to hold archive contents") }
            let offset = spool.currentLength
            let (maxBytes, used) = (self.maxBytes, total)
            let size = try reader.readPieces(of: entry, named: rawPath, limit: maxBytes - used, tooLarge: { size, declared in
                sizeRefusal(size, declared: declared, limit: maxBytes, used: used, of: "what one archive may unpack to")
            }) { piece throws(LayerError) in
                switch piece {
                case .bytes(let bytes): try spool.append(bytes)
                case .hole(let count): try spool.appendHole(count)
                }
            }
            total += size
            tree.insert(LayerEntry(path: path, kind: .regularFile(.spool(offset: offset, size: size)), mode: mode, uid: uid, gid: gid))
        case ArchiveFileType.symlink:
            let target = (archive_entry_symlink_utf8(entry) ?? archive_entry_symlink(entry)).map { String(cString: $0) } ?? ""
            guard !target.isEmpty else { throw .unsafeArchiveEntry(archive: label, entry: rawPath, reason: "a symlink with an empty target") }
            tree.insert(LayerEntry(path: path, kind: .symlink(target: target), mode: 0o777, uid: uid, gid: gid))
        case ArchiveFileType.characterDevice, ArchiveFileType.blockDevice:
            throw .unsafeArchiveEntry(archive: label, entry: rawPath, reason: "device files are not allowed in images built by imgbuild")
        case ArchiveFileType.fifo, ArchiveFileType.socket:
            throw .unsafeArchiveEntry(archive: label, entry: rawPath, reason: "fifos and sockets are not allowed in images built by imgbuild")
        default:
            throw .unsafeArchiveEntry(archive: label, entry: rawPath, reason: "an entry of unknown type")
        }
    }
}

/// Why an entry of `size` bytes is refused: `declared` when that is the size its headers claim (for a
/// sparse file, its real size, holes included), else the size its contents reached; `used` bytes of the
/// `limit` on `what` were taken before it.
func sizeRefusal(_ size: Int64, declared: Bool, limit: Int64, used: Int64, of what: String) -> String {
    let claim = declared ? "it declares a size of \(size) bytes" : "its contents reach \(size) bytes"
    let bound = used == 0 ? "the limit of \(limit) bytes on \(what)"
        : "the \(limit - used) bytes left of the limit of \(limit) bytes on \(what) (\(used) already taken)"
    return "\(claim), more than \(bound)"
}

/// A libarchive reader over a file, or over the current member of another reader (a `.deb`'s data.tar).
final class ArchiveReader {
    enum Formats { case all, ar, tar }

    let archive: OpaquePointer
    let label: String
    /// Keeps the outer reader alive while an inner one reads from it.
    private let outer: ArchiveReader?

    init(path: String, label: String, formats: Formats = .all) throws(LayerError) {
        guard let archive = archive_read_new() else { throw .unreadableArchive(path: label, reason: "libarchive out of memory") }
        self.archive = archive
        self.label = label
        self.outer = nil
        switch formats {
        case .all:
            archive_read_support_filter_all(archive)
            archive_read_support_format_all(archive)
        case .ar:
            archive_read_support_filter_none(archive)
            archive_read_support_format_ar(archive)
        case .tar:
            archive_read_support_filter_all(archive)
            archive_read_support_format_tar(archive)
        }
        guard archive_read_open_filename(archive, path, 1 << 16) == ARCHIVE_OK else {
            throw .unreadableArchive(path: label, reason: archiveError(archive))
        }
    }

    init(member outer: ArchiveReader, label: String) throws(LayerError) {
        guard let archive = archive_read_new() else { throw .unreadableArchive(path: label, reason: "libarchive out of memory") }
        self.archive = archive
        self.label = label
        self.outer = outer
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        let status = archive_read_open(archive, Unmanaged.passUnretained(outer).toOpaque(), nil, memberReadCallback, nil)
        guard status == ARCHIVE_OK else { throw .unreadableArchive(path: label, reason: archiveError(archive)) }
    }

    deinit { archive_read_free(archive) }

    /// Calls `body` with each entry header in order.
    func forEachEntry(_ body: (OpaquePointer) throws(LayerError) -> Void) throws(LayerError) {
        var count = 0
        while true {
            var entry: OpaquePointer?
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { break }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else {
                throw .unreadableArchive(path: label, reason: archiveError(archive))
            }
            count += 1
            try body(entry)
        }
        if count == 0 && archive_format(archive) == 0 {
            throw .unreadableArchive(path: label, reason: "it is empty or not an archive")
        }
    }

    /// A piece of an entry's contents, in order.
    enum Piece {
        /// Bytes stored in the archive.
        case bytes(UnsafeRawBufferPointer)
        /// A run of zeros the archive does not store (a hole of a sparse file): only its length, which no
        /// caller should allocate — it can be a petabyte in a tar of a few kilobytes.
        case hole(Int64)
    }

    /// Streams the current entry's contents as bytes and holes, in order, and returns its length.
    ///
    /// Everything is bounded here, before anything is allocated or written: the entry's declared size
    /// (for a sparse file the real size its headers claim, holes included) must not exceed `limit`, nor
    /// may the end of any piece, and a sparse map whose offsets go backwards or overlap is refused, so
    /// every piece starts where the previous one ended. `tooLarge` words the reason of the refusal, given
    /// the size the entry would reach and whether that size is the declared one.
    func readPieces(of entry: OpaquePointer, named name: String, limit: Int64,
                    tooLarge: (_ size: Int64, _ declared: Bool) -> String,
                    _ body: (Piece) throws(LayerError) -> Void) throws(LayerError) -> Int64 {
        func refuse(_ reason: String) -> LayerError { .unsafeArchiveEntry(archive: label, entry: name, reason: reason) }
        if archive_entry_size_is_set(entry) != 0 {
            let declared = archive_entry_size(entry)
            guard declared >= 0 else { throw refuse("a negative size (\(declared) bytes)") }
            guard declared <= limit else { throw refuse(tooLarge(declared, true)) }
        }
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        var expected: Int64 = 0
        while true {
            let status = archive_read_data_block(archive, &block, &size, &offset)
            let atEnd = status == ARCHIVE_EOF
            guard atEnd || status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw .unreadableArchive(path: label, reason: archiveError(archive))
            }
            // At the end libarchive reports the entry's full length (a tar's sparse real size, a RAR's
            // unpacked size): anything past the last piece is a trailing hole.
            if atEnd { size = 0; if offset <= expected { return expected } }
            guard offset >= expected || size == 0 else {
                throw refuse("its sparse map goes backwards or overlaps: data at offset \(offset) after \(expected) bytes were already read")
            }
            let (end, overflow) = max(offset, expected).addingReportingOverflow(Int64(size))
            guard !overflow, end <= limit else { throw refuse(tooLarge(overflow ? Int64.max : end, false)) }
            if offset > expected { try body(.hole(offset - expected)) }
            if size > 0 { try body(.bytes(UnsafeRawBufferPointer(start: block, count: size))) }
            expected = end
            if atEnd { return expected }
        }
    }

    /// Streams the current entry's contents as bytes, holes as zeros in pieces of at most 64 KiB, with
    /// the bounds of ``readPieces(of:named:limit:tooLarge:_:)``; returns its length.
    @discardableResult
    func copyData(of entry: OpaquePointer, named name: String, limit: Int64,
                  tooLarge: (_ size: Int64, _ declared: Bool) -> String,
                  _ body: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) -> Int64 {
        var zeros: UnsafeMutableRawBufferPointer?
        defer { zeros?.deallocate() }
        return try readPieces(of: entry, named: name, limit: limit, tooLarge: tooLarge) { piece throws(LayerError) in
            switch piece {
            case .bytes(let bytes):
                try body(bytes)
            case .hole(var count):
                let chunk = zeros ?? {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
                    buffer.initializeMemory(as: UInt8.self, repeating: 0)
                    zeros = buffer
                    return buffer
                }()
                while count > 0 {
                    let piece = Int(min(count, Int64(chunk.count)))
                    try body(UnsafeRawBufferPointer(rebasing: chunk[0..<piece]))
                    count -= Int64(piece)
                }
            }
        }
    }
}

private let memberReadCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeRawPointer?>?) -> Int = {
    _, client, buffer in
    let outer = Unmanaged<ArchiveReader>.fromOpaque(client!).takeUnretainedValue()
    var block: UnsafeRawPointer?
    var size = 0
    var offset: la_int64_t = 0
    let status = archive_read_data_block(outer.archive, &block, &size, &offset)
    if status == ARCHIVE_EOF { return 0 }
    guard status == ARCHIVE_OK || status == ARCHIVE_WARN else { return -1 }
    buffer?.pointee = block
    return size
}
