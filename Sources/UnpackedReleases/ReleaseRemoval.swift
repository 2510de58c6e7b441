import Foundation
import OCI
import Store
import NIOConcurrencyHelpers

/// What ``ReleaseCache/collect(_:dryRun:)`` removed, or would remove.
public struct ReleaseCollection: Sendable, Codable, Equatable {
    /// One release removed: its digest, the repositories it was fetched as, and the bytes its folder held.
    public struct Removed: Sendable, Codable, Equatable {
        public var digest: Digest
        public var names: [String]
        /// The unpacked folder's size on disk; nil when only its blobs were left (no folder).
        public var folderBytes: Int64?
    }

    public var dryRun: Bool
    public var removed: [Removed] = []
    /// Blobs of the deployer's store that nothing kept reaches any more, and their bytes.
    public var removedBlobs = 0
    public var freedBlobBytes: Int64 = 0
    /// Every byte freed: the folders and the blobs.
    public var freedBytes: Int64 = 0
    /// Why the store's blobs were not collected this time (a writer held it), when they were not.
    public var storeNote: String?

    public var isEmpty: Bool { removed.isEmpty && removedBlobs == 0 }
}

extension ReleaseCache {
    /// The images this deployer holds in any form: an unpacked release folder, or a pin in its store (an
    /// image fetched whose unpack or policy check failed, or whose folder went first in a removal a crash cut short).
    public func heldImages() -> Set<Digest> {
        var held = Set<Digest>()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: releasesPath)) ?? [] where name.hasPrefix("sha256-") {
            if let digest = Digest(hex: String(name.dropFirst(7))) { held.insert(digest) }
        }
        if let store = try? Store.open(at: storePath, create: false) {
            for repository in store.repositories() {
                for pin in (try? store.pins(repository)) ?? [] { held.insert(pin.digest) }
            }
        }
        return held
    }

    /// Removes the images in `doomed`: the release folder of each first (renamed out of the way in one
    /// step, so a release is either complete or gone, and a crash leaves only a `.removing-` folder that
    /// ``removeScratch()`` deletes), then the pins, referrers and blobs that only they reached in the
    /// deployer's store. A store that a writer holds is not waited for: its part is left for the next
    /// collection (``ReleaseCollection/storeNote``). With `dryRun` nothing changes.
    ///
    /// The caller makes sure that nothing starts to use a doomed image until this returns.
    public func collect(_ doomed: Set<Digest>, dryRun: Bool) throws(ReleaseError) -> ReleaseCollection {
        var collection = ReleaseCollection(dryRun: dryRun)
        let store = try? Store.open(at: storePath, create: false)
        for digest in doomed.sorted(by: { $0.hex < $1.hex }) {
            let names = store.map { store in store.repositories().filter { ((try? store.pins($0)) ?? []).contains { $0.digest == digest } }.map(\.value) } ?? []
            let folder = releasesPath + "/sha256-" + digest.hex
            var removed = ReleaseCollection.Removed(digest: digest, names: names, folderBytes: nil)
            if FileManager.default.fileExists(atPath: folder) {
                removed.folderBytes = Self.bytesOnDisk(folder)
                if !dryRun {
                    let doomedFolder = releasesPath + "/.removing-\(digest.hex)-\(getpid())"
                    guard rename(folder, doomedFolder) == 0 else {
                        throw .stateUnwritable(path: folder, reason: "it cannot be moved out of the way to be removed: \(String(cString: strerror(errno)))")
                    }
                    Self.removeTree(doomedFolder)
                }
            }
            collection.removed.append(removed)
        }
        if let store {
            do {
                let report = try store.collectGarbage(forgetting: doomed, dryRun: dryRun, onWait: { () throws(StoreError) in throw .busy(path: storePath) })
                collection.removedBlobs = report.removedBlobs
                collection.freedBlobBytes = report.freedBytes
            } catch .busy {
                collection.storeNote = StoreError.busy(path: storePath).description
            } catch {
                throw .stateUnwritable(path: storePath, reason: "its garbage cannot be collected: \(error)")
            }
        }
        collection.freedBytes = collection.removed.reduce(collection.freedBlobBytes) { $0 + ($1.folderBytes ?? 0) }
        return collection
    }

    /// The bytes an image's release folder takes on disk (each file counted once, however many links it has),
    /// remembered per image: a release folder never changes. Nil when the image is not unpacked here.
    public func bytesOnDisk(_ image: Digest) -> Int64? {
        let folder = releasesPath + "/sha256-" + image.hex
        // Asked each time: a folder measured once may have been removed since.
        guard FileManager.default.fileExists(atPath: folder + "/release.json") else { return nil }
        if let known = sizes.size(of: image) { return known }
        let bytes = Self.bytesOnDisk(folder)
        sizes.remember(bytes, for: image)
        return bytes
    }

    /// Blocks allocated below `path`, without following symbolic links, each inode once.
    static func bytesOnDisk(_ path: String) -> Int64 {
        var total: Int64 = 0
        var seen = Set<[UInt64]>()
        walk(path) { _, info in
            if info.st_nlink > 1, !seen.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted { return }
            total += Int64(info.st_blocks) * 512
        }
        return total
    }

    /// Removes a folder tree, making its folders writable first where an image left them read-only (a
    /// deployer that does not run as root cannot unlink entries of a 0555 folder).
    static func removeTree(_ path: String) {
        if (try? FileManager.default.removeItem(atPath: path)) != nil { return }
        walk(path) { entry, info in
            if info.st_mode & S_IFMT == S_IFDIR { chmod(entry, (info.st_mode & 0o7777) | 0o700) }
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Visits `path` and everything below it (folders before their entries), never following a symbolic link.
    private static func walk(_ path: String, _ visit: (String, stat) -> Void) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        visit(path, info)
        guard info.st_mode & S_IFMT == S_IFDIR else { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] { walk(path + "/" + name, visit) }
    }
}

/// Release folder sizes by image digest, as this process measured them.
final class KnownSizes: Sendable {
    private let known = NIOLockedValueBox<[Digest: Int64]>([:])

    func size(of image: Digest) -> Int64? { known.withLockedValue { $0[image] } }
    func remember(_ size: Int64, for image: Digest) { known.withLockedValue { $0[image] = size } }
}
