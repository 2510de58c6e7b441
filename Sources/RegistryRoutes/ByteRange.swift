/// The `Range` header of a blob `GET` (RFC 9110 §14.1.2), one range of `bytes` only.
public enum ByteRange {
    /// What a `Range` header asks of a blob of a given size.
    public enum Request: Equatable, Sendable {
        /// The header is not a single `bytes` range this server understands: serve the whole blob
        /// (RFC 9110 lets a server ignore a Range header it does not support).
        case ignored
        /// These bytes of the blob, both ends inclusive and within it.
        case satisfiable(ClosedRange<Int64>)
        /// The range does not overlap the blob: 416 with `Content-Range: bytes */size`.
        case unsatisfiable
    }

    /// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` against a blob of `size` bytes. As RFC 9110 says,
    /// a last position past the end means "to the end", a suffix longer than the blob means the whole
    /// blob, and a first position at or past the end cannot be satisfied (so nothing of an empty blob can).
    public static func parse(_ header: String, size: Int64) -> Request {
        guard size >= 0, header.hasPrefix("bytes=") else { return .ignored }
        let spec = header.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .ignored }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = decimal(last) else { return .ignored }
            guard suffix > 0, size > 0 else { return .unsatisfiable }
            return .satisfiable(max(0, size - suffix)...(size - 1))
        }
        guard let start = decimal(first) else { return .ignored }
        var end = size - 1
        if !last.isEmpty {
            guard let requested = decimal(last) else { return .ignored }
            guard requested >= start else { return .ignored }
            end = min(requested, size - 1)
        }
        guard start < size else { return .unsatisfiable }
        return .satisfiable(start...end)
    }

    /// A non-negative decimal of ASCII digits only (no sign, no spaces), nil on overflow.
    static func decimal(_ text: Substring) -> Int64? {
        guard !text.isEmpty, text.utf8.count <= 19, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int64(text)
    }
}

/// The `Content-Range` of an upload chunk as the distribution spec writes it (`<start>-<end>`), also
/// accepted in the RFC form `bytes <start>-<end>/<total|*>`.
public struct ContentRange: Equatable, Sendable {
    public let start: Int64
    public let end: Int64
    /// The number of bytes the range covers.
    public var length: Int64 { end - start + 1 }

    /// Nil when the header is not a range with `start <= end` (and `end` below the largest offset, so
    /// that its length can be counted).
    public static func parse(_ header: String) -> ContentRange? {
        var text = Substring(header)
        for prefix in ["bytes=", "bytes "] where text.hasPrefix(prefix) { text = text.dropFirst(prefix.count) }
        if let slash = text.firstIndex(of: "/") {
            let total = text[text.index(after: slash)...]
            guard total == "*" || ByteRange.decimal(total) != nil else { return nil }
            text = text[..<slash]
        }
        guard let dash = text.firstIndex(of: "-"),
              let start = ByteRange.decimal(text[..<dash]),
              let end = ByteRange.decimal(text[text.index(after: dash)...]), start <= end, end < Int64.max else { return nil }
        return ContentRange(start: start, end: end)
    }
}
