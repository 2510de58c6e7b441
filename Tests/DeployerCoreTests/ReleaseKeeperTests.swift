import Foundation
import OCI
import ReleaseSpec
import UnpackedReleases
@testable import DeployerCore
import Runtime
import Store
import Testing
import TestScheduling

/// The rollback window and the collection of releases outside it, on a state folder made by hand: no
/// root, no instance, no network.
@Suite("Releases kept and removed", .mayBlock)
struct ReleaseKeeperTests {
    let paths = DeployPaths(root: NSTemporaryDirectory() + "keeper-\(UUID().uuidString)")
    let name = try! RepositoryName("hello")

    /// A pinned image in the deployer's store and, unless `unpacked` is false, its release folder.
    func hold(_ seed: String, unpacked: Bool = true) throws -> PinnedImage {
        let store = try Store.open(at: paths.root + "/store", create: true)
        let layer = Data("layer \(seed)".utf8)
        let layerDescriptor = Descriptor(mediaType: MediaType.layerGzip, digest: try store.writeBlob(layer), size: Int64(layer.count))
        let config = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"\#(seed)"}"#.utf8)
        let configDescriptor = Descriptor(mediaType: MediaType.imageConfig, digest: try store.writeBlob(config), size: Int64(config.count))
        let manifest = try CanonicalJSON.encode(ImageManifest(config: configDescriptor, layers: [layerDescriptor]))
        let descriptor = Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(manifest), size: Int64(manifest.count))
        try store.pin(name, descriptor)
        if unpacked {
            let folder = paths.root + "/releases/sha256-" + descriptor.digest.hex
            try FileManager.default.createDirectory(atPath: folder + "/rootfs/etc", withIntermediateDirectories: true)
            try Data(String(repeating: seed, count: 1000).utf8).write(to: URL(fileURLWithPath: folder + "/rootfs/etc/data"))
            try Data("{}".utf8).write(to: URL(fileURLWithPath: folder + "/release.json"))
            // An image may leave a folder read-only; the removal must cope when it does not run as root.
            chmod(folder + "/rootfs/etc", 0o555)
        }
        return PinnedImage(name: name, digest: descriptor.digest)
    }

    func spec(_ image: PinnedImage, keep: Int = 3, service: String = "hello") -> ReleaseSpec {
        var spec = ReleaseSpec(service: service, image: image, source: .store(path: "/nowhere"), port: 8080,
                               listen: .init(host: "127.0.0.1", port: 9000))
        spec.keep = keep
        return spec
    }

    func succeeded(_ image: PinnedImage, kind: String = "deploy") -> RolloutRecord {
        var record = RolloutRecord(service: "hello", image: image, strategy: .blueGreen, kind: kind)
        record.enter(.succeeded)
        return record
    }

    func failed(_ image: PinnedImage) -> RolloutRecord {
        var record = RolloutRecord(service: "hello", image: image, strategy: .blueGreen, kind: "deploy")
        record.enter(.failed, note: "unhealthy")
        return record
    }

    func unpacked() -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: paths.root + "/releases")) ?? []).filter { $0.hasPrefix("sha256-") })
    }

    @Test("the window is the serving release and the distinct ones that served before it, failures and repeats skipped")
    func window() throws {
        let images = try (1...5).map { try hold("v\($0)", unpacked: false) }
        let history = [succeeded(images[0]), succeeded(images[1]), failed(images[4]), succeeded(images[2]), succeeded(images[1], kind: "rollback"),
                       succeeded(images[3])]
        #expect(ReleaseKeeper.window(current: spec(images[3]), history: history) == [images[3], images[1], images[2]])
        #expect(ReleaseKeeper.window(current: spec(images[3], keep: 1), history: history) == [images[3]])
        #expect(ReleaseKeeper.window(current: spec(images[3], keep: 10), history: history) == [images[3], images[1], images[2], images[0]])
        // The serving release leads even when its record is not in the history yet (a crash between the two writes).
        #expect(ReleaseKeeper.window(current: spec(images[4], keep: 2), history: history) == [images[4], images[3]])
        // A service that is down keeps nothing.
        #expect(ReleaseKeeper.window(current: nil, history: history).isEmpty)
    }

    @Test("a collection removes the releases outside the window and the blobs only they reach; instances, claims and a dry run keep theirs")
    func collect() async throws {
        let images = try (1...6).map { try hold("v\($0)") }
        let failedOnly = try hold("refused", unpacked: false)
        let history = ReleaseHistory(paths: paths, service: "hello")
        for image in images { try history.append(succeeded(image)) }
        try history.saveCurrent(spec(images[5]))
        // v1 still runs (an instance that was not retired yet); v2 is claimed by a rollout.
        let record = InstanceRecord(id: "hello-1", runner: .runc, pid: 1, startTime: 0, directory: "/nowhere", stopSignal: 15, network: nil)
        ServiceState(paths: paths, service: "hello").saveInstances([
            .init(record: record, image: images[0], spec: spec(images[0]), port: 1, tree: nil, admission: nil, wanted: false, restarts: 0),
        ])
        let keeper = ReleaseKeeper(paths: paths, releases: ReleaseCache(root: paths.root))
        await keeper.claim(images[1].digest)

        let before = unpacked()
        let dry = try await keeper.collect(dryRun: true)
        #expect(dry.removed.map(\.digest) == [images[2].digest, failedOnly.digest].sorted { $0.hex < $1.hex }, "\(dry.removed)")
        #expect(dry.removedBlobs == 6 && dry.freedBytes > 4000, "\(dry)")
        #expect(unpacked() == before)

        let done = try await keeper.collect(dryRun: false)
        #expect(done.removed == dry.removed && done.removedBlobs == dry.removedBlobs && done.freedBlobBytes == dry.freedBlobBytes)
        #expect(unpacked() == Set([0, 1, 3, 4, 5].map { "sha256-" + images[$0].digest.hex }))
        let store = try Store.open(at: paths.root + "/store", create: false)
        #expect(try Set(store.pins(name).map(\.digest)) == Set([0, 1, 3, 4, 5].map { images[$0].digest }))
        #expect(store.fsck().isClean)
        #expect(!FileManager.default.fileExists(atPath: paths.root + "/releases/.removing-\(images[2].digest.hex)-\(getpid())"))

        // Once the claim and the instance are gone, they go too; the window stays.
        await keeper.unclaim(images[1].digest)
        ServiceState(paths: paths, service: "hello").saveInstances([])
        let later = try await keeper.collect(dryRun: false)
        #expect(Set(later.removed.map(\.digest)) == [images[0].digest, images[1].digest])
        #expect(unpacked() == Set([3, 4, 5].map { "sha256-" + images[$0].digest.hex }))
        #expect(try store.pins(name).count == 3 && store.fsck().isClean)
    }

    @Test("a removal cut short leaves a .removing folder that the next start clears; a claim made during a collection waits for it")
    func interruptedRemovalAndClaims() async throws {
        let image = try hold("v1")
        let releases = ReleaseCache(root: paths.root)
        let leftover = paths.root + "/releases/.removing-\(image.digest.hex)-99999"
        try FileManager.default.moveItem(atPath: paths.root + "/releases/sha256-" + image.digest.hex, toPath: leftover)
        releases.removeScratch()
        #expect(!FileManager.default.fileExists(atPath: leftover))
        // Its pin is still there (the crash came before the store's turn): the next collection removes it.
        let keeper = ReleaseKeeper(paths: paths, releases: releases)
        let collection = try await keeper.collect(dryRun: false)
        #expect(collection.removed.map(\.digest) == [image.digest] && collection.removed.first?.folderBytes == nil)
        #expect(releases.heldImages().isEmpty)

        // Many collections and claims at once: every claim is answered, and a release that is there when
        // its claim is granted stays there until the claim ends.
        let contested = try hold("v2")
        let folder = paths.root + "/releases/sha256-" + contested.digest.hex
        await withTaskGroup(of: Void.self) { group in
            for round in 0..<40 {
                group.addTask {
                    if round % 3 == 0 { _ = try? await keeper.collect(dryRun: false) } else {
                        await keeper.claim(contested.digest)
                        let there = FileManager.default.fileExists(atPath: folder)
                        for _ in 0..<5 { await Task.yield() }
                        if there { #expect(FileManager.default.fileExists(atPath: folder)) }
                        await keeper.unclaim(contested.digest)
                    }
                }
            }
        }
        _ = try await keeper.collect(dryRun: false)
        #expect(releases.heldImages().isEmpty)
    }

    @Test("a store that a writer holds is not waited for: the folders go at once, the blobs at the next collection")
    func busyStore() async throws {
        let old = try hold("old"), kept = try hold("kept")
        let history = ReleaseHistory(paths: paths, service: "hello")
        try history.append(succeeded(old))
        try history.append(succeeded(kept))
        try history.saveCurrent(spec(kept, keep: 1))
        // Another process holds the store's write lease, as a build or a long pull does.
        let holder = Process()
        // The lock is held by the process that is terminated below (not by a child of flock(1), which
        // would keep it for the whole minute after flock itself is gone).
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 9>>'\(paths.root)/store/gc.lock' && flock -s 9 && exec sleep 60"]
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        func exclusiveIsFree() throws -> Bool {
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
            probe.arguments = ["-n", "-x", paths.root + "/store/gc.lock", "true"]
            try probe.run()
            probe.waitUntilExit()
            return probe.terminationStatus == 0
        }
        for _ in 0..<100 where try exclusiveIsFree() { usleep(20_000) }
        #expect(try !exclusiveIsFree(), "the holder has the lease")

        let keeper = ReleaseKeeper(paths: paths, releases: ReleaseCache(root: paths.root))
        let first = try await keeper.collect(dryRun: false)
        #expect(first.removed.map(\.digest) == [old.digest] && first.removedBlobs == 0, "\(first)")
        #expect(first.storeNote?.contains("in use by a writer") == true, "\(first)")
        #expect(unpacked() == ["sha256-" + kept.digest.hex])
        // A claim of a release that is not being removed never waits for a collection.
        await keeper.claim(kept.digest)
        await keeper.unclaim(kept.digest)

        holder.terminate()
        holder.waitUntilExit()
        let second = try await keeper.collect(dryRun: false)
        #expect(second.removed.map(\.digest) == [old.digest] && second.removed.first?.folderBytes == nil && second.removedBlobs == 3, "\(second)")
        #expect(try Store.open(at: paths.root + "/store", create: false).fsck().isClean)
    }
}
