#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` on a thread of its own, or, when no thread can be made (a process or cgroup task limit:
/// `ulimit -u`, `--pids-limit`, systemd's `TasksMax`), on the calling thread before returning.
///
/// Foundation's `Thread.start()` says nothing when the thread cannot be made, and a caller that then
/// waits for the work waits for ever; this never leaves work undone. Returns whether a thread ran it.
@discardableResult
public func runDetached(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Work: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let work = Unmanaged.passRetained(Work(body))
    var thread = pthread_t()
    let started = pthread_create(&thread, nil, { argument in
        Unmanaged<Work>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
    }, work.toOpaque())
    guard started == 0 else {
        work.takeRetainedValue().body()
        return false
    }
    pthread_detach(thread)
    return true
}
