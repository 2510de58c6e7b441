import Foundation
import InstanceNetwork
import Layers
import ProcessLimits

/// Runs instances with bubblewrap (Debian package `bubblewrap`), the lighter option: the same overlay
/// root, new user, pid, ipc, uts and cgroup namespaces in a session of its own (outliving the daemon),
/// the instance's private network (joined through `nsenter`) or the host's. The sandbox is entered
/// through `setpriv`, with no new privileges, as the image's user shifted into ``UserMapping/instances``
/// (bwrap maps that one id back to the image's; the release is seen through an idmapped view). Every
/// capability is dropped except those the spec allows, the seccomp profile of ``SeccompProfile`` is
/// loaded before the image's command runs, and the kernel files runc masks are hidden. No cgroup limits.
public struct BwrapRunner: InstanceRunner {
    let bwrap: String
    let setpriv: String
    let nsenter: String
    let shell: String

    public init() throws(RuntimeError) {
        guard let bwrap = findProgram("bwrap") else { throw .runtimeMissing(program: "bwrap", package: "bubblewrap") }
        guard let setpriv = findProgram("setpriv") else { throw .runtimeMissing(program: "setpriv", package: "util-linux") }
        guard let nsenter = findProgram("nsenter") else { throw .runtimeMissing(program: "nsenter", package: "util-linux") }
        guard let shell = findProgram("sh") else { throw .runtimeMissing(program: "sh", package: "dash") }
        self.bwrap = bwrap
        self.setpriv = setpriv
        self.nsenter = nsenter
        self.shell = shell
    }

    public func start(_ request: InstanceRequest) async throws(RuntimeError) -> any Instance {
        // A user namespace of its own wherever the kernel and file system can idmap the release: bwrap runs
        // as the image's user shifted by the mapping's base, and maps that one id back to the image's.
        let (rootfs, users, withoutUsers) = try request.mountRoot()
        do throws(RuntimeError) {
            let process = try ProcessSpec(config: request.config, rootfs: rootfs.path, image: request.image, host: request.host, port: request.port)
            // Without a user namespace the image's root would be the host's (bwrap binds the host's device
            // nodes, which their owner may chmod): refused, where runc would run it.
            guard users != nil || (process.uid != 0 && process.gid != 0) else {
                throw .setupFailed(instance: request.id, reason: "bwrap cannot run an image as root here without a user namespace (\(withoutUsers ?? "")): use `runner: runc`, or a non-root user in the Imagefile")
            }
            let network = try request.makeNetwork()
            try SeccompProfile.writeProgram(to: request.seccompPath)
            var sandbox = [bwrap, "--bind", rootfs.path, "/", "--proc", "/proc", "--dev", "/dev"]
            // Kernel settings read-only, explicitly: bwrap's own attempt skips /proc/sys (its access check
            // on the folder fails), and an instance without a user namespace is the host's root, which
            // may write most settings without any capability.
            for path in RuntimeBundle.readonlyPaths where FileManager.default.fileExists(atPath: path) {
                sandbox += ["--ro-bind", path, path]
            }
            for path in RuntimeBundle.maskedPaths where path.hasPrefix("/proc/") {
                var isFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
                sandbox += isFolder.boolValue ? ["--tmpfs", path, "--remount-ro", path] : ["--ro-bind", "/dev/null", path]
            }
            // A read-only root, with empty tmpfs folders where the image may write; remounted last, since
            // bwrap may need to create the mount points of what comes before.
            let scratch = try request.scratchFolders()
            // bwrap runs as the image's user, who may not create the mount points: they are made here first.
            for folder in scratch {
                do { try ImageRoot(rootfs.path).makeFolders(folder) } catch {
                    throw .setupFailed(instance: request.id, reason: "cannot make the folder of the volume \(folder): \(error)")
                }
            }
            for folder in scratch { sandbox += ["--perms", "1777", "--tmpfs", folder] }
            if !scratch.isEmpty { sandbox += ["--remount-ro", "/"] }
            if users != nil { sandbox += ["--unshare-user", "--uid", String(process.uid), "--gid", String(process.gid)] }
            sandbox += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", request.id,
                        "--new-session", "--cap-drop", "ALL"]
            for capability in request.capabilities { sandbox += ["--cap-add", "CAP_" + capability] }
            sandbox += ["--seccomp", "3", "--chdir", process.workingDirectory, "--clearenv"]
            for variable in process.environment {
                guard let equals = variable.firstIndex(of: "=") else { continue }
                sandbox += ["--setenv", String(variable[..<equals]), String(variable[variable.index(after: equals)...])]
            }
            sandbox += process.arguments
            // bwrap reads the seccomp program from a descriptor: the shell opens it as 3 (as root, before
            // setpriv), since the process that starts children here passes no descriptor beyond 2.
            let hostUID = try users?.hostID(process.uid, of: request.id) ?? process.uid
            let hostGID = try users?.hostID(process.gid, of: request.id) ?? process.gid
            var command = [shell, "-c", "exec 3< \"$1\" || exit 127; shift; exec \"$@\"", "imgdeploy-seccomp", request.seccompPath,
                           setpriv, "--reuid", String(hostUID), "--regid", String(hostGID), "--clear-groups", "--nnp", "--"] + sandbox
            if let network { command = [nsenter, "--net=" + network.path, "--"] + command }
            let child = try ChildProcess(executable: command[0], arguments: Array(command.dropFirst()), logPath: request.logPath)
            if let withoutUsers { request.log("this instance runs without a user namespace, as the image's user on the host: \(withoutUsers)") }
            return BwrapInstance(id: request.id, child: child, rootfs: rootfs, stopSignal: signalNumber(request.config.config?.stopSignal),
                                 startTime: ProcessStart.of(child.pid) ?? 0, network: network)
        } catch {
            rootfs.remove()
            throw error
        }
    }

    public func adopt(_ record: InstanceRecord) -> (any Instance)? {
        guard record.runner == .bwrap, let process = AdoptedProcess(pid: record.pid, startTime: record.startTime) else { return nil }
        return BwrapInstance(id: record.id, child: process, rootfs: InstanceRootfs(directory: record.directory), stopSignal: record.stopSignal,
                             startTime: record.startTime, network: record.network)
    }

    public func removeLeftovers(instancesFolder: String, keeping: Set<String>) async {
        // Sandboxes outlive the daemon (so it can be restarted under load); the next one adopts them or,
        // if they were never recorded, they are found by their mounts and stopped with them.
        InstanceRootfs.unmountAll(below: instancesFolder, keeping: keeping)
    }
}

struct BwrapInstance: Instance {
    let id: String
    let child: any InstanceProcess
    let rootfs: InstanceRootfs
    let stopSignal: Int32
    let startTime: UInt64
    let network: NetworkNamespace?

    var record: InstanceRecord {
        InstanceRecord(id: id, runner: .bwrap, pid: child.pid, startTime: startTime, directory: rootfs.directory, stopSignal: stopSignal,
                       network: network)
    }

    func hostPID() async -> Int32? { child.exitStatus == nil ? child.pid : nil }

    func waitForExit() async -> Int32 { await child.waitForExit() }

    /// The sandbox is the bwrap that was started, the inner bwrap it forked (the pid namespace's init, in
    /// a session of its own) and the image's processes below that. Each is signalled, since the outer
    /// bwrap no longer takes the sandbox down with it (so that it can outlive the daemon); killing the
    /// namespace's init ends everything in it.
    func stop(timeout: Duration) async {
        // Exited already: the inner bwrap ended before the outer one could, and the pid may be another's now.
        guard child.exitStatus == nil else {
            rootfs.remove()
            return
        }
        let sandbox = [child.pid] + descendants(of: child.pid)
        for pid in sandbox.reversed() { kill(pid, stopSignal) }
        let deadline = ContinuousClock.now + timeout
        while sandbox.contains(where: { kill($0, 0) == 0 && ProcessStart.of($0) != nil }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for pid in sandbox where ProcessStart.of(pid) != nil { kill(pid, SIGKILL) }
        _ = await child.waitForExit()
        rootfs.remove()
    }
}
