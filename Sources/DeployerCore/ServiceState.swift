import Foundation
import OCI
import ReleaseSpec
import UnpackedReleases
import Runtime

/// What the daemon keeps on disk of a running service beyond its history, so that the next daemon can
/// carry on where it stopped: the instances it started (to adopt them), and the rollout in flight (to
/// abort it cleanly).
struct ServiceState: Sendable {
    let paths: DeployPaths
    let service: String

    /// One instance as recorded.
    struct SavedInstance: Sendable, Codable {
        var record: InstanceRecord
        var image: PinnedImage
        var spec: ReleaseSpec
        var port: Int
        /// The release tree's digest checked when it started (nil in records of older daemons).
        var tree: Digest?
        /// What admitted its release under the spec's `verify` policy.
        var admission: Admission?
        var wanted: Bool
        var restarts: Int
    }

    func saveInstances(_ instances: [SavedInstance]) {
        write(instances, to: paths.instanceRecords(service))
    }

    func instances() -> [SavedInstance] {
        read([SavedInstance].self, from: paths.instanceRecords(service)) ?? []
    }

    /// Records the rollout in flight, or forgets it once it has ended.
    func saveRollout(_ record: RolloutRecord) {
        if record.state.isFinal {
            unlink(paths.rolloutInFlight(service))
        } else {
            write(record, to: paths.rolloutInFlight(service))
        }
    }

    /// The rollout that was in flight when the last daemon stopped, if one was.
    func interruptedRollout() -> RolloutRecord? {
        read(RolloutRecord.self, from: paths.rolloutInFlight(service))
    }

    func clear() {
        unlink(paths.instanceRecords(service))
        unlink(paths.rolloutInFlight(service))
    }

    private func write<T: Encodable>(_ value: T, to path: String) {
        try? FileManager.default.createDirectory(atPath: paths.service(service), withIntermediateDirectories: true)
        guard let data = try? DeployJSON.encoder.encode(value) else { return }
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    private func read<T: Decodable>(_ type: T.Type, from path: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? DeployJSON.decoder.decode(type, from: data)
    }
}
