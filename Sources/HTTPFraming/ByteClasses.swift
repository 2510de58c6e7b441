/// What each byte may be in the grammar of RFC 9110 and 9112, as bit flags in one 256-entry table.
enum ByteClass {
    /// `tchar`: a method, a field name, a coding, a Connection option.
    static let token: UInt8 = 1
    /// A field value's byte: VCHAR, obs-text, SP and HTAB (never CR, LF, NUL or another control).
    static let fieldValue: UInt8 = 2
    /// A request target's byte: VCHAR only.
    static let target: UInt8 = 4
    /// A hexadecimal digit.
    static let hex: UInt8 = 8

    static let table: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256)
        for byte in 0x21...0x7E { table[byte] |= fieldValue | target }
        for byte in 0x80...0xFF { table[byte] |= fieldValue }
        table[0x20] |= fieldValue
        table[0x09] |= fieldValue
        for byte in Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-.^_`|~".utf8) {
            table[Int(byte)] |= token
        }
        for byte in Array("0123456789abcdefABCDEF".utf8) { table[Int(byte)] |= hex }
        return table
    }()
}

enum ASCII {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let semicolon: UInt8 = 0x3B

    static func isWhitespace(_ byte: UInt8) -> Bool { byte == space || byte == tab }

    /// The value of a hexadecimal digit (which the caller checked it is).
    static func hexValue(_ byte: UInt8) -> UInt64 {
        switch byte {
        case 0x30...0x39: return UInt64(byte - 0x30)
        case 0x61...0x66: return UInt64(byte - 0x61 + 10)
        default: return UInt64(byte - 0x41 + 10)
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Whether the bytes in `range` equal `lowercased` ignoring ASCII case (`lowercased` is lower case).
    @inline(__always)
    func equalsIgnoringCase(_ range: Range<Int>, _ lowercased: StaticString) -> Bool {
        guard range.count == lowercased.utf8CodeUnitCount else { return false }
        let expected = lowercased.utf8Start
        var index = 0
        for position in range {
            var byte = self[position]
            if byte >= 0x41 && byte <= 0x5A { byte |= 0x20 }
            if byte != expected[index] { return false }
            index += 1
        }
        return true
    }

    /// Whether the bytes in `range` are exactly `text`.
    func equals(_ range: Range<Int>, _ text: StaticString) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        for offset in 0..<range.count where self[range.lowerBound + offset] != text.utf8Start[offset] { return false }
        return true
    }

    /// Whether the bytes in `a` and `b` are equal ignoring ASCII case.
    func equalsIgnoringCase(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        for offset in 0..<a.count {
            var x = self[a.lowerBound + offset], y = self[b.lowerBound + offset]
            if x >= 0x41 && x <= 0x5A { x |= 0x20 }
            if y >= 0x41 && y <= 0x5A { y |= 0x20 }
            if x != y { return false }
        }
        return true
    }

    /// The comma-separated elements of the list in `range`, without surrounding whitespace; empty
    /// elements are skipped (RFC 9110 §5.6.1).
    func listElements(_ range: Range<Int>) -> [Range<Int>] {
        var elements: [Range<Int>] = []
        var start = range.lowerBound
        func add(_ end: Int) {
            var lower = start, upper = end
            while lower < upper && ASCII.isWhitespace(self[lower]) { lower += 1 }
            while upper > lower && ASCII.isWhitespace(self[upper - 1]) { upper -= 1 }
            if lower < upper { elements.append(lower..<upper) }
        }
        for position in range where self[position] == ASCII.comma {
            add(position)
            start = position + 1
        }
        add(range.upperBound)
        return elements
    }

    /// Whether every byte in `range` is a `tchar`.
    func isToken(_ range: Range<Int>) -> Bool {
        guard !range.isEmpty else { return false }
        return ByteClass.table.withUnsafeBufferPointer { table in
            range.allSatisfy { table[Int(self[$0])] & ByteClass.token != 0 }
        }
    }
}
