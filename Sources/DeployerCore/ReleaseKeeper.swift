import Foundation
import OCI
import ReleaseSpec
import UnpackedReleases

/// Decides which releases the deployer keeps, and removes the others.
///
/// Kept are, for every service that is up, its rollback window (the serving release and the `keep - 1`
/// distinct ones that served before it, newest first, from its history); every release an instance of
/// any service runs from (its `instances.json`); and every release a rollout or a verify has claimed.
/// Everything else the deployer holds (release folders, and images in its store) is removed.
///
/// A rollout claims its release before it looks for it. Choosing what to remove happens in one step on
/// this actor, and a claim for a release being removed waits until the removal is done, so a collection
/// never removes a release that a rollout is about to use: either the claim came first and the release
/// is kept, or the removal came first and the rollout fetches it again. Claims of other releases never wait.
public actor ReleaseKeeper {
    let paths: DeployPaths
    let releases: ReleaseCache
    private var claims: [Digest: Int] = [:]
    /// The images a collection is removing now.
    private var removing: Set<Digest> = []
    private var collecting = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    public init(paths: DeployPaths, releases: ReleaseCache) {
        self.paths = paths
        self.releases = releases
    }

    /// Keeps `image` until ``unclaim(_:)``; waits while a collection removes it.
    func claim(_ image: Digest) async {
        while removing.contains(image) { await withCheckedContinuation { waiting.append($0) } }
        claims[image, default: 0] += 1
    }

    func unclaim(_ image: Digest) {
        guard let count = claims[image] else { return }
        claims[image] = count > 1 ? count - 1 : nil
    }

    /// Removes (or with `dryRun`, lists) every release nothing keeps, with the store's blobs that only
    /// they reach. One collection runs at a time.
    public func collect(dryRun: Bool) async throws(ReleaseError) -> ReleaseCollection {
        while collecting { await withCheckedContinuation { waiting.append($0) } }
        collecting = true
        let doomed = releases.heldImages().subtracting(claims.keys).subtracting(Self.keptOnDisk(paths))
        if !dryRun { removing = doomed }
        defer {
            removing = []
            collecting = false
            let waiting = self.waiting
            self.waiting = []
            for continuation in waiting { continuation.resume() }
        }
        let releases = self.releases
        // Reading and removing whole trees: on a thread of its own, not the cooperative pool's.
        let result: Result<ReleaseCollection, ReleaseError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do throws(ReleaseError) { continuation.resume(returning: .success(try releases.collect(doomed, dryRun: dryRun))) } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// What the state on disk keeps: every service's rollback window and its instances' releases.
    static func keptOnDisk(_ paths: DeployPaths) -> Set<Digest> {
        var kept = Set<Digest>()
        for service in (try? FileManager.default.contentsOfDirectory(atPath: paths.services)) ?? [] {
            let history = ReleaseHistory(paths: paths, service: service)
            kept.formUnion(window(current: history.current(), history: history.records()).map(\.digest))
            kept.formUnion(ServiceState(paths: paths, service: service).instances().map(\.image.digest))
        }
        return kept
    }

    /// A service's rollback window, newest first: the serving release, then the distinct releases that
    /// served before it, `keep` in all. Empty for a service that is down (nothing serves it, so nothing
    /// is rolled back to).
    static func window(current: ReleaseSpec?, history: [RolloutRecord]) -> [PinnedImage] {
        guard let current else { return [] }
        var window = [current.image]
        for record in history.reversed() where record.state == .succeeded && window.count < current.keep {
            if !window.contains(where: { $0.digest == record.image.digest }) { window.append(record.image) }
        }
        return window
    }
}
