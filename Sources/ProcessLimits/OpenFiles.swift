#if canImport(Glibc)
import Glibc
#endif

/// The process's limit of open files, which every connection of a server counts against.
public enum OpenFiles {
    /// Raises the soft limit towards `wanted` (never past the hard limit, never lowering it), so that
    /// every connection a server admits also gets the descriptors it needs.
    public static func raiseLimit(to wanted: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(wanted) else { return }
        limit.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
