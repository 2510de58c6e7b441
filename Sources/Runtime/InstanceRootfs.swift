import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An instance's own writable root: an overlay whose lower layer is the read-only release folder, so
/// whatever the instance writes lands in its own upper folder and the release stays as unpacked.
public struct InstanceRootfs: Sendable {
    /// The instance's folder: `upper/`, `work/` and the merged `rootfs/`.
    public let directory: String

    /// The overlay already mounted in `directory` (by a daemon that has stopped).
    public init(directory: String) {
        self.directory = directory
    }
    public var path: String { directory + "/rootfs" }

    /// Mounts the overlay of `release` (a rootfs folder) at `directory/rootfs`, creating the folders the
    /// runtimes mount over (`proc`, `dev`, `sys`, `tmp`) in the upper layer.
    public static func mount(release: String, at directory: String) throws(RuntimeError) -> InstanceRootfs {
        let rootfs = InstanceRootfs(directory: directory)
        let manager = FileManager.default
        do {
            for folder in ["upper", "work", "rootfs"] {
                try manager.createDirectory(atPath: directory + "/" + folder, withIntermediateDirectories: true)
            }
        } catch {
            throw .setupFailed(instance: directory, reason: "cannot create its folders: \(error.localizedDescription)")
        }
        let options = "lowerdir=\(release),upperdir=\(directory)/upper,workdir=\(directory)/work"
        guard Glibc.mount("overlay", rootfs.path, "overlay", 0, options) == 0 else {
            let reason = String(cString: strerror(errno))
            throw .setupFailed(instance: directory, reason: "cannot mount its overlay root (\(reason)); imgdeploy needs root and a kernel with overlayfs")
        }
        for folder in ["proc", "dev", "sys", "tmp"] {
            var info = stat()
            let full = rootfs.path + "/" + folder
            if lstat(full, &info) != 0 { mkdir(full, folder == "tmp" ? 0o1777 : 0o755) }
        }
        return rootfs
    }

    /// Unmounts the overlay and removes the instance's folder.
    public func remove() {
        _ = umount2(path, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Unmounts every overlay left mounted below `folder` (by a deployer that was killed), except those
    /// of the instance folders named in `keeping`.
    public static func unmountAll(below folder: String, keeping: Set<String> = []) {
        guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return }
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 2 else { continue }
            let point = fields[1].replacingOccurrences(of: "\\040", with: " ")
            guard point.hasPrefix(folder + "/") else { continue }
            let instance = point.dropFirst(folder.count + 1).split(separator: "/").first.map(String.init) ?? ""
            if !keeping.contains(instance) { _ = umount2(point, Int32(MNT_DETACH)) }
        }
    }
}
