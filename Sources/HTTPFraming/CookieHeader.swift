/// Cookies a request carries (`Cookie: a=1; b=2`, RFC 6265 §5.4), read from its parsed head without
/// copying it.
public enum CookieHeader {
    /// Where the value of the first cookie named `name` lies in `bytes` (the head that `fields` were
    /// parsed from), across every `Cookie` field in order; nil when there is none. Spaces and tabs around a
    /// pair are not part of it.
    public static func value(named name: [UInt8], in bytes: UnsafeRawBufferPointer, fields: [HeaderField]) -> Range<Int>? {
        for field in fields where isCookieField(bytes, field.name) {
            var start = field.value.lowerBound
            let end = min(field.value.upperBound, bytes.count)
            while start < end {
                var stop = start
                while stop < end, bytes[stop] != UInt8(ascii: ";") { stop += 1 }
                let pair = trimmed(bytes, start..<stop)
                if pair.count > name.count, bytes[pair.lowerBound + name.count] == UInt8(ascii: "="),
                   zip(pair.lowerBound..., name).allSatisfy({ bytes[$0.0] == $0.1 }) {
                    return (pair.lowerBound + name.count + 1)..<pair.upperBound
                }
                start = stop + 1
            }
        }
        return nil
    }

    private static func isCookieField(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        let cookie = Array("cookie".utf8)
        guard range.count == cookie.count, range.upperBound <= bytes.count else { return false }
        for (offset, byte) in zip(range, cookie) where bytes[offset] | 0x20 != byte { return false }
        return true
    }

    private static func trimmed(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound, upper = range.upperBound
        while lower < upper, bytes[lower] == 0x20 || bytes[lower] == 0x09 { lower += 1 }
        while upper > lower, bytes[upper - 1] == 0x20 || bytes[upper - 1] == 0x09 { upper -= 1 }
        return lower..<upper
    }
}
