import OCI
import Store

/// Why a push, pull or copy failed. Messages never contain credentials, and say what to do in the
/// registry's terms; a command line adds its flags (imgbuild's `CommandLineRemedy`).
public enum DistributionError: Error, CustomStringConvertible {
    /// A source or destination string that is not understood.
    case invalidLocation(String, reason: String)
    /// The registry answered with an error status; `detail` holds its `errors` messages.
    case registry(operation: String, status: Int, detail: String)
    /// The registry wants credentials that were not given or were refused.
    case unauthorized(registry: String, detail: String)
    /// The registry (or network) failed and retries did not help.
    case transport(operation: String, reason: String)
    /// Bytes did not hash to the digest they were asked for.
    case digestMismatch(what: String, expected: Digest, actual: Digest)
    /// Bytes did not have the size the descriptor says.
    case sizeMismatch(what: String, expected: Int64, actual: Int64)
    /// A manifest over the 4 MiB limit.
    case manifestTooLarge(size: Int)
    /// Not found at the source.
    case notFound(String)
    /// A version exists at the destination with another digest.
    case tagImmutable(destination: String, tag: String, existing: Digest, requested: Digest)
    /// The local store refused or failed.
    case store(StoreError)
    /// The registry's TLS certificate could not be verified.
    case untrustedCertificate(registry: String, detail: String)
    /// Plain HTTP to a host that is not this machine, without --insecure.
    case insecureRefused(String)
    /// A platform was asked of an index that has no image for it.
    case platformMissing(String, platform: Platform, offered: [Platform])

    public var description: String {
        switch self {
        case let .invalidLocation(text, reason):
            return "'\(text)' is not a place images can come from or go to: \(reason)"
        case let .registry(operation, status, detail):
            return "\(operation): the registry answered \(status)\(detail.isEmpty ? "" : ": \(detail)")"
        case let .unauthorized(registry, detail):
            return "\(registry) refused access (\(detail)): give credentials for it, and check that they may read (pull) or write (push) this repository"
        case let .transport(operation, reason):
            return "\(operation) failed after retries: \(reason)"
        case let .digestMismatch(what, expected, actual):
            return "\(what) should be \(expected) but its bytes hash to \(actual): nothing was stored; the source is corrupt or was changed in flight"
        case let .sizeMismatch(what, expected, actual):
            return "\(what) should have \(expected) bytes but has \(actual): nothing was stored (a truncated transfer?)"
        case let .manifestTooLarge(size):
            return "a manifest of \(size) bytes is over the 4 MiB limit: refused"
        case let .notFound(what):
            return "\(what) was not found"
        case let .tagImmutable(destination, tag, existing, requested):
            return "\(destination):\(tag) already points at \(existing); versions are immutable, so it cannot point at \(requested): release a new version instead"
        case let .store(error):
            return error.description
        case let .untrustedCertificate(registry, detail):
            return "\(registry)'s TLS certificate is not trusted (\(detail)): trust the CA that signed it; certificate checks are never skipped"
        case let .platformMissing(source, platform, offered):
            return "\(source) has no image for \(platform): it has \(offered.isEmpty ? "no platform" : offered.map(\.description).joined(separator: ", ")); pick one of those with --platform, or leave --platform out to copy them all"
        case let .insecureRefused(url):
            return "'\(url)' is plain HTTP to another machine: use HTTPS (verified against the system's trust store or a CA given for it), or allow plain HTTP to it explicitly"
        }
    }
}
