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
        var files: [String: (file: InventoryFile, layerIndex: Int)] = [:]
        var kept: [String: [UInt8]] = [:]
        /// Every folder a layer has named or implied so far: an entry that replaces one drops what was below it.
        var folders = Set<String>()
        var total: Int64 = 0
        for (index, layer) in layers.enumerated() {
            try withUTF8Locale { () throws(LayerError) in
                let reader = try ArchiveReader(path: layer.path, label: "layer \(layer.digest)", formats: .tar)
                try reader.forEachEntry { entry throws(LayerError) in
                    let raw = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
                    guard let path = LayerPath.normalize(raw), !path.isEmpty else { return }
                    let name = path.split(separator: "/").last.map(String.init) ?? path
                    let parent = LayerPath.parent(of: path)
                    if name == ".wh..wh..opq" {
                        let prefix = (parent ?? "") + "/"
                        for key in Array(files.keys) where (parent == nil || key.hasPrefix(prefix)) && files[key]!.layerIndex < index {
                            files[key] = nil
                        }
                        return
                    }
                    if name.hasPrefix(".wh.") {
                        let hidden = LayerPath.join(parent ?? "", String(name.dropFirst(4)))
                        for key in Array(files.keys) where key == hidden || key.hasPrefix(hidden + "/") { files[key] = nil }
                        kept[hidden] = nil
                        return
                    }
                    // An entry replaces what was at its path, as an unpack does: a folder replaces a file there, and
                    // anything but a folder replaces a folder there together with everything below it.
                    if UInt32(archive_entry_filetype(entry)) == ArchiveFileType.directory {
                        files[path] = nil
                        kept[path] = nil
                        folders.insert(path)
                    } else if folders.contains(path) {
                        // Rare (a layer replacing a folder by a file or link): the one whole scan it costs.
                        let below = path + "/"
                        for key in Array(files.keys) where key.hasPrefix(below) { files[key] = nil }
                        for key in Array(kept.keys) where key.hasPrefix(below) { kept[key] = nil }
                        folders = folders.filter { $0 != path && !$0.hasPrefix(below) }
                    }
                    var ancestor = parent
                    while let folder = ancestor, folders.insert(folder).inserted { ancestor = LayerPath.parent(of: folder) }
                    if let target = archive_entry_hardlink_utf8(entry) ?? archive_entry_hardlink(entry) {
                        if let original = LayerPath.normalize(String(cString: target)).flatMap({ files[$0] }) {
                            var copy = original.file
                            copy.path = path
                            copy.layer = layer.digest
                            files[path] = (copy, index)
                        }
                        return
                    }
                    // Anything but a regular file replaces what was at the path (a folder keeps its contents).
                    guard UInt32(archive_entry_filetype(entry)) == ArchiveFileType.regular else {
                        if UInt32(archive_entry_filetype(entry)) != ArchiveFileType.directory { files[path] = nil }
                        return
                    }
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
                    files[path] = (InventoryFile(path: path, size: size, sha1: sha1.hex(), sha256: sha256.hex(), layer: layer.digest,
                                                 mode: UInt32(archive_entry_perm(entry)) & 0o7777), index)
                    if let contents { kept[path] = contents } else { kept[path] = nil }
                }
            }
        }
        let sorted = files.keys.sorted(by: LayerPath.precedes).map { files[$0]!.file }
        return (sorted, kept.filter { files[$0.key] != nil })
    }
}

extension LayerInventory {
    /// The owner (uid, gid) the layers give every path, later layers and whiteouts applied: what an
    /// unpack by root would set, for checks made without root.
    public static func owners(layers: [(path: String, digest: Digest)]) throws(LayerError) -> [String: (uid: UInt32, gid: UInt32)] {
        var owners: [String: (uid: UInt32, gid: UInt32)] = [:]
        for layer in layers {
            try withUTF8Locale { () throws(LayerError) in
                let reader = try ArchiveReader(path: layer.path, label: "layer \(layer.digest)", formats: .tar)
                try reader.forEachEntry { entry throws(LayerError) in
                    let raw = (archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry)).map { String(cString: $0) } ?? ""
                    guard let path = LayerPath.normalize(raw), !path.isEmpty else { return }
                    let name = path.split(separator: "/").last.map(String.init) ?? path
                    if name.hasPrefix(".wh.") {
                        guard name != ".wh..wh..opq" else { return }
                        let hidden = LayerPath.join(LayerPath.parent(of: path) ?? "", String(name.dropFirst(4)))
                        for key in Array(owners.keys) where key == hidden || key.hasPrefix(hidden + "/") { owners[key] = nil }
                        return
                    }
                    owners[path] = (UInt32(truncatingIfNeeded: archive_entry_uid(entry)), UInt32(truncatingIfNeeded: archive_entry_gid(entry)))
                }
            }
        }
        return owners
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
