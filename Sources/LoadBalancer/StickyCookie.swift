import HTTPFraming

/// The cookie that keeps a client on one side of a sticky canary split: `imgdeploy-canary=new.ROLLOUT` or
/// `=old.ROLLOUT`, where ROLLOUT names the rollout (``CanarySplit/rollout``), so that a cookie given during
/// one canary chooses nothing in the next.
///
/// A client can write any cookie it likes, so it can choose its side: stickiness is for clients' comfort,
/// not a boundary. A client that pins itself to one side adds its requests to that side's figures.
enum StickyCookie {
    /// The side the request's `Cookie` fields name for `rollout`, if one of them carries the cookie with
    /// such a value (the first wins). `bytes` is the head that `fields` were parsed from.
    static func side(in bytes: UnsafeRawBufferPointer, fields: [HeaderField], rollout: UInt64) -> BackendPool.Side? {
        let prefix = Array("\(CanarySplit.cookieName)=".utf8)
        let new = prefix + Array("new.\(rollout)".utf8), old = prefix + Array("old.\(rollout)".utf8)
        for field in fields where isCookieField(bytes, field.name) {
            var start = field.value.lowerBound
            let end = min(field.value.upperBound, bytes.count)
            while start < end {
                var stop = start
                while stop < end, bytes[stop] != UInt8(ascii: ";") { stop += 1 }
                let pair = trimmed(bytes, start..<stop)
                if equals(bytes, pair, new) { return .canary }
                if equals(bytes, pair, old) { return .stable }
                start = stop + 1
            }
        }
        return nil
    }

    /// The header line that gives a client its side in `rollout`, CRLF included.
    static func setCookieLine(_ side: BackendPool.Side, rollout: UInt64) -> [UInt8] {
        Array("set-cookie: \(CanarySplit.cookieName)=\(side == .canary ? "new" : "old").\(rollout); Path=/; HttpOnly; SameSite=Lax\r\n".utf8)
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

    private static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ expected: [UInt8]) -> Bool {
        guard range.count == expected.count else { return false }
        for (offset, byte) in zip(range, expected) where bytes[offset] != byte { return false }
        return true
    }
}
