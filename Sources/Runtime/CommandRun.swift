import Foundation
import OCI

/// What a command run inside an image did.
public struct CommandOutcome: Sendable {
    public var status: Int32
    /// Standard output and error, together (at most the last 64 KiB).
    public var output: String
    public var timedOut: Bool
}

extension RuncRunner {
    /// Runs `arguments` once inside the image whose root file system is `rootfs` (left untouched: an
    /// overlay takes the writes), as the image's user, in its working folder, with its environment,
    /// in a network namespace of its own. Killed after `timeout`.
    public func runCommand(_ arguments: [String], id: String, rootfs: String, config: ImageConfig, image: String,
                           directory: String, timeout: Duration) async throws(RuntimeError) -> CommandOutcome {
        let overlay = try InstanceRootfs.mount(release: rootfs, at: directory)
        defer { overlay.remove() }
        var process = try ProcessSpec(config: config, rootfs: overlay.path, image: image, host: "127.0.0.1", port: 8080, requireCommand: false)
        process.arguments = arguments
        let bundle = RuntimeBundle(process: process, rootPath: overlay.path, hostname: id, memoryBytes: nil, pids: 1024, isolateNetwork: true)
        do { try bundle.json().write(to: URL(fileURLWithPath: directory + "/config.json")) } catch {
            throw .setupFailed(instance: id, reason: "cannot write its config.json: \(error.localizedDescription)")
        }
        _ = await runHelper(runc, ["--root", stateRoot, "delete", "--force", id])
        let log = directory + "/output.log"
        let child = try ChildProcess(executable: runc, arguments: ["--root", stateRoot, "run", "--bundle", directory, id], logPath: log)
        let finished = await child.waitForExit(timeout: timeout)
        if !finished {
            _ = await runHelper(runc, ["--root", stateRoot, "kill", "--all", id, "KILL"])
            if !(await child.waitForExit(timeout: .seconds(5))) { child.signal(SIGKILL) }
        }
        let status = await child.waitForExit()
        _ = await runHelper(runc, ["--root", stateRoot, "delete", "--force", id])
        let data = FileManager.default.contents(atPath: log) ?? Data()
        return CommandOutcome(status: status, output: String(decoding: data.suffix(64 << 10), as: UTF8.self), timedOut: !finished)
    }
}
