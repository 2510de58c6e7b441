import DocumentReader
import Imagefile
import Layers
import OCI
import Store

/// Why a build failed. Every case says what to do next; those tied to an Imagefile entry name its
/// file, line and column.
public enum BuildError: Error, CustomStringConvertible {
    /// No Imagefile at the given path.
    case missingImagefile(path: String)
    /// The Imagefile is malformed or invalid.
    case imagefile(ImagefileError)
    /// A problem with one entry of the Imagefile.
    case entry(SourceLocation, String)
    /// A dependency's bytes do not match its pinned digest.
    case dependencyMismatch(SourceLocation, source: String, expected: Digest, actual: Digest)
    /// A URL dependency could not be fetched.
    case fetchFailed(SourceLocation, url: String, reason: String)
    /// An option or environment value is invalid.
    case invalidOption(String)
    /// The store refused or failed.
    case store(StoreError)
    /// Writing a layer failed.
    case layer(LayerError)
    /// The image's tests failed, so its version was not tagged.
    case testsFailed(reference: String, details: String)

    public var description: String {
        switch self {
        case let .missingImagefile(path):
            return "no Imagefile at '\(path)': pass the path of an Imagefile or of a folder that holds one named 'Imagefile'"
        case let .imagefile(error):
            return error.description
        case let .entry(location, message):
            return "\(location): \(message)"
        case let .dependencyMismatch(location, source, expected, actual):
            return "\(location): '\(source)' does not match its pinned digest: the Imagefile expects \(expected) but the file is \(actual); if the new file is the one you want, update 'sha256' to \(actual.hex)"
        case let .fetchFailed(location, url, reason):
            return "\(location): cannot fetch '\(url)': \(reason)"
        case let .invalidOption(message):
            return message
        case let .store(error):
            return error.description
        case let .testsFailed(reference, details):
            return "\(reference) failed its tests, so the version was not tagged:\n\(details)"
        case let .layer(error):
            return error.description
        }
    }
}
