import CArchive
import Foundation

/// Reads archives (any format and compression libarchive knows) and Debian packages into a
/// ``LayerTree``, keeping their modes, owners, symlinks and hard links, and copying file contents into
/// the tree's spool.
///
/// Entries that could escape the image root (`..`, hard links to outside), device files and fifos are
/// refused; leading `/` and `./` are dropped.
public struct ArchiveImporter {
    /// A name for the archive in messages (its path in the Imagefile).
    public let label: String

    public init(label: String) {
        self.label = label
    }

    /// Adds every entry of the archive at `path` below `prefix` (a layer path, "" for the root).
    public func importArchive(at path: String, under prefix: String, into tree: inout LayerTree) throws(LayerError) {
        try withUTF8Locale { () throws(LayerError) in try importArchiveEntries(at: path, under: prefix, into: &tree) }
    }

    /// Adds the files of a Debian package (its `data.tar.*` member) at the image root.
    public func importDebianPackage(at path: String, into tree: inout LayerTree) throws(LayerError) {
        try withUTF8Locale { () throws(LayerError) in try importDebianEntries(at: path, into: &tree) }
    }

    private func importArchiveEntries(at path: String, under prefix: String, into tree: inout LayerTree) throws(LayerError) {
        let reader = try ArchiveReader(path: path, label: label)
        try reader.forEachEntry { entry throws(LayerError) in try add(entry, reader: reader, prefix: prefix, into: &tree) }
    }

    /// Where a package's control paragraph goes in the image, one file per package, as distroless images
    /// keep it, so scanners and ``SBOM`` generators find the packages without a dpkg database.
    public static let packageRecordFolder = "var/lib/dpkg/status.d"

    private func importDebianEntries(at path: String, into tree: inout LayerTree) throws(LayerError) {
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
                    try inner.copyData { chunk throws(LayerError) in
                        guard bytes.count + chunk.count <= 1 << 20 else {
                            throw LayerError.unsafeArchiveEntry(archive: label, entry: "control", reason: "a control file over 1 MiB")
                        }
                        bytes.append(contentsOf: chunk)
                    }
                    control = bytes
                }
                return
            }
            guard !found, name.hasPrefix("data.tar") else { return }
            found = true
            let inner = try ArchiveReader(member: outer, label: "\(label) (\(name))")
            try inner.forEachEntry { entry throws(LayerError) in try add(entry, reader: inner, prefix: "", into: &tree) }
        }
        guard found else { throw .notADebianPackage(path: label) }
        guard let control, let package = DebianControl(String(decoding: control, as: UTF8.self)).field("Package"),
              LayerPath.normalize(package) == package, !package.contains("/") else { return }
        guard let spool = tree.spool else { throw .writeFailed(reason: "no spool to hold the package record") }
        let offset = spool.currentLength
        var failure: LayerError?
        control.withUnsafeBytes { bytes in
            do throws(LayerError) { try spool.append(bytes) } catch { failure = error }
        }
        if let failure { throw failure }
        tree.insert(LayerEntry(path: ArchiveImporter.packageRecordFolder + "/" + package,
                               kind: .regularFile(.spool(offset: offset, size: Int64(control.count))), mode: 0o644))
    }

    private func add(_ entry: OpaquePointer, reader: ArchiveReader, prefix: String, into tree: inout LayerTree) throws(LayerError) {
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
            try reader.copyData { chunk throws(LayerError) in try spool.append(chunk) }
            let size = spool.currentLength - offset
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

    /// Streams the current entry's data.
    func copyData(_ body: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: la_int64_t = 0
        var expected: la_int64_t = 0
        while true {
            let status = archive_read_data_block(archive, &block, &size, &offset)
            if status == ARCHIVE_EOF { return }
            guard status == ARCHIVE_OK || status == ARCHIVE_WARN else {
                throw .unreadableArchive(path: label, reason: archiveError(archive))
            }
            if offset > expected {
                // A sparse hole: fill with zeros so the file keeps its size.
                let count = Int(offset - expected)
                let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 1)
                defer { zeros.deallocate() }
                zeros.initializeMemory(as: UInt8.self, repeating: 0)
                try body(UnsafeRawBufferPointer(zeros))
            }
            if size > 0 { try body(UnsafeRawBufferPointer(start: block, count: size)) }
            expected = offset + la_int64_t(size)
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
