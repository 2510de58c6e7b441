import CIdmappedMount
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
    ///
    /// With `shift`, the lower layer is an idmapped view of the release (`directory/lower`) in which every
    /// owner is moved into the user namespace's range, so the instance's root, host uid `shift.base`, owns
    /// what the image's root owns; what it writes lands in the upper layer under those shifted ids.
    /// Throws ``RuntimeError/idmapUnsupported(reason:)`` when the kernel or file system cannot idmap.
    public static func mount(release: String, at directory: String, shift: UserMapping? = nil) throws(RuntimeError) -> InstanceRootfs {
        let rootfs = InstanceRootfs(directory: directory)
        let manager = FileManager.default
        do {
            for folder in ["upper", "work", "rootfs"] + (shift == nil ? [] : ["lower"]) {
                try manager.createDirectory(atPath: directory + "/" + folder, withIntermediateDirectories: true)
            }
        } catch {
            throw .setupFailed(instance: directory, reason: "cannot create its folders: \(error.localizedDescription)")
        }
        var lower = release
        if let shift {
            let status = imgdeploy_idmapped_bind(release, directory + "/lower", shift.base, shift.size)
            guard status == 0 else {
                try? manager.removeItem(atPath: directory)
                throw .idmapUnsupported(reason: String(cString: strerror(status)))
            }
            lower = directory + "/lower"
            // The merged root is the upper folder itself: owned and moded as the release's root, shifted.
            var info = stat()
            if lstat(release, &info) == 0 {
                guard let uid = try? shift.hostID(info.st_uid, of: directory), let gid = try? shift.hostID(info.st_gid, of: directory) else {
                    rootfs.remove()
                    throw .setupFailed(instance: directory, reason: "the image's root folder is owned by \(info.st_uid):\(info.st_gid), beyond the ids of the instances' user namespace")
                }
                chown(directory + "/upper", uid, gid)
                chmod(directory + "/upper", info.st_mode & 0o7777)
            }
        }
        let options = "lowerdir=\(lower),upperdir=\(directory)/upper,workdir=\(directory)/work"
        guard Glibc.mount("overlay", rootfs.path, "overlay", 0, options) == 0 else {
            let reason = String(cString: strerror(errno))
            rootfs.remove()
            throw .setupFailed(instance: directory, reason: "cannot mount its overlay root (\(reason)); imgdeploy needs root and a kernel with overlayfs")
        }
        for folder in ["proc", "dev", "sys", "tmp"] {
            var info = stat()
            let full = rootfs.path + "/" + folder
            if lstat(full, &info) != 0 {
                mkdir(full, 0o755)
                // Exactly, whatever the umask: runc gives a tmpfs mounted here this folder's mode.
                chmod(full, folder == "tmp" ? 0o1777 : 0o755)
                if let shift { lchown(full, shift.base, shift.base) }
            }
        }
        return rootfs
    }

    /// Unmounts the overlay, unpins the instance's network namespace and removes the instance's folder.
    public func remove() {
        _ = umount2(path, Int32(MNT_DETACH))
        _ = umount2(directory + "/lower", Int32(MNT_DETACH))
        _ = umount2(directory + "/netns", Int32(MNT_DETACH))
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
