import Foundation

/// Runs instances with bubblewrap (Debian package `bubblewrap`), the lighter option: the same overlay
/// root and host network, new pid, ipc and uts namespaces (in a session of its own, outliving the daemon), and the image's user for real, since the
/// sandbox is entered through `setpriv` as that user. No cgroup limits.
public struct BwrapRunner: InstanceRunner {
    let bwrap: String
    let setpriv: String

    public init() throws(RuntimeError) {
        guard let bwrap = findProgram("bwrap") else { throw .runtimeMissing(program: "bwrap", package: "bubblewrap") }
        guard let setpriv = findProgram("setpriv") else { throw .runtimeMissing(program: "setpriv", package: "util-linux") }
        self.bwrap = bwrap
        self.setpriv = setpriv
    }

    public func start(_ request: InstanceRequest) async throws(RuntimeError) -> any Instance {
        let rootfs = try InstanceRootfs.mount(release: request.releaseRootfs, at: request.directory)
        do throws(RuntimeError) {
            let process = try ProcessSpec(config: request.config, rootfs: rootfs.path, image: request.image, host: request.host, port: request.port)
            var arguments = ["--reuid", String(process.uid), "--regid", String(process.gid), "--clear-groups", "--", bwrap,
                             "--bind", rootfs.path, "/", "--proc", "/proc", "--dev", "/dev",
                             "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", request.id,
                             "--new-session", "--chdir", process.workingDirectory, "--clearenv"]
            for variable in process.environment {
                guard let equals = variable.firstIndex(of: "=") else { continue }
                arguments += ["--setenv", String(variable[..<equals]), String(variable[variable.index(after: equals)...])]
            }
            arguments += process.arguments
            let child = try ChildProcess(executable: setpriv, arguments: arguments, logPath: request.logPath)
            return BwrapInstance(id: request.id, child: child, rootfs: rootfs, stopSignal: signalNumber(request.config.config?.stopSignal),
                                 startTime: ProcessStart.of(child.pid) ?? 0)
        } catch {
            rootfs.remove()
            throw error
        }
    }

    public func adopt(_ record: InstanceRecord) -> (any Instance)? {
        guard record.runner == .bwrap, let process = AdoptedProcess(pid: record.pid, startTime: record.startTime) else { return nil }
        return BwrapInstance(id: record.id, child: process, rootfs: InstanceRootfs(directory: record.directory), stopSignal: record.stopSignal,
                             startTime: record.startTime)
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

    var record: InstanceRecord {
        InstanceRecord(id: id, runner: .bwrap, pid: child.pid, startTime: startTime, directory: rootfs.directory, stopSignal: stopSignal)
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
