import Foundation
import OCI
import SemVer
#if canImport(Glibc)
import Glibc
#endif

/// What tagging did.
public enum TagOutcome: Equatable, Sendable {
    /// The version now points at the digest.
    case created
    /// The version already pointed at this digest; nothing changed.
    case unchanged
}

extension Store {
    /// Points `name:version` at the manifest `descriptor`, once and for ever.
    ///
    /// The tag file is created with `link(2)`, which fails if the name exists, so of any number of
    /// processes tagging the same version at once exactly one wins; the others see the winner's digest.
    @discardableResult
    public func tag(_ name: RepositoryName, _ version: Version, _ descriptor: Descriptor) throws(StoreError) -> TagOutcome {
        let lease = try acquireWriteLease()
        defer { withExtendedLifetime(lease) {} }
        guard hasBlob(descriptor.digest) else { throw .blobMissing(descriptor.digest) }
        let tagsDirectory = try prepareRepository(name)
        let tagPath = tagsDirectory + "/" + version.description
        // The same tag again (a rebuild that changed nothing) is answered without writing anything.
        if FileSystem.exists(tagPath) {
            return try confirmExisting(name, version, descriptor)
        }
        let record = Descriptor(mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size)
        let staged = try FileSystem.stage(try! CanonicalJSON.encode(record), in: temporaryDirectory)
        defer { unlink(staged) }
        if link(staged, tagPath) != 0 {
            guard errno == EEXIST else { throw FileSystem.failure(tagPath) }
            return try confirmExisting(name, version, descriptor)
        }
        try FileSystem.fsyncDirectory(tagsDirectory)
        try refreshLayoutIndex(name)
        return .created
    }

    /// A tag that exists already: the same digest is no change, another one is refused. The layout's
    /// index is refreshed all the same, in case the process that made the tag died before it did,
    /// unless it was written after the tags last changed (a tag added or removed moves the tags folder's
    /// modification time): then it is current, and a rebuild need not read every tag of the repository.
    private func confirmExisting(_ name: RepositoryName, _ version: Version, _ descriptor: Descriptor) throws(StoreError) -> TagOutcome {
        let existing = try readTag(name, version)
        guard existing.digest == descriptor.digest else {
            throw .tagImmutable(repository: name.value, version: version.description,
                                existing: existing.digest, requested: descriptor.digest)
        }
        let directory = repositoryDirectory(name)
        if !FileSystem.modified(directory + "/index.json", after: directory + "/tags") {
            try refreshLayoutIndex(name)
        }
        return .unchanged
    }

    /// The file that holds a version's tag (which may not exist).
    public func tagPath(_ name: RepositoryName, _ version: Version) -> String {
        repositoryDirectory(name) + "/tags/" + version.description
    }

    /// The manifest descriptor a version points at.
    public func readTag(_ name: RepositoryName, _ version: Version) throws(StoreError) -> Descriptor {
        let path = tagPath(name, version)
        guard FileSystem.exists(path) else {
            guard FileSystem.exists(repositoryDirectory(name)) else { throw .unknownRepository(name.value) }
            throw .unknownTag(repository: name.value, version: version.description)
        }
        let data = try FileSystem.read(path)
        guard let descriptor = try? JSONDecoder().decode(Descriptor.self, from: data) else {
            throw .corruptTag(repository: name.value, version: version.description, path: path)
        }
        return descriptor
    }

    /// Every version of a repository with its manifest descriptor, in SemVer precedence order.
    public func tags(_ name: RepositoryName) throws(StoreError) -> [(version: Version, descriptor: Descriptor)] {
        let directory = repositoryDirectory(name)
        guard FileSystem.exists(directory) else { throw .unknownRepository(name.value) }
        var result: [(Version, Descriptor)] = []
        for file in FileSystem.list(directory + "/tags") {
            guard let version = try? Version(parsing: file) else { continue }
            result.append((version, try readTag(name, version)))
        }
        return result.sorted { $0.0 < $1.0 }
    }

    /// Whether the repository exists (has been tagged, pinned or pushed to).
    public func hasRepository(_ name: RepositoryName) -> Bool {
        FileSystem.isDirectory(repositoryDirectory(name) + "/tags")
    }

    /// The repositories of the store, sorted by name.
    public func repositories() -> [RepositoryName] {
        var names: [RepositoryName] = []
        func visit(_ relative: String) {
            let path = repositoriesDirectory + (relative.isEmpty ? "" : "/" + relative)
            if FileSystem.isDirectory(path + "/tags"), let name = try? RepositoryName(relative) { names.append(name) }
            for child in FileSystem.list(path) where child != "tags" && child != "blobs" && !child.hasPrefix(".") {
                let childPath = path + "/" + child
                var info = stat()
                if lstat(childPath, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
                    visit(relative.isEmpty ? child : relative + "/" + child)
                }
            }
        }
        visit("")
        return names.sorted()
    }

    /// Creates the repository's folder as an OCI image layout sharing the store's blobs; returns its
    /// `tags` folder.
    func prepareRepository(_ name: RepositoryName) throws(StoreError) -> String {
        if let component = Store.reservedComponent(of: name) { throw .reservedRepositoryName(name.value, component: component) }
        let directory = repositoryDirectory(name)
        let tagsDirectory = directory + "/tags"
        if FileSystem.isDirectory(tagsDirectory) { return tagsDirectory }
        try FileSystem.makeDirectories(directory)
        let layoutPath = directory + "/oci-layout"
        if !FileSystem.exists(layoutPath) {
            try FileSystem.replace(layoutPath, with: try! CanonicalJSON.encode(ImageLayoutHeader()), temporaryDirectory: temporaryDirectory)
        }
        let blobsLink = directory + "/blobs"
        if !FileSystem.exists(blobsLink) {
            let depth = name.value.split(separator: "/").count + 1
            let target = String(repeating: "../", count: depth) + "blobs"
            if symlink(target, blobsLink) != 0 && errno != EEXIST { throw FileSystem.failure(blobsLink) }
        }
        try FileSystem.makeDirectories(tagsDirectory)
        try FileSystem.fsyncDirectory(directory)
        return tagsDirectory
    }

    /// Rewrites the repository's `index.json` from its tags, so OCI tools see every version by
    /// `org.opencontainers.image.ref.name`. The tags are the truth; this file is derived from them.
    func refreshLayoutIndex(_ name: RepositoryName) throws(StoreError) {
        let directory = repositoryDirectory(name)
        let lock = try FileLock(path: directory + "/.lock")
        defer { withExtendedLifetime(lock) {} }
        let manifests = try tags(name).map { entry in
            var descriptor = entry.descriptor
            descriptor.annotations = [AnnotationKey.refName: entry.version.description]
            return descriptor
        }
        let index = try! CanonicalJSON.encode(ImageIndex(manifests: manifests))
        let path = directory + "/index.json"
        if (try? FileSystem.read(path)) == index { return }
        try FileSystem.replace(path, with: index, temporaryDirectory: temporaryDirectory)
    }
}

extension Store {
    /// The highest version of a repository in `range`, with its manifest descriptor.
    public func resolve(_ name: RepositoryName, range: VersionRange, includePrerelease: Bool = false) throws(StoreError) -> (version: Version, descriptor: Descriptor) {
        let all = try tags(name)
        guard let best = range.highest(in: all.map(\.version), includePrerelease: includePrerelease),
              let match = all.first(where: { $0.version == best }) else {
            let versions = all.map(\.version.description).joined(separator: ", ")
            throw .noMatchingVersion(repository: name.value, range: range.text, available: versions.isEmpty ? "none" : versions)
        }
        return match
    }
}
