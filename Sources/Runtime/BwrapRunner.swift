import Foundation

/// Runs instances with bubblewrap (Debian package `bubblewrap`), the lighter option: the same overlay
/// root and host network, new pid, ipc and uts namespaces, and the image's user for real, since the
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
                             "--die-with-parent", "--new-session", "--chdir", process.workingDirectory, "--clearenv"]
            for variable in process.environment {
                guard let equals = variable.firstIndex(of: "=") else { continue }
                arguments += ["--setenv", String(variable[..<equals]), String(variable[variable.index(after: equals)...])]
            }
            arguments += process.arguments
            let child = try ChildProcess(executable: setpriv, arguments: arguments, logPath: request.logPath)
            return BwrapInstance(id: request.id, child: child, rootfs: rootfs, stopSignal: signalNumber(request.config.config?.stopSignal))
        } catch {
            rootfs.remove()
            throw error
        }
    }

    public func removeLeftovers(instancesFolder: String) async {
        // bwrap's sandboxes die with the deployer (--die-with-parent); only their mounts can remain.
        InstanceRootfs.unmountAll(below: instancesFolder)
    }
}

struct BwrapInstance: Instance {
    let id: String
    let child: ChildProcess
    let rootfs: InstanceRootfs
    let stopSignal: Int32

    func hostPID() async -> Int32? { child.exitStatus == nil ? child.pid : nil }

    func waitForExit() async -> Int32 { await child.waitForExit() }

    func stop(timeout: Duration) async {
        child.signal(stopSignal)
        if !(await child.waitForExit(timeout: timeout)) { child.signal(SIGKILL) }
        _ = await child.waitForExit()
        rootfs.remove()
    }
}
