import Attestations
import Distribution
import Foundation
import Layers
import OCI
import ReleaseSpec
import Signing
import Store
import NIOConcurrencyHelpers

/// An image unpacked for running: a read-only folder named by its digest.
public struct Release: Sendable {
    public var image: PinnedImage
    /// The manifest the rootfs came from (the platform's own when the image is an index).
    public var manifestDigest: Digest
    public var rootfs: String
    public var config: ImageConfig
    /// The ``ReleaseTree`` digest of `rootfs` as it was unpacked (nil for a release unpacked before trees
    /// were recorded, until its first ``ReleaseCache/verifyTree(_:)``).
    public var tree: Digest?
    /// What the deploy policy checked before this release was admitted (nil without a `verify` policy).
    public var admission: Admission? = nil
    /// The release's folder: `rootfs/`, `release.json` and `tree.txt`.
    public var folder: String { (rootfs as NSString).deletingLastPathComponent }
}

/// The artifacts that admitted a release under a `verify` policy: their digests in the deployer's store.
public struct Admission: Sendable, Codable, Equatable {
    /// The signatures that verified with the policy's key.
    public var signatures: [Digest] = []
    /// The passing test record.
    public var testRecord: Digest?
    /// The SBOM that describes the image.
    public var sbom: Digest?
}

/// The deployer's releases: images fetched by digest into its own store (every blob checked against its
/// digest on the way in) and unpacked once each into `releases/sha256-<hex>/rootfs`.
public struct ReleaseCache: Sendable {
    /// The deployer's state folder.
    public let root: String
    public var storePath: String { root + "/store" }
    public var releasesPath: String { root + "/releases" }
    /// The tree each release must have, as this process unpacked or derived it: never read back from the
    /// release folder, which anyone who can change the files can change too.
    private let trees = KnownTrees()
    /// Release folder sizes, measured once each.
    let sizes = KnownSizes()

    public init(root: String) {
        self.root = root
    }

    /// Removes what an unpack, a verify or a removal cut short by a crash left in the releases folder.
    public func removeScratch() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: releasesPath)) ?? []
        for name in names where name.hasPrefix(".partial-") || name.hasPrefix(".verify-") || name.hasPrefix(".removing-") {
            Self.removeTree(releasesPath + "/" + name)
        }
    }

    /// Fetches `image` from `source` unless it is already here, verifies it, and unpacks it under `policy`.
    /// With `verify`, the image's signatures are fetched too, and one must verify with its key before
    /// anything is unpacked.
    public func prepare(_ image: PinnedImage, from source: ReleaseSpec.Source, policy: UnpackPolicy,
                        verify: ReleaseSpec.VerifyPolicy? = nil,
                        options: RegistryOptions = RegistryOptions()) async throws(ReleaseError) -> Release {
        let folder = releasesPath + "/sha256-" + image.digest.hex
        if var release = try? load(image, folder: folder) {
            // Unpacked here already: no network, unless the artifacts the policy needs are not here yet.
            guard let verify else { return release }
            if let store = try? openStore(), let admission = try? check(image, against: verify, in: store) {
                release.admission = admission
                return release
            }
        }
        let store = try openStore()
        try await fetch(image, from: source, into: store, options: options)
        let admission = try verify.map { policy throws(ReleaseError) in try check(image, against: policy, in: store) }
        if var release = try? load(image, folder: folder) {
            release.admission = admission
            return release
        }
        let (manifest, manifestDigest, config) = try verifiedImage(image, store: store)
        try unpack(image, manifest: manifest, manifestDigest: manifestDigest, config: config, store: store, folder: folder, policy: policy)
        do {
            var release = try load(image, folder: folder)
            release.admission = admission
            return release
        } catch {
            throw .stateUnwritable(path: folder, reason: "its release.json cannot be read back: \(error)")
        }
    }

    private func check(_ image: PinnedImage, against policy: ReleaseSpec.VerifyPolicy, in store: Store) throws(ReleaseError) -> Admission {
        var admission = Admission()
        if let pem = policy.publicKeyPEM {
            let path = policy.keyPath ?? "verify.key"
            let key: VerifyingKey
            do { key = try VerifyingKey(pem: pem, path: path) } catch {
                throw .policyRefused(image: "\(image)", reason: error.description)
            }
            do { admission.signatures = try SignatureArtifact.verify(image.digest, repository: image.name, in: store, with: key) } catch {
                throw .policyRefused(image: "\(image)", reason: "\(error.description) (verify.key is \(path))")
            }
        }
        // The image that runs here: a multi-platform image's for this machine's platform.
        let runs = policy.requireTests || policy.requireSBOM ? (try? runnableManifest(image, store: store).1) ?? image.digest : image.digest
        if policy.requireTests {
            // Of a multi-platform image, a record whose command tests ran on another platform is no pass here.
            do { admission.testRecord = try TestResultsArtifact.check(image.digest, repository: image.name, in: store, ranOn: runs != image.digest ? Platform.host : nil) } catch {
                throw .policyRefused(image: "\(image)", reason: "\(error.description) (verify.requireTests is true)")
            }
        }
        if policy.requireSBOM {
            // A multi-platform image has an SBOM per platform's image: that of the one that runs here, else
            // one of the index itself (as some tools attach it).
            do { admission.sbom = try SBOMArtifact.check(runs, repository: image.name, in: store) } catch {
                if runs != image.digest, let sbom = try? SBOMArtifact.check(image.digest, repository: image.name, in: store) {
                    admission.sbom = sbom
                } else {
                    throw .policyRefused(image: "\(image)", reason: "\(error.description) (verify.requireSBOM is true)")
                }
            }
        }
        return admission
    }

    /// The release already unpacked for `image`, if any.
    public func existing(_ image: PinnedImage) -> Release? {
        try? load(image, folder: releasesPath + "/sha256-" + image.digest.hex)
    }

    // MARK: Steps

    private func openStore() throws(ReleaseError) -> Store {
        do { return try Store.open(at: storePath, create: true) } catch {
            throw .stateUnwritable(path: storePath, reason: "\(error)")
        }
    }

    private func fetch(_ image: PinnedImage, from source: ReleaseSpec.Source, into store: Store, options: RegistryOptions) async throws(ReleaseError) {
        do {
            let destination = EndpointOpener(storePath: storePath, options: options)
            let result = try await source.withImage(image, options: options) { origin in
                try await destination.withDestination(.store(image.name, nil)) { destination in
                    try await Copier(source: origin, destination: destination).copy(.digest(image.digest), tag: nil)
                }
            }
            guard result.descriptor.digest == image.digest else {
                throw DistributionError.digestMismatch(what: "the manifest", expected: image.digest, actual: result.descriptor.digest)
            }
        } catch {
            throw .fetchFailed(image: "\(image)", source: "\(source)", reason: "\(error)")
        }
    }

    /// The image manifest to run: the digest's own, or this machine's platform's from an index.
    private func runnableManifest(_ image: PinnedImage, store: Store) throws(ReleaseError) -> (ImageManifest, Digest) {
        let parsed: AnyManifest
        do { parsed = try store.manifest(image.digest).manifest } catch {
            throw .notAnImage(image: "\(image)", reason: "\(error)")
        }
        switch parsed {
        case .image(let manifest):
            guard manifest.config.mediaType == MediaType.imageConfig || manifest.config.mediaType == MediaType.dockerConfig else {
                throw .notAnImage(image: "\(image)", reason: "it is an artifact of type \(manifest.config.mediaType), not an image")
            }
            return (manifest, image.digest)
        case .index(let index):
            guard let child = index.image(for: Platform.host) else {
                throw .notAnImage(image: "\(image)", reason: "its index has no \(Platform.host) image for this machine")
            }
            do {
                guard case .image(let manifest) = try store.manifest(child.digest).manifest else {
                    throw ReleaseError.notAnImage(image: "\(image)", reason: "its \(Platform.host) entry is not an image manifest")
                }
                return (manifest, child.digest)
            } catch let error as ReleaseError { throw error } catch {
                throw .notAnImage(image: "\(image)", reason: "\(error)")
            }
        }
    }

    private func unpack(_ image: PinnedImage, manifest: ImageManifest, manifestDigest: Digest, config: ImageConfig, store: Store, folder: String,
                        policy: UnpackPolicy) throws(ReleaseError) {
        let manager = FileManager.default
        let staging = releasesPath + "/.partial-\(image.digest.hex)-\(getpid())"
        try? manager.removeItem(atPath: staging)
        do { try manager.createDirectory(atPath: staging + "/rootfs", withIntermediateDirectories: true) } catch {
            throw .stateUnwritable(path: staging, reason: error.localizedDescription)
        }
        let layers = manifest.layers.map { (path: store.blobPath($0.digest), label: "layer \($0.digest)") }
        do {
            _ = try RootfsUnpacker(policy: policy).unpack(layers: layers, into: staging + "/rootfs")
            let tree = try ReleaseTree.scan(staging + "/rootfs")
            trees.remember(tree, for: image.digest)
            try Data(tree.listing.utf8).write(to: URL(fileURLWithPath: staging + "/tree.txt"))
            let record = ReleaseRecord(image: image, manifest: manifestDigest, config: config, tree: tree.digest)
            try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: staging + "/release.json"))
            guard rename(staging, folder) == 0 || manager.fileExists(atPath: folder + "/release.json") else {
                throw ReleaseError.stateUnwritable(path: folder, reason: String(cString: strerror(errno)))
            }
        } catch let error as LayerError {
            try? manager.removeItem(atPath: staging)
            throw .unpackFailed(image: "\(image)", reason: error.description)
        } catch let error as ReleaseError {
            try? manager.removeItem(atPath: staging)
            throw error
        } catch {
            try? manager.removeItem(atPath: staging)
            throw .stateUnwritable(path: staging, reason: "\(error)")
        }
    }

    /// The release unpacked in `folder` (complete once its release.json exists). What runs is not taken
    /// from that record: the manifest and config are read from the deployer's store, each hashed against
    /// its digest, the first against the pinned one.
    private func load(_ image: PinnedImage, folder: String) throws -> Release {
        let record = try JSONDecoder().decode(ReleaseRecord.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/release.json")))
        let (_, manifestDigest, config) = try verifiedImage(image, store: try openStore())
        return Release(image: image, manifestDigest: manifestDigest, rootfs: folder + "/rootfs", config: config, tree: record.tree)
    }

    /// The image's runnable manifest, its digest and its config, every blob read hashed against its digest.
    private func verifiedImage(_ image: PinnedImage, store: Store) throws(ReleaseError) -> (ImageManifest, Digest, ImageConfig) {
        func hashed(_ digest: Digest, _ what: String) throws(ReleaseError) -> Data {
            let data: Data
            do { data = try store.readBlob(digest) } catch {
                throw .notAnImage(image: "\(image)", reason: "\(what) \(digest) cannot be read from the deployer's store: \(error)")
            }
            let actual = Digest.of(data)
            guard actual == digest else { throw .notAnImage(image: "\(image)", reason: "\(what) \(digest) in the deployer's store hashes to \(actual)") }
            return data
        }
        _ = try hashed(image.digest, "the manifest")
        let (manifest, manifestDigest) = try runnableManifest(image, store: store)
        if manifestDigest != image.digest { _ = try hashed(manifestDigest, "the manifest") }
        let config: ImageConfig
        do { config = try JSONDecoder().decode(ImageConfig.self, from: try hashed(manifest.config.digest, "the config")) } catch let error as ReleaseError {
            throw error
        } catch {
            throw .notAnImage(image: "\(image)", reason: "its config blob is not an OCI image config: \(error)")
        }
        guard config.os == "linux" else { throw .notAnImage(image: "\(image)", reason: "it is built for \(config.os), not linux") }
        return (manifest, manifestDigest, config)
    }

    /// Scans the release's root again and compares it with the tree it must have; throws
    /// ``ReleaseError/treeChanged(image:folder:changes:)`` naming what differs. Returns the tree's digest.
    ///
    /// The tree it must have is the one this process scanned when it unpacked the release, or else (a
    /// release unpacked by an earlier daemon) one derived again from the verified blobs, once per process
    /// (see ``verifyDeeply(_:policy:)``): nothing recorded in the release folder is trusted.
    @discardableResult
    public func verifyTree(_ release: Release, policy: UnpackPolicy) throws(ReleaseError) -> Digest {
        let expected: ReleaseTree
        if let known = trees.tree(for: release.image.digest) { expected = known } else {
            expected = try derivedTree(release, policy: policy)
            trees.remember(expected, for: release.image.digest)
        }
        let now = try scan(release)
        guard now.digest == expected.digest else {
            throw .treeChanged(image: "\(release.image)", folder: release.folder, changes: now.changes(from: expected))
        }
        return expected.digest
    }

    /// Checks the release against what its pinned digest alone implies, trusting nothing in its folder:
    /// the manifest and every layer in the deployer's store are hashed again, the layers are unpacked
    /// afresh into a scratch folder, and that tree is compared with the folder's and with the digest its
    /// `release.json` records (so a file changed together with `tree.txt` and `release.json` is found).
    /// Reads and writes the whole image once. Returns the tree's digest.
    @discardableResult
    public func verifyDeeply(_ release: Release, policy: UnpackPolicy) throws(ReleaseError) -> Digest {
        let expected = try derivedTree(release, policy: policy)
        trees.remember(expected, for: release.image.digest)
        let now = try scan(release)
        guard now.digest == expected.digest else {
            throw .treeChanged(image: "\(release.image)", folder: release.folder, changes: now.changes(from: expected))
        }
        let recorded = (try? JSONDecoder().decode(ReleaseRecord.self, from: Data(contentsOf: URL(fileURLWithPath: release.folder + "/release.json"))))?.tree
        guard recorded == expected.digest else {
            throw .treeChanged(image: "\(release.image)", folder: release.folder, changes: [
                "release.json records the tree \(recorded.map { "\($0)" } ?? "(none)"), but the image's layers unpack to \(expected.digest): the record was changed",
            ])
        }
        return expected.digest
    }

    private func scan(_ release: Release) throws(ReleaseError) -> ReleaseTree {
        do { return try ReleaseTree.scan(release.rootfs) } catch {
            throw .treeChanged(image: "\(release.image)", folder: release.folder, changes: [error.description])
        }
    }

    /// The tree `release`'s image unpacks to, made again from the blobs in the deployer's store, each
    /// checked against its digest (the manifest against the pinned one), in a scratch folder removed after.
    private func derivedTree(_ release: Release, policy: UnpackPolicy) throws(ReleaseError) -> ReleaseTree {
        let image = "\(release.image)"
        func refuse(_ problem: String) -> ReleaseError { .treeChanged(image: image, folder: release.folder, changes: [problem]) }
        let store = try openStore()
        func check(_ digest: Digest, _ what: String) throws(ReleaseError) {
            let actual: Digest
            do { actual = try Digest.ofFile(atPath: store.blobPath(digest)).digest } catch {
                throw refuse("\(what) \(digest) cannot be read from the deployer's store (\(error)); remove the release folder to fetch the image again")
            }
            guard actual == digest else { throw refuse("\(what) \(digest) in the deployer's store hashes to \(actual)") }
        }
        let manifest: ImageManifest
        do { (manifest, _, _) = try verifiedImage(release.image, store: store) } catch { throw refuse(error.description) }
        for layer in manifest.layers { try check(layer.digest, "the layer") }
        let scratch = releasesPath + "/.verify-\(release.image.digest.hex)-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do {
            try FileManager.default.createDirectory(atPath: scratch + "/rootfs", withIntermediateDirectories: true)
            let layers = manifest.layers.map { (path: store.blobPath($0.digest), label: "layer \($0.digest)") }
            _ = try RootfsUnpacker(policy: policy).unpack(layers: layers, into: scratch + "/rootfs")
            return try ReleaseTree.scan(scratch + "/rootfs")
        } catch {
            throw refuse("its layers cannot be unpacked again to compare: \(error)")
        }
    }
}

/// `release.json`: what a release folder holds, written last before the folder is renamed into place.
struct ReleaseRecord: Codable {
    var image: PinnedImage
    var manifest: Digest
    var config: ImageConfig
    /// The ``ReleaseTree`` digest of `rootfs/` (whose listing is `tree.txt`); nil in records written before it existed.
    var tree: Digest?
}

/// Release trees by image digest, as this process came to know them.
private final class KnownTrees: Sendable {
    private let known = NIOLockedValueBox<[Digest: ReleaseTree]>([:])

    func tree(for image: Digest) -> ReleaseTree? { known.withLockedValue { $0[image] } }
    func remember(_ tree: ReleaseTree, for image: Digest) { known.withLockedValue { $0[image] = tree } }
}
