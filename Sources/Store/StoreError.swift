import OCI

/// Everything the store can refuse or fail at. Each message says what to do next in the store's own terms;
/// a command line adds its flags (imgbuild's `CommandLineRemedy`).
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The folder exists, holds files, and is not an imgbuild store.
    case notAStore(path: String)
    /// The folder is an imgbuild store of a format this build does not read.
    case unsupportedFormat(path: String, found: String)
    /// The store (or a folder in it) cannot be written to.
    case readOnly(path: String, reason: String)
    /// A system call failed on a file of the store.
    case io(path: String, reason: String)
    /// A blob is not in the store.
    case blobMissing(Digest)
    /// A blob's bytes do not hash to its name.
    case blobCorrupt(expected: Digest, actual: Digest)
    /// Content written for a digest hashed to another.
    case digestMismatch(expected: Digest, actual: Digest)
    /// A version is tagged already, with another digest.
    case tagImmutable(repository: String, version: String, existing: Digest, requested: Digest)
    /// A tag file that cannot be read back.
    case corruptTag(repository: String, version: String, path: String)
    /// No such tag.
    case unknownTag(repository: String, version: String)
    /// No such repository.
    case unknownRepository(String)
    /// A manifest or config that is not valid JSON of its kind.
    case invalidManifest(Digest, reason: String)
    /// No version of the repository is in the range.
    case noMatchingVersion(repository: String, range: String, available: String)
    /// gc could not tell what is reachable, so it removed nothing.
    case gcRefused(reason: String)
    /// gc would have to wait for the store's writers, and was asked not to.
    case busy(path: String)
    /// A tag that is not a SemVer version.
    case invalidVersion(String, reason: String)
    /// A repository name with a component that a repository's own folder uses (`team/tags` would be
    /// the tags folder of `team`).
    case reservedRepositoryName(String, component: String)
    /// A platform was asked of an image that has no image for it (an index without it, or an image of another).
    case platformNotInImage(Digest, platform: Platform, offered: [Platform])

    public var description: String {
        switch self {
        case let .notAStore(path):
            return "'\(path)' is not an imgbuild store (it has no imgbuild-store.json): use an existing store, or a new or empty folder to create one"
        case let .unsupportedFormat(path, found):
            return "the store at '\(path)' has format \(found), which this imgbuild cannot read: use the imgbuild version that wrote it, or a new store"
        case let .readOnly(path, reason):
            return "cannot write to the store at '\(path)' (\(reason)): use a store in a folder this user can write to"
        case let .io(path, reason):
            return "store file '\(path)': \(reason)"
        case let .blobMissing(digest):
            return "blob \(digest) is not in the store: the image is incomplete; pull or build it again"
        case let .blobCorrupt(expected, actual):
            return "blob \(expected) is corrupt: its bytes hash to \(actual); check the whole store (fsck) and restore the blob by pulling or building again"
        case let .digestMismatch(expected, actual):
            return "content expected to be \(expected) hashes to \(actual): nothing was stored"
        case let .tagImmutable(repository, version, existing, requested):
            return "\(repository):\(version) already points at \(existing) and versions are immutable, so it cannot point at \(requested): release a new version instead"
        case let .corruptTag(repository, version, path):
            return "the tag \(repository):\(version) is unreadable ('\(path)' is truncated or damaged): check the whole store (fsck)"
        case let .unknownTag(repository, version):
            return "\(repository):\(version) is not in the store"
        case let .unknownRepository(name):
            return "there is no repository '\(name)' in the store"
        case let .invalidManifest(digest, reason):
            return "\(digest) is not a valid OCI manifest or config: \(reason)"
        case let .noMatchingVersion(repository, range, available):
            return "no version of \(repository) matches '\(range)' (versions: \(available)); pre-releases match only when the range names one or pre-releases are asked for"
        case let .gcRefused(reason):
            return "gc removed nothing because it cannot tell what the tags reach (\(reason)): check the store (fsck) and repair it first"
        case let .busy(path):
            return "the store at \(path) is in use by a writer (a build, a pull, a writable serve), so its garbage was not collected now: it is collected next time"
        case let .invalidVersion(text, reason):
            return "'\(text)' is not a version: \(reason)"
        case let .reservedRepositoryName(name, component):
            return "'\(name)' cannot be a repository here: '\(component)' is a folder of every repository in the store (its parent's \(component)); rename that component"
        case let .platformNotInImage(digest, platform, offered):
            return "\(digest) has no image for \(platform): it has \(offered.isEmpty ? "no platform" : offered.map(\.description).joined(separator: ", ")); pick one of those with --platform"
        }
    }
}
