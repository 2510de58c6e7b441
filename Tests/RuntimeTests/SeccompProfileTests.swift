import Foundation
@testable import Runtime
import Testing
import TestScheduling

/// The compiled profile, loaded by bwrap in front of the host's python, which then tries each call.
@Suite("The seccomp profile, compiled and loaded", .mayBlock, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/bwrap")
                                                       && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")))
struct SeccompProfileTests {
    /// Runs `script` under the profile and returns its output lines.
    func underProfile(_ script: String) throws -> [String] {
        let folder = NSTemporaryDirectory() + "seccomp-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try SeccompProfile.writeProgram(to: folder + "/profile.bpf")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exec 3< \"$1\"; shift; exec \"$@\"", "sh", folder + "/profile.bpf",
                             "/usr/bin/bwrap", "--dev-bind", "/", "/", "--unshare-user", "--seccomp", "3", "/usr/bin/python3", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test("refused: namespaces, mounts, vsock sockets, ptrace, keyctl; allowed: what a server does")
    func refusesWhatItShould() throws {
        let lines = try underProfile("""
            import ctypes, os, socket, errno
            libc = ctypes.CDLL(None, use_errno=True)
            def report(name, result):
                print(name, "allowed" if result == 0 else errno.errorcode.get(ctypes.get_errno(), "?"))
            report("unshare", libc.unshare(0x10000000))
            report("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
            report("ptrace", 0 if libc.ptrace(16, 1, 0, 0) == 0 else -1)
            report("keyctl", 0 if libc.syscall(250, 0, 0, 0, 0) >= 0 else -1)
            try:
                socket.socket(40, socket.SOCK_STREAM).close(); print("vsock allowed")
            except OSError as error:
                print("vsock", errno.errorcode.get(error.errno, "?"))
            with socket.socket() as tcp:
                tcp.bind(("127.0.0.1", 0)); tcp.listen(1); print("tcp allowed")
            pid = os.fork()
            if pid == 0: os._exit(0)
            os.waitpid(pid, 0); print("fork allowed")
            """)
        #expect(lines.contains("unshare EPERM"), "\(lines)")
        #expect(lines.contains("mount EPERM"), "\(lines)")
        #expect(lines.contains("ptrace EPERM"), "\(lines)")
        #expect(lines.contains("keyctl EPERM"), "\(lines)")
        #expect(lines.contains("vsock EAFNOSUPPORT"), "\(lines)")
        #expect(lines.contains("tcp allowed") && lines.contains("fork allowed"), "\(lines)")
    }
}
