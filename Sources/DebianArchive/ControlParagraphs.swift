/// The paragraphs of a deb822 file (a `Packages` index, a `Release` file): blocks of `Field: value` lines
/// separated by empty lines, continuation lines starting with a space or a tab.
///
/// Only the fields a reader asks for are kept, so reading a 50 MB index does not build a string for every
/// description line. Field names are matched without regard to case, as Debian's tools match them.
public struct ControlParagraphs: Sequence {
    let bytes: [UInt8]
    let wanted: [[UInt8]]

    /// `fields`: the names to keep (any case); every paragraph is returned, with only those fields.
    public init(_ bytes: [UInt8], fields: [String]) {
        self.bytes = bytes
        self.wanted = fields.map { Array($0.lowercased().utf8) }
    }

    /// One paragraph's kept fields, in the order the names were given (nil: absent), and the line it starts at.
    public struct Paragraph {
        public var values: [String?]
        public var line: Int
    }

    public func makeIterator() -> Iterator { Iterator(bytes: bytes, wanted: wanted) }

    public struct Iterator: IteratorProtocol {
        let bytes: [UInt8]
        let wanted: [[UInt8]]
        var position = 0
        var line = 1

        public mutating func next() -> Paragraph? {
            // Each kept field's lines as byte ranges, joined once the paragraph ends: a field of many
            // continuation lines (a Release file's SHA256 list) costs its length, not its length squared.
            var segments = [[Range<Int>]](repeating: [], count: wanted.count)
            var current: Int?  // the kept field the last line belonged to
            var started: Int?
            func paragraph(_ line: Int) -> Paragraph {
                Paragraph(values: segments.map { parts in
                    parts.isEmpty ? nil : parts.map { trimmed($0.lowerBound, $0.upperBound) }.joined(separator: "\n")
                }, line: line)
            }
            while position < bytes.count {
                let start = position
                var end = start
                while end < bytes.count, bytes[end] != 0x0A { end += 1 }
                position = end + 1
                line += 1
                var lineEnd = end
                if lineEnd > start, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                var blank = true
                for k in start..<lineEnd where bytes[k] != 0x20 && bytes[k] != 0x09 {
                    blank = false
                    break
                }
                if blank {
                    if let started { return paragraph(started) }
                    continue
                }
                if bytes[start] == 0x23 { continue }  // a comment line
                if started == nil { started = line - 1 }
                if bytes[start] == 0x20 || bytes[start] == 0x09 {
                    if let current { segments[current].append((start + 1)..<lineEnd) }
                    continue
                }
                current = nil
                guard let colon = bytes[start..<lineEnd].firstIndex(of: 0x3A) else { continue }
                for (index, name) in wanted.enumerated() where name.count == colon - start {
                    var same = true
                    for k in 0..<name.count where lowercase(bytes[start + k]) != name[k] {
                        same = false
                        break
                    }
                    if same {
                        current = index
                        segments[index] = [(colon + 1)..<lineEnd]
                        break
                    }
                }
            }
            if let started { return paragraph(started) }
            return nil
        }

        private func lowercase(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 32 : byte }

        private func trimmed(_ from: Int, _ to: Int) -> String {
            var a = from, b = to
            while a < b, bytes[a] == 0x20 || bytes[a] == 0x09 { a += 1 }
            while b > a, bytes[b - 1] == 0x20 || bytes[b - 1] == 0x09 { b -= 1 }
            return String(decoding: bytes[a..<b], as: UTF8.self)
        }
    }
}
