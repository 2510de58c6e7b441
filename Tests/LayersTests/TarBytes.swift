import Foundation

/// A tar archive written byte by byte, for archives no tar writer makes on purpose: GNU sparse files
/// whose real size is a petabyte, sparse maps that go backwards.
struct TarBytes {
    private(set) var bytes: [UInt8] = []

    /// A ustar header block.
    mutating func header(_ name: String, type: Character = "0", size: Int, mode: Int = 0o644, link: String = "") {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            let utf8 = Array(text.utf8.prefix(width))
            block.replaceSubrange(offset..<offset + utf8.count, with: utf8)
        }
        func octal(_ value: Int, at offset: Int, width: Int) {
            put(String(String(value, radix: 8).suffix(width - 1)).leftPadded(to: width - 1), at: offset, width: width - 1)
        }
        put(name, at: 0, width: 100)
        octal(mode, at: 100, width: 8)
        octal(0, at: 108, width: 8)
        octal(0, at: 116, width: 8)
        octal(size, at: 124, width: 12)
        octal(0, at: 136, width: 12)
        block[156] = type.asciiValue!
        put(link, at: 157, width: 100)
        put("ustar\u{0}00", at: 257, width: 8)
        put("        ", at: 148, width: 8)
        let sum = block.reduce(0) { $0 + Int($1) }
        put(String(String(sum, radix: 8)).leftPadded(to: 6) + "\u{0} ", at: 148, width: 8)
        bytes += block
    }

    /// Data, padded to the 512-byte block.
    mutating func data(_ contents: [UInt8]) {
        bytes += contents
        bytes += [UInt8](repeating: 0, count: (512 - contents.count % 512) % 512)
    }

    /// A PAX extended header (`x`) for the next entry.
    mutating func pax(_ records: [(String, String)]) {
        var body: [UInt8] = []
        for (key, value) in records {
            let tail = " \(key)=\(value)\n"
            var length = tail.utf8.count + 1
            while String(length).count + tail.utf8.count != length { length += 1 }
            body += Array("\(length)\(tail)".utf8)
        }
        header("PaxHeaders/entry", type: "x", size: body.count)
        data(body)
    }

    /// A regular file.
    mutating func file(_ name: String, _ contents: [UInt8], mode: Int = 0o644) {
        header(name, size: contents.count, mode: mode)
        data(contents)
    }

    /// A symlink.
    mutating func symlink(_ name: String, to target: String) {
        header(name, type: "2", size: 0, mode: 0o777, link: target)
    }

    /// A GNU sparse file in the PAX 1.0 format (what GNU tar writes with `--sparse --format=posix`):
    /// `realSize` as the file's length, and `map` as (offset, length) runs of data, each filled with "x".
    mutating func sparse10(_ name: String, realSize: Int64, map: [(Int64, Int)]) {
        pax([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", name),
             ("GNU.sparse.realsize", String(realSize))])
        var mapText = "\(map.count)\n"
        for (offset, length) in map { mapText += "\(offset)\n\(length)\n" }
        var mapBlock = Array(mapText.utf8)
        mapBlock += [UInt8](repeating: 0, count: (512 - mapBlock.count % 512) % 512)
        let stored = map.reduce(0) { $0 + $1.1 }
        header("GNUSparseFile.0/" + name, size: mapBlock.count + stored)
        bytes += mapBlock
        data([UInt8](repeating: UInt8(ascii: "x"), count: stored))
    }

    /// A GNU sparse file in the PAX 0.1 format (`GNU.sparse.map`, `GNU.sparse.size`).
    mutating func sparse01(_ name: String, realSize: Int64, map: [(Int64, Int)]) {
        pax([("GNU.sparse.size", String(realSize)), ("GNU.sparse.numblocks", String(map.count)), ("GNU.sparse.name", name),
             ("GNU.sparse.map", map.map { "\($0.0),\($0.1)" }.joined(separator: ","))])
        let stored = map.reduce(0) { $0 + $1.1 }
        header("GNUSparseFile.0/" + name, size: stored)
        data([UInt8](repeating: UInt8(ascii: "x"), count: stored))
    }

    /// The archive with its two closing zero blocks, written to a new file in a fresh temporary folder.
    func write(named name: String = "layer.tar") throws -> String {
        let folder = NSTemporaryDirectory() + "tarbytes-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/" + name
        try Data(bytes + [UInt8](repeating: 0, count: 1024)).write(to: URL(fileURLWithPath: path))
        return path
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
