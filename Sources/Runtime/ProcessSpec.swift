import Foundation
import Layers
import OCI

/// What an instance runs, decided by the image's config alone, plus the address the deployer gives it.
public struct ProcessSpec: Sendable, Equatable {
    public var arguments: [String]
    public var environment: [String]
    public var workingDirectory: String
    public var uid: UInt32
    public var gid: UInt32

    /// The process the image's config describes, listening on `host:port` through `$HOST` and `$PORT`
    /// (which replace the image's own values; everything else comes from the image).
    public init(config: ImageConfig, rootfs: String, image: String, host: String, port: Int, requireCommand: Bool = true) throws(RuntimeError) {
        let execution = config.config
        arguments = (execution?.entrypoint ?? []) + (execution?.cmd ?? [])
        guard !arguments.isEmpty || !requireCommand else { throw .nothingToRun(image: image) }
        var environment = (execution?.env ?? []).filter { !$0.hasPrefix("PORT=") && !$0.hasPrefix("HOST=") }
        if !environment.contains(where: { $0.hasPrefix("PATH=") }) {
            environment.insert("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", at: 0)
        }
        environment += ["PORT=\(port)", "HOST=\(host)"]
        self.environment = environment
        let directory = execution?.workingDir ?? ""
        workingDirectory = directory.isEmpty ? "/" : directory
        (uid, gid) = try UserLookup(rootfs: rootfs).resolve(execution?.user ?? "")
    }
}

/// Resolves an image's `user` (`uid`, `uid:gid`, `name`, `name:group`) through its own /etc/passwd and /etc/group,
/// read inside the image's root (``ImageRoot``): no symlink in the image can make it read the host's.
struct UserLookup {
    let rootfs: String

    /// A uid or gid as libc reads one: ASCII digits only (Swift's `UInt32("+0")` would take a sign).
    static func numericID(_ text: some StringProtocol) -> UInt32? {
        guard !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return UInt32(text)
    }

    /// The most bytes read of /etc/passwd or /etc/group: far more than any image's, far less than a hostile one's.
    static let fileLimit = 4 << 20

    func resolve(_ user: String) throws(RuntimeError) -> (UInt32, UInt32) {
        if user.isEmpty { return (0, 0) }
        let parts = user.split(separator: ":", maxSplits: 1).map(String.init)
        if parts.count == 2, let uid = UserLookup.numericID(parts[0]), let gid = UserLookup.numericID(parts[1]) { return (uid, gid) }
        let (uid, primaryGroup) = try resolveUser(parts[0], whole: user)
        guard parts.count == 2 else { return (uid, primaryGroup ?? 0) }
        if let gid = UserLookup.numericID(parts[1]) { return (uid, gid) }
        guard let gid = try entries("/etc/group", for: user).first(where: { $0.first == parts[1] }).flatMap({ $0.count > 2 ? UserLookup.numericID($0[2]) : nil }) else {
            throw .unknownUser(user: user, reason: "the group '\(parts[1])' is not in the image's /etc/group")
        }
        return (uid, gid)
    }

    private func resolveUser(_ name: String, whole: String) throws(RuntimeError) -> (UInt32, UInt32?) {
        let passwd = try entries("/etc/passwd", for: whole)
        if let uid = UserLookup.numericID(name) {
            let gid = passwd.first(where: { $0.count > 3 && $0[2] == name }).flatMap { UserLookup.numericID($0[3]) }
            return (uid, gid)
        }
        guard let entry = passwd.first(where: { $0.first == name }), entry.count > 3, let uid = UserLookup.numericID(entry[2]), let gid = UserLookup.numericID(entry[3]) else {
            throw .unknownUser(user: whole, reason: "the user '\(name)' is not in the image's /etc/passwd")
        }
        return (uid, gid)
    }

    /// The colon-separated fields of each line of a file in the image, none when it has no such regular file.
    private func entries(_ path: String, for user: String) throws(RuntimeError) -> [[String]] {
        let bytes: [UInt8]
        do { bytes = try ImageRoot(rootfs).read(path, limit: UserLookup.fileLimit) } catch {
            switch error {
            case .notFound, .notRegularFile: return []
            default: throw .unknownUser(user: user, reason: "the image's \(path) cannot be read: \(error)")
            }
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map {
            $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }
    }
}
