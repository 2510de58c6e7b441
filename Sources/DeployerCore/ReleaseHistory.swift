import Foundation
import ReleaseSpec

/// A service's releases on disk: the spec now serving, and every rollout ever made, one JSON line each.
struct ReleaseHistory: Sendable {
    let paths: DeployPaths
    let service: String

    /// Appends a finished rollout (the line is written whole, then fsynced).
    func append(_ record: RolloutRecord) throws {
        try FileManager.default.createDirectory(atPath: paths.service(service), withIntermediateDirectories: true)
        var line = try DeployJSON.encoder.encode(record)
        line.append(0x0a)
        let fd = open(paths.history(service), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        fsync(fd)
    }

    /// Every recorded rollout, oldest first (a torn last line from a crash is skipped).
    func records() -> [RolloutRecord] {
        guard let data = FileManager.default.contents(atPath: paths.history(service)) else { return [] }
        return data.split(separator: 0x0a).compactMap { try? DeployJSON.decoder.decode(RolloutRecord.self, from: Data($0)) }
    }

    /// Records the spec now serving, atomically.
    func saveCurrent(_ spec: ReleaseSpec) throws {
        try FileManager.default.createDirectory(atPath: paths.service(service), withIntermediateDirectories: true)
        try DeployJSON.encoder.encode(spec).write(to: URL(fileURLWithPath: paths.currentSpec(service)), options: .atomic)
    }

    func current() -> ReleaseSpec? {
        guard let data = FileManager.default.contents(atPath: paths.currentSpec(service)) else { return nil }
        return try? DeployJSON.decoder.decode(ReleaseSpec.self, from: data)
    }

    func clearCurrent() {
        try? FileManager.default.removeItem(atPath: paths.currentSpec(service))
    }
}

/// JSON as the deployer writes and reads it, in its state files and on its control socket: sorted keys,
/// ISO 8601 dates.
public enum DeployJSON {
    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}
