import CSeccomp
import Foundation

/// The system calls an instance may not make, in the spirit of the default profiles Docker and
/// containerd ship: what reconfigures the kernel, the clock, mounts, namespaces, keys, modules or other
/// processes' memory is refused with EPERM; everything ordinary servers need is allowed.
///
/// Docker's profile is an allow-list and ours a deny-list of the same dangerous calls: a deny-list
/// keeps working when a runtime or libc starts using a new harmless call. Calls unknown on this
/// machine's architecture are skipped; calls of another architecture (32-bit ones on x86-64) are not
/// allowed at all, since the filter only admits the native one.
public enum SeccompProfile {
    /// Refused outright.
    public static let denied = [
        "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module",
        "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module", "io_uring_enter", "io_uring_register",
        "io_uring_setup", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount",
        "mount_setattr", "move_mount", "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree",
        "perf_event_open", "pidfd_getfd", "pivot_root", "process_madvise", "process_vm_readv", "process_vm_writev",
        "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot", "request_key", "setns", "settimeofday", "stime",
        "swapoff", "swapon", "_sysctl", "sysfs", "syslog", "umount", "umount2", "unshare", "uselib", "userfaultfd",
        "ustat", "vm86", "vm86old",
    ]

    /// `clone` flags that would create a namespace; a `clone` with any of them is refused.
    public static let namespaceFlags: [UInt64] = [
        0x0002_0000, // CLONE_NEWNS
        0x0200_0000, // CLONE_NEWCGROUP
        0x0400_0000, // CLONE_NEWUTS
        0x0800_0000, // CLONE_NEWIPC
        0x1000_0000, // CLONE_NEWUSER
        0x2000_0000, // CLONE_NEWPID
        0x4000_0000, // CLONE_NEWNET
        0x0000_0080, // CLONE_NEWTIME
    ]

    /// Socket families an instance may not open: AF_VSOCK (40), which a network namespace does not
    /// isolate: it reaches the host's and the hypervisor's vsock services.
    public static let deniedSocketFamilies: [UInt64] = [40]

    /// `clone3` passes its flags in memory, which a filter cannot read: it fails with ENOSYS, and the C
    /// library falls back to `clone`, whose flags are checked.
    static let enosys: UInt16 = 38

    /// The denied calls this machine's architecture has.
    static var deniedHere: [String] { denied.filter { seccomp_syscall_resolve_name($0) != imgdeploy_seccomp_unknown() } }

    /// The profile as an OCI runtime-spec `linux.seccomp` object (for runc).
    static func runtimeSpec() -> [String: Any] {
        var rules: [[String: Any]] = [["names": deniedHere, "action": "SCMP_ACT_ERRNO", "errnoRet": Int(EPERM)]]
        for flag in namespaceFlags {
            rules.append(["names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": Int(EPERM),
                          "args": [["index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"]]])
        }
        for family in deniedSocketFamilies {
            rules.append(["names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": Int(EAFNOSUPPORT),
                          "args": [["index": 0, "value": family, "op": "SCMP_CMP_EQ"]]])
        }
        rules.append(["names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": Int(enosys)])
        return ["defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules]
    }

    /// Compiles the profile to a BPF program (libseccomp) and writes it to `path` (for bwrap's `--seccomp`).
    static func writeProgram(to path: String) throws(RuntimeError) {
        guard let filter = seccomp_init(imgdeploy_seccomp_allow()) else {
            throw .setupFailed(instance: path, reason: "libseccomp cannot start a filter")
        }
        defer { seccomp_release(filter) }
        func add(_ name: String, error: UInt16, argument: scmp_arg_cmp? = nil) throws(RuntimeError) {
            let number = seccomp_syscall_resolve_name(name)
            guard number != imgdeploy_seccomp_unknown() else { return }
            let status: Int32
            if var argument {
                status = seccomp_rule_add_array(filter, imgdeploy_seccomp_errno(error), number, 1, &argument)
            } else {
                status = seccomp_rule_add_array(filter, imgdeploy_seccomp_errno(error), number, 0, nil)
            }
            guard status == 0 else {
                throw .setupFailed(instance: path, reason: "libseccomp refused the rule for \(name): \(String(cString: strerror(-status)))")
            }
        }
        for name in denied { try add(name, error: UInt16(EPERM)) }
        for flag in namespaceFlags {
            try add("clone", error: UInt16(EPERM), argument: scmp_arg_cmp(arg: 0, op: SCMP_CMP_MASKED_EQ, datum_a: flag, datum_b: flag))
        }
        for family in deniedSocketFamilies {
            try add("socket", error: UInt16(EAFNOSUPPORT), argument: scmp_arg_cmp(arg: 0, op: SCMP_CMP_EQ, datum_a: family, datum_b: 0))
        }
        try add("clone3", error: enosys)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .setupFailed(instance: path, reason: "cannot write its seccomp program: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let status = seccomp_export_bpf(filter, fd)
        guard status == 0 else { throw .setupFailed(instance: path, reason: "libseccomp cannot export the program: \(String(cString: strerror(-status)))") }
    }
}
