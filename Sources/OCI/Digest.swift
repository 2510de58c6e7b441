import Foundation

/// A content digest as the OCI image spec defines it: `algorithm:encoded`.
///
/// imgbuild produces and accepts SHA-256 only (`sha256:` followed by 64 lowercase hex digits), the one
/// algorithm every registry and runtime must support. Anything else is refused when parsed, so a value of
/// this type is always well formed.
public struct Digest: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The 64 lowercase hexadecimal digits of the SHA-256 hash.
    public let hex: String

    /// The algorithm name; always `sha256`.
    public var algorithm: String { "sha256" }

    /// `sha256:<hex>`
    public var description: String { "sha256:\(hex)" }

    /// Errors raised when a string is not a valid digest.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingAlgorithm(String)
        case unsupportedAlgorithm(String)
        case badEncoding(String)

        public var description: String {
            switch self {
            case .missingAlgorithm(let s):
                return "'\(s)' is not a digest: expected 'sha256:' followed by 64 lowercase hex digits"
            case .unsupportedAlgorithm(let s):
                return "'\(s)' uses an unsupported digest algorithm: only sha256 is accepted"
            case .badEncoding(let s):
                return "'\(s)' is not a valid sha256 digest: expected exactly 64 lowercase hex digits after 'sha256:'"
            }
        }
    }

    /// Parses `sha256:<64 lowercase hex>`.
    public init(parsing string: String) throws(ParseError) {
        guard let colon = string.firstIndex(of: ":") else { throw .missingAlgorithm(string) }
        let algorithm = string[..<colon]
        let encoded = string[string.index(after: colon)...]
        guard algorithm == "sha256" else { throw .unsupportedAlgorithm(string) }
        guard Digest.isHex64(encoded) else { throw .badEncoding(string) }
        self.hex = String(encoded)
    }

    /// Wraps 64 lowercase hex digits; returns nil for anything else.
    public init?(hex: String) {
        guard Digest.isHex64(Substring(hex)) else { return nil }
        self.hex = hex
    }

    static func isHex64(_ s: Substring) -> Bool {
        s.utf8.count == 64 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.hex < rhs.hex }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        do {
            self = try Digest(parsing: string)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The digest of a byte buffer.
    public static func of(_ data: some DataProtocol) -> Digest {
        let hasher = SHA256Hasher()
        hasher.update(data)
        return hasher.finalize()
    }

    /// The digest of a file, read in one streaming pass.
    public static func ofFile(atPath path: String) throws -> (digest: Digest, size: Int64) {
        let hasher = SHA256Hasher()
        let size = try FileChunks.forEach(path: path) { hasher.update($0) }
        return (hasher.finalize(), size)
    }
}
