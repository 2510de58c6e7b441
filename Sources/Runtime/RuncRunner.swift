import Foundation
import InstanceNetwork
import OCI
import ProcessLimits

/// Runs instances with `runc` (Debian package `runc`): an OCI runtime bundle made from the image config;
/// a user namespace of its own (``UserMapping/instances``, wherever the kernel can idmap the release) and
/// new pid, ipc, uts, mount and cgroup namespaces; the instance's private network (or the host's, when
/// the spec asks); an overlay root; no capabilities beyond those the spec allows; the seccomp profile of
/// ``SeccompProfile``; runc's masked paths; and cgroup limits on memory and process count.
public struct RuncRunner: InstanceRunner {
    /// runc's own state folder (`runc --root`), so this deployer's containers are kept apart from others.
    public let stateRoot: String
    let runc: String

    public init(stateRoot: String) throws(RuntimeError) {
        guard let runc = findProgram("runc") else { throw .runtimeMissing(program: "runc", package: "runc") }
        self.runc = runc
        self.stateRoot = stateRoot
    }

    public func start(_ request: InstanceRequest) async throws(RuntimeError) -> any Instance {
        // A user namespace of its own wherever the kernel and file system can idmap the release.
        let (rootfs, users, withoutUsers) = try request.mountRoot()
        do throws(RuntimeError) {
            let process = try ProcessSpec(config: request.config, rootfs: rootfs.path, image: request.image, host: request.host, port: request.port)
            if let users {
                _ = try users.hostID(process.uid, of: request.id)
                _ = try users.hostID(process.gid, of: request.id)
            }
            let network = try request.makeNetwork()
            let bundle = RuntimeBundle(process: process, rootPath: rootfs.path, hostname: request.id, memoryBytes: request.memoryBytes, pids: request.pids,
                                       networkPath: network?.path, capabilities: request.capabilities, users: users,
                                       scratch: try request.scratchFolders(),
                                       cgroupsPath: "imgdeploy-\(Digest.of(Data(stateRoot.utf8)).hex.prefix(12))-\(request.id)")
            do { try bundle.json().write(to: URL(fileURLWithPath: request.directory + "/config.json")) } catch {
                throw RuntimeError.setupFailed(instance: request.id, reason: "cannot write its config.json: \(error.localizedDescription)")
            }
            // A container of the same name left by a crash would make `run` fail.
            _ = await runHelper(runc, ["--root", stateRoot, "delete", "--force", request.id])
            let child = try ChildProcess(executable: runc, arguments: ["--root", stateRoot, "run", "--bundle", request.directory, request.id],
                                         logPath: request.logPath)
            if let withoutUsers { request.log("this instance runs without a user namespace, its root is the host's (with no capabilities): \(withoutUsers)") }
            return RuncInstance(id: request.id, runc: runc, stateRoot: stateRoot, child: child, rootfs: rootfs,
                                stopSignal: signalNumber(request.config.config?.stopSignal),
                                startTime: ProcessStart.of(child.pid) ?? 0, network: network)
        } catch {
            rootfs.remove()
            throw error
        }
    }

    public func adopt(_ record: InstanceRecord) -> (any Instance)? {
        guard record.runner == .runc, let process = AdoptedProcess(pid: record.pid, startTime: record.startTime) else { return nil }
        return RuncInstance(id: record.id, runc: runc, stateRoot: stateRoot, child: process, rootfs: InstanceRootfs(directory: record.directory),
                            stopSignal: record.stopSignal, startTime: record.startTime, network: record.network)
    }

    public func removeLeftovers(instancesFolder: String, keeping: Set<String>) async {
        let listing = await runHelper(runc, ["--root", stateRoot, "list", "--quiet"])
        if listing.status == 0 {
            for id in listing.output.split(separator: "\n") where !id.isEmpty && !keeping.contains(String(id)) {
                _ = await runHelper(runc, ["--root", stateRoot, "kill", String(id), "KILL"])
                _ = await runHelper(runc, ["--root", stateRoot, "delete", "--force", String(id)])
            }
        }
        InstanceRootfs.unmountAll(below: instancesFolder, keeping: keeping)
    }
}

/// One container run by `runc run` in the foreground: the runc process lives exactly as long as the container.
struct RuncInstance: Instance {
    let id: String
    let runc: String
    let stateRoot: String
    let child: any InstanceProcess
    let rootfs: InstanceRootfs
    let stopSignal: Int32
    let startTime: UInt64
    let network: NetworkNamespace?

    var record: InstanceRecord {
        InstanceRecord(id: id, runner: .runc, pid: child.pid, startTime: startTime, directory: rootfs.directory, stopSignal: stopSignal,
                       network: network)
    }

    func hostPID() async -> Int32? {
        for _ in 0..<50 {
            if child.exitStatus != nil { return nil }
            let state = await runHelper(runc, ["--root", stateRoot, "state", id])
            if state.status == 0, let data = state.output.data(using: .utf8),
               let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let pid = object["pid"] as? Int, pid > 0 {
                return Int32(pid)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    func waitForExit() async -> Int32 { await child.waitForExit() }

    func stop(timeout: Duration) async {
        if child.exitStatus == nil {
            _ = await runHelper(runc, ["--root", stateRoot, "kill", id, String(stopSignal)])
            if !(await child.waitForExit(timeout: timeout)) {
                _ = await runHelper(runc, ["--root", stateRoot, "kill", "--all", id, "KILL"])
                if !(await child.waitForExit(timeout: .seconds(5))) { child.signal(SIGKILL) }
            }
        }
        _ = await child.waitForExit()
        _ = await runHelper(runc, ["--root", stateRoot, "delete", "--force", id])
        rootfs.remove()
    }
}
