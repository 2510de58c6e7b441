import Builder
import Layers
import OCI

/// What a no-op `imgbuild build` printed, with everything its answer depended on, so that the same
/// command can print the same again without building while all of it holds (as git's index answers
/// "nothing changed" from stat data, and `make` says "nothing to be done").
///
/// It holds only checks that cost a `stat` or a small read: the stat data of the files the build read
/// (the Imagefile, its lock, local dependency archives, the executable), the environment variables it
/// read, who read, the context sections' snapshots (each checked by stat, as a build checks them), the
/// version's tag file, and the blobs the image is made of.
public struct ReplayRecord: Sendable, Equatable {
    /// The command, as typed: where it ran and its arguments after the program's name.
    public struct Command: Sendable, Equatable {
        public var workingDirectory: String
        public var arguments: [String]

        public init(workingDirectory: String, arguments: [String]) {
            self.workingDirectory = workingDirectory
            self.arguments = arguments
        }
    }

    /// An environment variable the build read, and its value then (nil: unset).
    public struct Variable: Sendable, Equatable {
        public var name: String
        public var value: String?
    }

    /// A file the build read, and its stat data then.
    public struct WatchedFile: Sendable, Equatable {
        public var path: String
        public var stamp: FileStamp
    }

    /// A path the build went through (the Imagefile, the context folder), and where it led with every
    /// symlink resolved: a link switched to another folder holding the same Imagefile is another build.
    public struct ResolvedPath: Sendable, Equatable {
        public var path: String
        public var target: String
    }

    public var command: Command
    /// The build cache the command used (its snapshots are checked there).
    public var cacheDirectory: String
    public var environment: [Variable] = []
    /// ``Builder/readerIdentity`` when the build ran: whether a file can be read depends on it.
    public var reader: String
    public var files: [WatchedFile] = []
    public var resolved: [ResolvedPath] = []
    public var snapshots: [ContextSnapshotUse] = []
    /// The store's lease file: a build takes its shared lock (so a store that cannot be written, or one
    /// `gc` holds, is no replay).
    public var leaseFile: String = ""
    /// The version's tag file and its bytes.
    public var tagPath: String
    public var tag: [UInt8]
    /// Folders that must exist (the base's repository).
    public var existing: [String] = []
    public var standardOutput: [UInt8] = []
    public var standardError: [UInt8] = []

    public init(command: Command, cacheDirectory: String, reader: String, tagPath: String, tag: [UInt8]) {
        self.command = command
        self.cacheDirectory = cacheDirectory
        self.reader = reader
        self.tagPath = tagPath
        self.tag = tag
    }
}

// MARK: - Encoding

extension ReplayRecord {
    static let magic = Array("imgbuild-build-replay-1\n".utf8)

    /// The record as bytes, for its file in the build cache.
    public func encoded() -> [UInt8] {
        var out = ByteRecordWriter()
        out.bytes(Self.magic)
        Self.write(command, to: &out)
        out.text(cacheDirectory)
        out.integer(UInt64(environment.count))
        for variable in environment {
            out.text(variable.name)
            out.integer(UInt8(variable.value == nil ? 0 : 1))
            out.text(variable.value ?? "")
        }
        out.text(reader)
        out.integer(UInt64(files.count))
        for file in files {
            out.text(file.path)
            out.stamp(file.stamp)
        }
        out.integer(UInt64(resolved.count))
        for path in resolved {
            out.text(path.path)
            out.text(path.target)
        }
        out.text(leaseFile)
        out.integer(UInt64(snapshots.count))
        for snapshot in snapshots {
            out.text(snapshot.key.hex)
            out.text(snapshot.contents.hex)
        }
        out.text(tagPath)
        out.block(tag)
        out.integer(UInt64(existing.count))
        existing.forEach { out.text($0) }
        out.block(standardOutput)
        out.block(standardError)
        return out.buffer
    }

    /// Reads bytes made by ``encoded()``; nil when they are not such bytes (a record cut short, damaged,
    /// or written by another version is only a miss).
    public init?(decoding bytes: [UInt8]) {
        guard let record = bytes.withUnsafeBytes({ Self.decode($0) }) else { return nil }
        self = record
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) -> ReplayRecord? {
        var input = ByteRecordReader(bytes)
        guard input.expect(Self.magic), let command = Self.readCommand(&input), let cacheDirectory = input.readText(),
              let variableCount = input.count() else { return nil }
        var environment: [Variable] = []
        for _ in 0..<variableCount {
            guard let name = input.readText(), let isSet: UInt8 = input.integer(), isSet <= 1, let value = input.readText() else { return nil }
            environment.append(Variable(name: name, value: isSet == 1 ? value : nil))
        }
        guard let reader = input.readText(), let fileCount = input.count() else { return nil }
        var files: [WatchedFile] = []
        for _ in 0..<fileCount {
            guard let path = input.readText(), let stamp = input.readStamp() else { return nil }
            files.append(WatchedFile(path: path, stamp: stamp))
        }
        guard let resolvedCount = input.count() else { return nil }
        var resolved: [ResolvedPath] = []
        for _ in 0..<resolvedCount {
            guard let path = input.readText(), let target = input.readText() else { return nil }
            resolved.append(ResolvedPath(path: path, target: target))
        }
        guard let leaseFile = input.readText(), let snapshotCount = input.count() else { return nil }
        var snapshots: [ContextSnapshotUse] = []
        for _ in 0..<snapshotCount {
            guard let key = input.readText().flatMap(Digest.init(hex:)), let contents = input.readText().flatMap(Digest.init(hex:)) else { return nil }
            snapshots.append(ContextSnapshotUse(key: key, contents: contents))
        }
        guard let tagPath = input.readText(), let tag = input.readBlock(), let existingCount = input.count() else { return nil }
        var existing: [String] = []
        for _ in 0..<existingCount {
            guard let path = input.readText() else { return nil }
            existing.append(path)
        }
        guard let standardOutput = input.readBlock(), let standardError = input.readBlock(), input.isAtEnd else { return nil }
        var record = ReplayRecord(command: command, cacheDirectory: cacheDirectory, reader: reader, tagPath: tagPath, tag: tag)
        record.environment = environment
        record.files = files
        record.resolved = resolved
        record.leaseFile = leaseFile
        record.snapshots = snapshots
        record.existing = existing
        record.standardOutput = standardOutput
        record.standardError = standardError
        return record
    }

    static func write(_ command: Command, to out: inout ByteRecordWriter) {
        out.text(command.workingDirectory)
        out.integer(UInt64(command.arguments.count))
        command.arguments.forEach { out.text($0) }
    }

    static func readCommand(_ input: inout ByteRecordReader) -> Command? {
        guard let workingDirectory = input.readText(), let count = input.count() else { return nil }
        var arguments: [String] = []
        for _ in 0..<count {
            guard let argument = input.readText() else { return nil }
            arguments.append(argument)
        }
        return Command(workingDirectory: workingDirectory, arguments: arguments)
    }
}
