/// Everything that can go wrong with keys and signatures.
public enum SigningError: Error, Equatable, CustomStringConvertible {
    /// A key file that is not a PEM ECDSA P-256 key of the expected kind.
    case badKey(path: String, reason: String)
    /// libcrypto refused an operation.
    case cryptoFailed(String)
    /// A signature payload that is not a simple-signing document (truncated, re-encoded, or something else).
    case badPayload(String)

    public var description: String {
        switch self {
        case let .badKey(path, reason): return "\(path) is not a usable key: \(reason)"
        case .cryptoFailed(let what): return "libcrypto failed: \(what)"
        case .badPayload(let reason): return "the signed payload is not a simple-signing document: \(reason)"
        }
    }
}
