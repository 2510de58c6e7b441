import Foundation
import NIOCore
import OCI
#if canImport(Glibc)
import Glibc
import NIOConcurrencyHelpers
#endif

/// An OCI image layout folder (`oci-layout`, `index.json`, `blobs/sha256/…`) as a source or destination.
/// Tags are the `org.opencontainers.image.ref.name` annotations of `index.json`. As a destination the
/// folder is created if absent and blobs it already holds are reused.
public final class LayoutEndpoint: ImageSource, ImageDestination, Sendable {
    public let directory: String
    public var displayName: String { "oci:" + directory }
    public var registryLocation: (base: String, repository: String)? { nil }

    /// Whether the layout's skeleton exists.
    private let prepared = NIOLockedValueBox(false)
    /// This writer's scratch folder, open and locked (`flock`) for as long as the endpoint writes, so
    /// that other writers can tell it from one left by a writer that died.
    private let scratchLock = NIOLockedValueBox<Int32>(-1)

    public init(directory: String) {
        self.directory = directory
        self.temporaryDirectory = directory + "/.imgbuild-tmp/\(getpid())-\(UUID().uuidString)"
    }

    var blobsDirectory: String { directory + "/blobs/sha256" }
    /// Where writers stage files before they are renamed into place: one folder per endpoint inside
    /// the layout's shared scratch folder, so that closing one endpoint never removes what another
    /// process is still writing into the same layout.
    var scratchDirectory: String { directory + "/.imgbuild-tmp" }
    let temporaryDirectory: String
    func blobPath(_ digest: Digest) -> String { blobsDirectory + "/" + digest.hex }

    func readIndex() throws -> ImageIndex {
        let path = directory + "/index.json"
        guard FileManager.default.fileExists(atPath: path) else {
            // A new (or still empty) layout lists nothing; a folder of something else is not a layout.
            // Writers' scratch folders do not count: a new layout has them before its `oci-layout`.
            let entries = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0 != ".imgbuild-tmp" }
            if !entries.isEmpty && !entries.contains("oci-layout") {
                throw DistributionError.notFound("\(displayName)/index.json (the folder is not an OCI image layout)")
            }
            return ImageIndex(manifests: [])
        }
        do { return try JSONDecoder().decode(ImageIndex.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw DistributionError.invalidLocation(displayName, reason: "its index.json is not a valid OCI index (\(error))")
        }
    }

    public func manifest(_ reference: ManifestReference) async throws -> (descriptor: Descriptor, data: Data) {
        var descriptor: Descriptor
        switch reference {
        case .tag(let tag):
            guard let found = try readIndex().manifests.first(where: { $0.annotations?[AnnotationKey.refName] == tag }) else {
                throw DistributionError.notFound("\(displayName):\(tag)")
            }
            descriptor = found
        case .digest(let digest):
            let size = (try? FileManager.default.attributesOfItem(atPath: blobPath(digest))[.size] as? Int).flatMap { $0 }
            guard let size else { throw DistributionError.notFound("\(displayName)@\(digest)") }
            descriptor = Descriptor(mediaType: MediaType.imageManifest, digest: digest, size: Int64(size))
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: blobPath(descriptor.digest))[.size] as? Int) ?? 0
        guard size <= ManifestLimit.maxBytes else { throw DistributionError.manifestTooLarge(size: size) }
        let data = try Data(contentsOf: URL(fileURLWithPath: blobPath(descriptor.digest)))
        descriptor.annotations = nil
        if case .digest = reference {
            descriptor.mediaType = (try? AnyManifest(decoding: data))?.mediaType ?? descriptor.mediaType
        }
        try verify(data, descriptor)
        return (descriptor, data)
    }

    public func blob(_ descriptor: Descriptor, offset: Int64) async throws -> BlobStream {
        guard FileManager.default.fileExists(atPath: blobPath(descriptor.digest)) else { throw DistributionError.notFound("\(displayName) blob \(descriptor.digest)") }
        return try FileStreams.stream(path: blobPath(descriptor.digest), offset: offset)
    }

    public func hasBlob(_ descriptor: Descriptor) async throws -> Bool {
        FileManager.default.fileExists(atPath: blobPath(descriptor.digest))
    }

    /// Creates the layout's skeleton and this endpoint's scratch folder once (blob writers run in
    /// parallel), and removes the scratch folders of writers that died.
    func prepare() throws {
        try prepared.withLockedValue { prepared in
            guard !prepared else { return }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try withLayoutLock {
                removeDeadWritersScratch()
                try FileManager.default.createDirectory(atPath: temporaryDirectory, withIntermediateDirectories: true)
                let fd = Glibc.open(temporaryDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if fd >= 0 {
                    flock(fd, LOCK_EX | LOCK_NB)
                    scratchLock.withLockedValue { $0 = fd }
                }
                if !FileManager.default.fileExists(atPath: directory + "/oci-layout") {
                    let entries = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0 != ".imgbuild-tmp" }
                    guard entries.isEmpty else {
                        throw DistributionError.invalidLocation(displayName, reason: "the folder exists, is not empty and is not an OCI image layout: choose a new or empty folder")
                    }
                    try replace(directory + "/oci-layout", with: try CanonicalJSON.encode(ImageLayoutHeader()))
                }
                try FileManager.default.createDirectory(atPath: blobsDirectory, withIntermediateDirectories: true)
            }
            prepared = true
        }
    }

    /// Runs `body` holding the layout's lock: an exclusive `flock` on its folder, which every writer of
    /// it (in this process or another) takes around what it reads and rewrites (`index.json`) and
    /// around the shared scratch folder. A folder this user may write to but not open for reading
    /// cannot be locked; it is written without the lock, as before there was one.
    private func withLayoutLock<Result>(_ body: () throws -> Result) throws -> Result {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0, errno == EACCES { return try body() }
        guard fd >= 0 else { throw DistributionError.transport(operation: "open \(directory)", reason: String(cString: strerror(errno))) }
        defer { Glibc.close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw DistributionError.transport(operation: "lock \(directory)", reason: String(cString: strerror(errno))) }
        }
        return try body()
    }

    /// Scratch folders whose writer no longer runs (a copy killed mid-way): those nobody holds locked.
    /// A lock, unlike a process id, is seen across pid namespaces.
    private func removeDeadWritersScratch() {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: scratchDirectory)) ?? [] {
            let path = scratchDirectory + "/" + name
            guard path != temporaryDirectory else { continue }
            let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { Glibc.close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    public func putBlob(_ descriptor: Descriptor, open: @escaping BlobOpener) async throws -> Int64 {
        try prepare()
        let temporary = temporaryDirectory + "/blob-\(getpid())-\(UUID().uuidString)"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        guard fd >= 0 else { throw DistributionError.transport(operation: "write \(temporary)", reason: String(cString: strerror(errno))) }
        defer { Glibc.close(fd); unlink(temporary) }
        let size = try await open(0).writeVerified(to: fd, expecting: descriptor)
        fsync(fd)
        guard rename(temporary, blobPath(descriptor.digest)) == 0 else {
            throw DistributionError.transport(operation: "write \(blobPath(descriptor.digest))", reason: String(cString: strerror(errno)))
        }
        return size
    }

    public func putManifest(_ data: Data, descriptor: Descriptor) async throws {
        try verify(data, descriptor)
        try prepare()
        if !FileManager.default.fileExists(atPath: blobPath(descriptor.digest)) { try replace(blobPath(descriptor.digest), with: data) }
    }

    public func taggedDigest(_ tag: String) async throws -> Digest? {
        try readIndex().manifests.first { $0.annotations?[AnnotationKey.refName] == tag }?.digest
    }

    public func tag(_ tag: String, descriptor: Descriptor, data: Data) async throws {
        try prepare()
        try withLayoutLock { try addTag(tag, descriptor) }
    }

    private func addTag(_ tag: String, _ descriptor: Descriptor) throws {
        var index = try readIndex()
        if let existing = index.manifests.first(where: { $0.annotations?[AnnotationKey.refName] == tag }) {
            guard existing.digest == descriptor.digest else {
                throw DistributionError.tagImmutable(destination: displayName, tag: tag, existing: existing.digest, requested: descriptor.digest)
            }
            return
        }
        var entry = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size)
        entry.annotations = [AnnotationKey.refName: tag]
        index.manifests.append(entry)
        try replace(directory + "/index.json", with: try CanonicalJSON.encode(index))
    }

    /// A manifest copied by digest is listed in `index.json` without a name, so the layout keeps it.
    public func keep(_ descriptor: Descriptor) async throws {
        try prepare()
        try withLayoutLock {
            var index = try readIndex()
            guard !index.manifests.contains(where: { $0.digest == descriptor.digest }) else { return }
            index.manifests.append(Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size))
            try replace(directory + "/index.json", with: try CanonicalJSON.encode(index))
        }
    }

    /// Removes this endpoint's own scratch folder, and the shared one if no other writer uses it.
    public func close() async {
        let lock = scratchLock.withLockedValue { fd in defer { fd = -1 }; return fd }
        guard lock >= 0 || FileManager.default.fileExists(atPath: temporaryDirectory) else { return }
        _ = try? withLayoutLock {
            try? FileManager.default.removeItem(atPath: temporaryDirectory)
            rmdir(scratchDirectory)
        }
        if lock >= 0 { Glibc.close(lock) }
    }

    private func replace(_ path: String, with data: Data) throws {
        let temporary = temporaryDirectory + "/file-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: temporaryDirectory, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: temporary))
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 { fsync(fd); Glibc.close(fd) }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw DistributionError.transport(operation: "write \(path)", reason: String(cString: strerror(errno)))
        }
    }
}
