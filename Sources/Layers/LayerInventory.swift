import CArchive
import CCrypto
import OCI

/// A regular file of an image's root file system, as its layers leave it.
public struct InventoryFile: Sendable, Equatable {
    /// The path inside the image, without a leading `/`.
    public var path: String
    public var size: Int64
    public var sha1: String
    public var sha256: String
    /// The layer blob the file's final version comes from.
    public var layer: Digest
    /// Its permission bits (with setuid, setgid and sticky), as its layer gives them.
    public var mode: UInt32 = 0o644
}

/// Reads an image's layers, in order, into the list of its files with their SHA-1 and SHA-256 (whiteouts
/// and opaque folders applied, later layers replacing earlier ones), keeping the contents of the few
/// small files a caller asks for (package records, copyright files).
public enum LayerInventory {
    /// 64 GiB: what the files of all layers may hold together (holes of sparse files included, as they
    /// are hashed like any other bytes), checked against each file's declared size before it is read.
    public static let defaultMaxBytes: Int64 = 64 << 30

    /// SPDX's package verification code of `files` (SPDX 2.3 §7.9): the SHA-1 of their SHA-1s in
    /// lowercase hex, sorted and concatenated.
    public static func verificationCode(of files: [InventoryFile]) -> String {
        let hasher = EVPHasher(EVP_sha1())
        for sha1 in files.map(\.sha1).sorted() { Array(sha1.utf8).withUnsafeBytes { hasher.update($0) } }
        return hasher.hex()
    }

    /// The files, sorted by path bytes, and the contents of those `keep` selects, each whole: a file
    /// over `keepLimit` bytes is listed but its contents are not kept (never a part of them).
    public static func read(layers: [(path: String, digest: Digest)], maxBytes: Int64 = defaultMaxBytes, keepLimit: Int = 1 << 20,
                            keep: (String) -> Bool) throws(LayerError)
        -> (files: [InventoryFile], kept: [String: [UInt8]]) {
        var files = MergedLayerPaths<InventoryFile>()
        var kept: [String: [UInt8]] = [:]
        var total: Int64 = 0
        for (index, layer) in layers.enumerated() {
            try withUTF8Locale { () throws(LayerError) in
                let reader = try ArchiveReader(path: layer.path, label: "layer \(layer.digest)", formats: .tar)
                try reader.forEachEntry { entry throws(LayerError) in
                    let raw = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
                    guard let path = LayerPath.normalize(raw), !path.isEmpty else { return }
                    if let whiteout = Whiteout.of(path: path) {
                        files.apply(whiteout, layer: index)
                        return
                    }
                    files.replace(path, isFolder: UInt32(archive_entry_filetype(entry)) == ArchiveFileType.directory)
                    if let target = archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry) {
                        kept[path] = nil
                        if let originalPath = LayerPath.normalize(String(cString: target)), let original = files[originalPath] {
                            var copy = original
                            copy.path = path
                            copy.layer = layer.digest
                            files.set(path, copy, layer: index)
                            kept[path] = keep(path) ? kept[originalPath] : nil
                        }
                        return
                    }
                    // Only regular files are listed (what stood at the path is gone already).
                    guard UInt32(archive_entry_filetype(entry)) == ArchiveFileType.regular else { return }
                    let sha1 = EVPHasher(EVP_sha1())
                    let sha256 = EVPHasher(EVP_sha256())
                    var contents: [UInt8]? = keep(path) ? [] : nil
                    let used = total
                    let size = try reader.copyData(of: entry, named: raw, limit: maxBytes - used, tooLarge: { size, declared in
                        sizeRefusal(size, declared: declared, limit: maxBytes, used: used, of: "what the files of an image's layers may hold together")
                    }) { chunk in
                        sha1.update(chunk)
                        sha256.update(chunk)
                        if contents != nil {
                            if contents!.count + chunk.count <= keepLimit { contents!.append(contentsOf: chunk) } else { contents = nil }
                        }
                    }
                    total += size
                    files.set(path, InventoryFile(path: path, size: size, sha1: sha1.hex(), sha256: sha256.hex(), layer: layer.digest,
                                                  mode: UInt32(archive_entry_perm(entry)) & 0o7777), layer: index)
                    // Contents kept from an earlier file at this path are never this one's.
                    kept[path] = contents
                }
            }
        }
        let sorted = files.values.keys.sorted(by: LayerPath.precedes).map { files[$0]! }
        return (sorted, kept.filter { files[$0.key] != nil })
    }
}

extension LayerInventory {
    /// The owner (uid, gid) the layers give every path, later layers and whiteouts applied: what an
    /// unpack by root would set, for checks made without root.
    public static func owners(layers: [(path: String, digest: Digest)]) throws(LayerError) -> [String: (uid: UInt32, gid: UInt32)] {
        var owners = MergedLayerPaths<(uid: UInt32, gid: UInt32)>()
        for (index, layer) in layers.enumerated() {
            try withUTF8Locale { () throws(LayerError) in
                let reader = try ArchiveReader(path: layer.path, label: "layer \(layer.digest)", formats: .tar)
                try reader.forEachEntry { entry throws(LayerError) in
                    let raw = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
                    guard let path = LayerPath.normalize(raw), !path.isEmpty else { return }
                    if let whiteout = Whiteout.of(path: path) {
                        owners.apply(whiteout, layer: index)
                        return
                    }
                    owners.replace(path, isFolder: UInt32(archive_entry_filetype(entry)) == ArchiveFileType.directory)
                    // A hard link is its target's inode: it has the target's owner, whatever its own entry says.
                    if let target = archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry),
                       let owner = LayerPath.normalize(String(cString: target)).flatMap({ owners[$0] }) {
                        owners.set(path, owner, layer: index)
                        return
                    }
                    owners.set(path, (UInt32(truncatingIfNeeded: archive_entry_uid(entry)), UInt32(truncatingIfNeeded: archive_entry_gid(entry))),
                               layer: index)
                }
            }
        }
        return owners.values.mapValues { $0.value }
    }
}

/// A libcrypto EVP digest, fed in pieces.
final class EVPHasher {
    private let context: OpaquePointer

    init(_ algorithm: OpaquePointer?) {
        context = EVP_MD_CTX_new()
        EVP_DigestInit_ex(context, algorithm, nil)
    }

    deinit { EVP_MD_CTX_free(context) }

    func update(_ bytes: UnsafeRawBufferPointer) {
        if bytes.count > 0 { EVP_DigestUpdate(context, bytes.baseAddress, bytes.count) }
    }

    func hex() -> String {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest.prefix(Int(length)).map { String(format: "%02x", $0) }.joined()
    }
}

import Foundation
