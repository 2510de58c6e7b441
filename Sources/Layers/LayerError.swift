/// Everything that can go wrong while reading inputs for a layer or writing one.
public enum LayerError: Error, Equatable, CustomStringConvertible {
    /// A file or folder could not be read.
    case unreadable(path: String, reason: String)
    /// A copy source does not exist.
    case missingSource(path: String)
    /// A copy source lies outside the build context (after following symlinks).
    case escapesContext(path: String, context: String)
    /// A symlink in the build context points outside it, or is absolute.
    case symlinkEscapes(path: String, target: String)
    /// A device file, socket or fifo.
    case unsupportedFileType(path: String, type: String)
    /// A file changed size while it was being archived.
    case changedWhileReading(path: String)
    /// libarchive could not read an archive.
    case unreadableArchive(path: String, reason: String)
    /// An entry of an archive that would land outside the image root or is otherwise unsafe.
    case unsafeArchiveEntry(archive: String, entry: String, reason: String)
    /// A `.deb` file without a `data.tar.*` member.
    case notADebianPackage(path: String)
    /// An entry would need a directory where the layer already has a file or symlink.
    case pathConflict(path: String, blocker: String)
    /// A hard link whose target is not a regular file in the same layer.
    case hardlinkTargetMissing(path: String, target: String)
    /// A failure of the tar writer, the compressor or the output file.
    case writeFailed(reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read '\(path)': \(reason)"
        case let .missingSource(path):
            return "'\(path)' does not exist: check the path, which is relative to the Imagefile's folder"
        case let .escapesContext(path, context):
            return "'\(path)' lies outside the build context '\(context)': only files inside the Imagefile's folder can be copied (declare outside artefacts as dependencies pinned by sha256)"
        case let .symlinkEscapes(path, target):
            return "symlink '\(path)' -> '\(target)' leads outside the build context: use a relative link that stays inside the context, or remove it"
        case let .unsupportedFileType(path, type):
            return "'\(path)' is a \(type): device files, sockets and fifos cannot go into an image; remove it or exclude it"
        case let .changedWhileReading(path):
            return "'\(path)' changed while it was being archived: build again once nothing writes to the context"
        case let .unreadableArchive(path, reason):
            return "cannot read archive '\(path)': \(reason)"
        case let .unsafeArchiveEntry(archive, entry, reason):
            return "archive '\(archive)' has an unsafe entry '\(entry)': \(reason)"
        case let .notADebianPackage(path):
            return "'\(path)' is not a Debian package: it has no data.tar.* member"
        case let .pathConflict(path, blocker):
            return "'\(path)' cannot be added: '\(blocker)' is already in the layer and is not a directory"
        case let .hardlinkTargetMissing(path, target):
            return "hard link '\(path)' points at '\(target)', which is not a regular file in the same layer"
        case let .writeFailed(reason):
            return "writing the layer failed: \(reason)"
        }
    }
}
