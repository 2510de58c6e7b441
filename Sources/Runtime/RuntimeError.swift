/// Everything that can go wrong while starting, watching or stopping an instance.
public enum RuntimeError: Error, Equatable, CustomStringConvertible {
    /// The runtime program is not installed.
    case runtimeMissing(program: String, package: String)
    /// The image's config names no program to run.
    case nothingToRun(image: String)
    /// The image's `user` names a user or group its /etc/passwd or /etc/group does not have.
    case unknownUser(user: String, reason: String)
    /// A mount, a file or a process could not be set up.
    case setupFailed(instance: String, reason: String)
    /// The kernel or the file system of the state folder cannot make idmapped mounts (Linux 5.12+ on
    /// ext4, xfs, btrfs or tmpfs), which an instance in a user namespace needs.
    case idmapUnsupported(reason: String)

    public var description: String {
        switch self {
        case let .runtimeMissing(program, package):
            return "'\(program)' is not installed: install the Debian package '\(package)' (apt-get install \(package)) or choose another runner"
        case let .nothingToRun(image):
            return "the image \(image) has neither an entrypoint nor a cmd, so there is nothing to run: set 'entrypoint' in its Imagefile's config"
        case let .unknownUser(user, reason):
            return "the image's user '\(user)' cannot be resolved: \(reason); use a numeric 'uid:gid' in the Imagefile's config"
        case let .setupFailed(instance, reason):
            return "instance \(instance): \(reason)"
        case let .idmapUnsupported(reason):
            return "cannot make an idmapped view of the release (\(reason)): user namespaces need Linux 5.12 or later and a state folder on ext4, xfs, btrfs or tmpfs"
        }
    }
}
