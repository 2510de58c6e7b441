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
    /// A package the lock pins came from the archive with other bytes.
    case lockedPackageMismatch(SourceLocation, package: String, url: String, expected: Digest, actual: Digest)
    /// A URL dependency could not be fetched.
    case fetchFailed(SourceLocation, url: String, reason: String)
    /// An environment variable the build reads holds a value it cannot use.
    case invalidEnvironment(name: String, value: String, expected: String)
    /// The Imagefile's base image cannot be built on.
    case unusableBase(imagefile: String, base: String, reason: String, cause: (any Error)? = nil)
    /// The image's platform is not its base image's.
    case platformMismatch(imagefile: String, platform: Platform, base: Platform)
    /// A multi-platform Imagefile has command tests but does not build this machine's platform, the only
    /// one they can run on.
    case commandTestsNeedHost(imagefile: String, host: Platform)
    /// The image's config or manifest could not be encoded.
    case imageNotEncoded(reason: String)
    /// The store refused or failed.
    case store(StoreError)
    /// Writing a layer failed.
    case layer(LayerError)

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
        case let .lockedPackageMismatch(location, package, url, expected, actual):
            return "\(location): \(package) from '\(url)' is not the file Imagefile.lock pins: the lock expects \(expected) but the archive sent \(actual); the mirror may be damaged or tampered with — try another mirror, or if the archive really signs a new file for the same version, run 'imgbuild lock --update' and review the change"
        case let .fetchFailed(location, url, reason):
            return "\(location): cannot fetch '\(url)': \(reason)"
        case let .invalidEnvironment(name, value, expected):
            return "\(name)='\(value)' is not \(expected): unset it or fix it"
        case let .unusableBase(imagefile, base, reason, _):
            return "\(imagefile): base image \(base) is not usable: \(reason)"
        case let .platformMismatch(imagefile, platform, base):
            return "\(imagefile): platform \(platform) differs from the base image's \(base)"
        case let .commandTestsNeedHost(imagefile, host):
            return "\(imagefile): the tests have commands, which run on this machine's platform (\(host)) only, and 'platforms' does not build it: add \(host) to 'platforms', or build on a machine of a platform that is built"
        case let .imageNotEncoded(reason):
            return "cannot encode the image's config or manifest: \(reason)"
        case let .store(error):
            return error.description
        case let .layer(error):
            return error.description
        }
    }
}
