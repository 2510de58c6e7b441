import HTTPFraming

/// The cookie that keeps a client on one side of a sticky canary split: `imgdeploy-canary=new.ROLLOUT` or
/// `=old.ROLLOUT`, where ROLLOUT names the rollout (``CanarySplit/rollout``), so that a cookie given during
/// one canary chooses nothing in the next.
///
/// A client can write any cookie it likes, so it can choose its side: stickiness is for clients' comfort,
/// not a boundary. A client that pins itself to one side adds its requests to that side's figures.
enum StickyCookie {
    private static let name = Array(CanarySplit.cookieName.utf8)

    /// The side the request's cookie names for `rollout`, if it carries one with such a value. `bytes` is
    /// the head that `fields` were parsed from.
    static func side(in bytes: UnsafeRawBufferPointer, fields: [HeaderField], rollout: UInt64) -> BackendPool.Side? {
        guard let value = CookieHeader.value(named: name, in: bytes, fields: fields) else { return nil }
        let text = bytes[value]
        if text.elementsEqual("new.\(rollout)".utf8) { return .canary }
        if text.elementsEqual("old.\(rollout)".utf8) { return .stable }
        return nil
    }

    /// The header line that gives a client its side in `rollout`, CRLF included.
    static func setCookieLine(_ side: BackendPool.Side, rollout: UInt64) -> [UInt8] {
        Array("set-cookie: \(CanarySplit.cookieName)=\(side == .canary ? "new" : "old").\(rollout); Path=/; HttpOnly; SameSite=Lax\r\n".utf8)
    }
}
