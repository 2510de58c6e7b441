import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// The local registry directory: one content-addressed blob area shared by every repository, and per
/// repository a set of immutable SemVer tags.
///
/// ```
/// STORE/
///   imgbuild-store.json            {"format":"imgbuild-store","version":1}
///   blobs/sha256/<hex>             every blob, read-only, named by the SHA-256 of its bytes
///   repositories/<name>/
///     tags/<version>               the tag's manifest descriptor (canonical JSON), created once
///     index.json, oci-layout,      so that the folder is an OCI image layout other tools can read
///     blobs -> ../…/blobs
///   tmp/                           files being written; never read as content
/// ```
///
/// Every write goes to `tmp/`, is fsynced, and is renamed or hard-linked into place, so a crash at any
/// moment leaves only complete files visible.
public struct Store: Sendable {
    /// The store's folder, absolute.
    public let root: String

    /// The format this build reads and writes.
    public static let formatVersion = 1
    static let markerName = "imgbuild-store.json"

    struct Marker: Codable, Equatable {
        var format: String
        var version: Int
    }

    /// The default store: `$IMGBUILD_STORE`, else `$XDG_DATA_HOME/imgbuild`, else `~/.local/share/imgbuild`.
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["IMGBUILD_STORE"], !explicit.isEmpty { return explicit }
        if let data = environment["XDG_DATA_HOME"], !data.isEmpty { return data + "/imgbuild" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.local/share/imgbuild"
    }

    /// Opens the store at `path`, creating it if the folder is missing or empty and `create` is true.
    public static func open(at path: String, create: Bool = true) throws(StoreError) -> Store {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let root = (absolute as NSString).standardizingPath
        let markerPath = root + "/" + markerName
        if FileSystem.exists(markerPath) {
            let data = try FileSystem.read(markerPath)
            guard let marker = try? JSONDecoder().decode(Marker.self, from: data), marker.format == "imgbuild-store" else {
                throw .unsupportedFormat(path: root, found: "unknown (\(markerName) is not readable)")
            }
            guard marker.version == formatVersion else {
                throw .unsupportedFormat(path: root, found: "version \(marker.version)")
            }
            return Store(root: root)
        }
        guard create else { throw .notAStore(path: root) }
        if FileSystem.exists(root) {
            guard FileSystem.isDirectory(root), FileSystem.list(root).isEmpty else { throw .notAStore(path: root) }
        }
        try createAtomically(root)
        return try open(at: root, create: false)
    }

    /// Creates the store's skeleton and marker in a sibling folder and renames it into place, so a store
    /// is either absent or complete: a process killed meanwhile leaves at most a stray sibling folder.
    /// rename(2) also replaces an empty folder; if another process created the store first, its store is
    /// used.
    private static func createAtomically(_ root: String) throws(StoreError) {
        let parent = (root as NSString).deletingLastPathComponent
        try FileSystem.makeDirectories(parent)
        let staging = parent + "/.\((root as NSString).lastPathComponent).creating-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: staging) }
        for folder in ["/blobs/sha256", "/repositories", "/tmp"] {
            try FileSystem.makeDirectories(staging + folder)
        }
        let marker = try! CanonicalJSON.encode(Marker(format: "imgbuild-store", version: Store.formatVersion))
        try FileSystem.replace(staging + "/" + markerName, with: marker, temporaryDirectory: staging + "/tmp")
        if rename(staging, root) != 0 {
            let code = errno
            let error = FileSystem.failure(root)
            guard code == ENOTEMPTY || code == EEXIST, FileSystem.exists(root + "/" + markerName) else { throw error }
        }
        try FileSystem.fsyncDirectory(parent)
    }

    private init(root: String) {
        self.root = root
    }

    /// The file that says which format the store is in (a store of another format is refused).
    public var markerPath: String { root + "/" + Self.markerName }
    var blobsDirectory: String { root + "/blobs/sha256" }
    var repositoriesDirectory: String { root + "/repositories" }
    /// Where files are written before they are moved into place.
    public var temporaryDirectory: String { root + "/tmp" }

    /// A repository's folder (which may not exist).
    public func repositoryDirectory(_ name: RepositoryName) -> String { repositoriesDirectory + "/" + name.value }

    /// The names a repository's folder holds besides nested repositories.
    static let repositoryFolderEntries: Set<String> = ["tags", "artifacts", "pins", "referrers", "index.json", "oci-layout", "blobs"]

    /// The component of `name` that would land on a folder of its parent repository (`team/tags`), if
    /// any: such names are refused, so that no repository is ever read as part of another.
    public static func reservedComponent(of name: RepositoryName) -> String? {
        name.value.split(separator: "/").dropFirst().first { repositoryFolderEntries.contains(String($0)) }.map(String.init)
    }
}
