import Builder
import Foundation
import Imagefile
import Layers
import OCI
import PackageLock
import Store
#if canImport(Glibc)
import Glibc
#endif

/// A no-op `imgbuild build` remembered, and answered again without building.
///
/// A build that wrote no layer, walked no context section and found its version already tagged with the
/// same digest leaves a ``ReplayRecord`` in the build cache (`CACHE/replays/`), named by its command.
/// The next time the same command runs in the same folder, ``replay(arguments:environment:)`` checks the
/// record before anything else (before the arguments are even parsed: the record is keyed by them) and,
/// while everything the build depended on stats and reads the same, prints what that build printed.
/// Anything else, a record missing, damaged or stale included, is a miss: the command runs as usual.
public enum BuildReplay {
    /// The environment variables every build may read (the store, the cache, the epoch); an Imagefile's
    /// repositories add the variables their addresses name.
    static let readVariables = ["HOME", "XDG_DATA_HOME", "IMGBUILD_STORE", "XDG_CACHE_HOME", "IMGBUILD_CACHE", "SOURCE_DATE_EPOCH", "TMPDIR"]

    /// The largest record read (a record holds no snapshot, only paths and stat data).
    static let largestRecord = 16 << 20

    /// Prints what the last no-op build of the same command printed, if `arguments` (the process's,
    /// program name first) are an `imgbuild build` whose record still holds, and returns the exit status
    /// (0, or 1 when the digest could not be written to standard output); nil otherwise, having printed
    /// nothing. `environment` looks a variable up (``variable(_:)`` by default: a dictionary of the whole
    /// environment would cost more than the lookups).
    public static func replay(arguments: [String], environment: (String) -> String? = variable) -> Int32? {
        guard arguments.count >= 2, arguments[1] == "build", let command = command(arguments) else { return nil }
        let cacheDirectory = BuildOptions.defaultCacheDirectory(variable: environment)
        guard let bytes = read(recordPath(command, cacheDirectory: cacheDirectory), atMost: largestRecord),
              let record = ReplayRecord(decoding: bytes), record.command == command, record.cacheDirectory == cacheDirectory,
              holds(record, environment: environment) else { return nil }
        // Standard error first, as the build printed its progress before the digest. Progress that cannot
        // be written is lost, as a build's is; a digest that cannot be written fails the command.
        _ = write(record.standardError, to: STDERR_FILENO)
        guard write(record.standardOutput, to: STDOUT_FILENO) else {
            _ = write(Array("Error: cannot write the digest to standard output: \(String(cString: strerror(errno)))\n".utf8), to: STDERR_FILENO)
            return 1
        }
        return 0
    }

    /// Whether everything `record` depends on is as it was, cheapest checks first.
    static func holds(_ record: ReplayRecord, environment: (String) -> String?) -> Bool {
        guard record.environment.allSatisfy({ environment($0.name) == $0.value }),
              record.files.allSatisfy({ stamp(of: $0.path) == $0.stamp }),
              record.resolved.allSatisfy({ ContextReader.realPath($0.path) == $0.target }),
              record.existing.allSatisfy({ access($0, F_OK) == 0 }),
              canLease(record.leaseFile),
              read(record.tagPath, atMost: record.tag.count + 1) == record.tag,
              Builder.readerIdentity == record.reader else { return false }
        return record.snapshots.allSatisfy { $0.holds(cacheDirectory: record.cacheDirectory) }
    }

    /// What a finished build leaves for its replay: nil unless it was a no-op that a replay may repeat.
    ///
    /// `started` is when the command started (seconds since 1970): a file changed within
    /// ``LayerFingerprint/racyWindow`` of it may have changed while the build read it, or may change
    /// again within the same clock tick unseen, so such a build is not recorded (the next one is).
    public static func record(of image: WrittenImage, command: ReplayRecord.Command, options: BuildOptions, started: Int,
                              standardOutput: [UInt8], standardError: [UInt8]) -> ReplayRecord? {
        // A `system` repository's address comes from the machine's apt sources, which the record does not
        // follow: such a build is not recorded.
        guard image.rebuiltNothing, image.imagefile.tests.isEmpty, let reader = Builder.readerIdentity,
              !image.imagefile.repositories.contains(where: { $0.url == "system" }) else { return nil }
        let name = image.imagefile.name
        let store = image.store
        let tagPath = store.tagPath(name, image.version)
        guard let tag = read(tagPath, atMost: 1 << 16), let blobs = try? store.blobs(of: image.manifest) else { return nil }
        var record = ReplayRecord(command: command, cacheDirectory: options.cacheDirectory, reader: reader, tagPath: tagPath, tag: tag)
        record.leaseFile = store.leasePath
        record.standardOutput = standardOutput
        record.standardError = standardError
        // An image's layers go from what changes least to what changes most: the last section is checked
        // first, so that a change in `code` is found before the larger `runtime` is looked at.
        record.snapshots = image.contextSnapshots.reversed()

        let imagefile = image.imagefile
        var variables = readVariables
        for repository in imagefile.repositories { variables += RepositoryAddress.variableNames(in: repository.url) }
        record.environment = variables.map { ReplayRecord.Variable(name: $0, value: options.environment[$0]) }

        // Files whose bytes the build read: racily clean ones are not trusted.
        var inputs = [imagefile.path]
        if !imagefile.packages.isEmpty { inputs.append(imagefile.lockPath) }
        for dependency in imagefile.dependencies {
            switch dependency.source {
            case .deb(let path), .archive(let path): inputs.append(path.hasPrefix("/") ? path : imagefile.contextDirectory + "/" + path)
            case .url: break  // fetched into the download cache by digest: a cache, not an input
            }
        }
        let recent = started - LayerFingerprint.racyWindow
        for path in inputs {
            guard let stamp = stamp(of: path), !stamp.touched(since: recent) else { return nil }
            record.files.append(ReplayRecord.WatchedFile(path: path, stamp: stamp))
        }
        // Files that only need to be the same ones: the executable, the store's format, the version's
        // repository (a tag added or removed since moves the tags folder; a build would then check the
        // layout's index.json), and downloads, which a build checks by their digest (a file moved or
        // rewritten since is another file). None was read for bytes that a change in the same clock tick
        // could hide, so a recent change is no doubt.
        var same = ["/proc/self/exe", store.markerPath, store.repositoryDirectory(name) + "/tags", store.repositoryDirectory(name) + "/index.json"]
        for dependency in imagefile.dependencies {
            if case .url = dependency.source { same.append(Builder.downloadedFile(dependency.sha256, cacheDirectory: options.cacheDirectory)) }
        }
        for path in same {
            guard let stamp = stamp(of: path) else { return nil }
            record.files.append(ReplayRecord.WatchedFile(path: path, stamp: stamp))
        }
        // The Imagefile, its folder and the store as the command names them, and where they lead now: a
        // symlink switched to another folder is another build (the context is the folder the path leads
        // to; the store is the folder its path leads to).
        let folder = (imagefile.path as NSString).deletingLastPathComponent
        for path in [imagefile.path, folder.isEmpty ? "." : folder, options.storePath] {
            guard let target = ContextReader.realPath(path) else { return nil }
            record.resolved.append(ReplayRecord.ResolvedPath(path: path, target: target))
        }
        // Every blob of the image and of its base (an index's images too), by stat data: a blob removed or
        // cut short is one a build would write again or refuse.
        var blobPaths = blobs.map(store.blobPath)
        if case .image(let base) = imagefile.base {
            guard let descriptor = try? store.resolve(base), let baseBlobs = try? store.blobs(of: descriptor) else { return nil }
            record.existing.append(store.repositoryDirectory(base.name))
            blobPaths += baseBlobs.map(store.blobPath)
        }
        for path in blobPaths {
            guard let stamp = stamp(of: path) else { return nil }
            record.files.append(ReplayRecord.WatchedFile(path: path, stamp: stamp))
        }
        return record
    }

    /// Keeps `record` for the next run of its command; a failure only costs a build later.
    public static func remember(_ record: ReplayRecord) {
        let path = recordPath(record.command, cacheDirectory: record.cacheDirectory)
        let folder = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try? Data(record.encoded()).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// `CACHE/replays/<hash of the command>`: the record itself holds the command, so two commands with
    /// the same hash only replace each other's record.
    static func recordPath(_ command: ReplayRecord.Command, cacheDirectory: String) -> String {
        var out = ByteRecordWriter()
        ReplayRecord.write(command, to: &out)
        // FNV-1a, 64 bits: a name, not a check.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in out.buffer { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return cacheDirectory + "/replays/" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The process's value of an environment variable, as a build reads it (Foundation's `ProcessInfo`):
    /// of two entries with one name, the last.
    public static func variable(_ name: String) -> String? {
        let prefix = (Array(name.utf8) + [UInt8(ascii: "=")]).map { CChar(bitPattern: $0) }
        var found: UnsafeMutablePointer<CChar>?
        var entry = environ
        while let text = entry.pointee {
            if strncmp(text, prefix, prefix.count) == 0 { found = text }
            entry += 1
        }
        return found.map { String(decoding: UnsafeRawBufferPointer(start: $0 + prefix.count, count: strlen($0 + prefix.count)), as: UTF8.self) }
    }

    /// Whether a build could take its write lease on the store now: the lease file opens for writing and
    /// its shared lock is free (`gc` holds it exclusively while it runs).
    static func canLease(_ path: String) -> Bool {
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) == 0
    }

    /// The command the process runs: its working directory and `arguments` (the process's, program name
    /// first) after the program's name. Nil when the working directory cannot be told.
    public static func command(_ arguments: [String]) -> ReplayRecord.Command? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return nil }
        let path = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return ReplayRecord.Command(workingDirectory: String(decoding: path, as: UTF8.self), arguments: Array(arguments.dropFirst()))
    }

    /// The stat data of `path`, symlinks followed (as the build opened it); nil when it cannot be statted.
    static func stamp(of path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStamp(info)
    }

    /// A regular file's bytes, if it holds at most `limit` of them. Opened without waiting: a FIFO put
    /// where a record or tag belongs is refused, not waited on.
    static func read(_ path: String, atMost limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size <= limit else { return nil }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            done += n
        }
        return bytes
    }

    static func write(_ bytes: [UInt8], to fd: Int32) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }
}
