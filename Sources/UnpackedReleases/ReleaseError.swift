import OCI

/// Everything that can go wrong while fetching and unpacking a release.
public enum ReleaseError: Error, CustomStringConvertible {
    /// The image could not be fetched or verified.
    case fetchFailed(image: String, source: String, reason: String)
    /// The digest names something that is not a runnable image.
    case notAnImage(image: String, reason: String)
    /// A layer was refused or could not be written.
    case unpackFailed(image: String, reason: String)
    /// The deploy policy refused the image.
    case policyRefused(image: String, reason: String)
    /// The deployer's own folder could not be written.
    case stateUnwritable(path: String, reason: String)
    /// The unpacked release is no longer what was unpacked (and verified): what changed, path by path.
    case treeChanged(image: String, folder: String, changes: [String])

    public var description: String {
        switch self {
        case let .fetchFailed(image, source, reason):
            return "cannot fetch \(image) from \(source): \(reason)"
        case let .notAnImage(image, reason):
            return "\(image) cannot be deployed: \(reason)"
        case let .unpackFailed(image, reason):
            return "refused to unpack \(image): \(reason). Nothing was written outside its release folder, which was removed"
        case let .policyRefused(image, reason):
            return "the deploy policy refuses \(image): \(reason). Nothing was started"
        case let .stateUnwritable(path, reason):
            return "cannot write the deployer's state at \(path): \(reason)"
        case let .treeChanged(image, folder, changes):
            let shown = changes.prefix(10).joined(separator: "; ") + (changes.count > 10 ? "; and \(changes.count - 10) more" : "")
            return "the release of \(image) in \(folder) is not what was unpacked and verified: \(shown). No new instance starts from it; "
                + "find out who changed it, then remove that folder so the image is fetched, verified and unpacked again"
        }
    }
}
