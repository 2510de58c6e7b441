import Foundation

extension Store {
    /// A promise not to collect garbage while it is held: every process that writes blobs it is about to
    /// reference (a build, a tag, a pull) holds a shared lease from its first blob to its tag; `gc` takes
    /// the lease exclusively, so it never removes a blob that a running writer is about to reference.
    ///
    /// Leases are `flock`s: they vanish with their process, so a killed writer blocks nothing. Within one
    /// process, nested leases on a store share one lock, so a writer never waits behind a `gc` that waits
    /// for that writer.
    public final class WriteLease: Sendable {
        private let path: String
        init(path: String) { self.path = path }
        deinit { LeaseRegistry.shared.release(path) }
    }

    /// The file whose shared lock is a write lease (and whose exclusive lock is `gc`'s).
    public var leasePath: String { root + "/gc.lock" }

    /// Takes a shared write lease (waits while `gc` runs).
    public func acquireWriteLease() throws(StoreError) -> WriteLease {
        try LeaseRegistry.shared.acquire(leasePath)
        return WriteLease(path: leasePath)
    }

    /// Takes the lease exclusively (waits for every writer to finish; `onWait` is told when it must).
    func acquireExclusiveLease(onWait: () throws(StoreError) -> Void = {}) throws(StoreError) -> FileLock {
        try FileLock(path: leasePath, shared: false, onWait: onWait)
    }
}

/// The shared leases this process holds, one lock per store, counted.
///
/// Behind a pthread mutex (`NSLock`), not `Synchronization.Mutex`: every writer of every store in the
/// process comes through here, often at once, and a contended `Mutex` waits in a priority-inheritance
/// futex that hands the lock over inside the kernel, where ThreadSanitizer cannot see it, so the
/// sanitizer reported races between accesses this lock orders.
private final class LeaseRegistry: @unchecked Sendable {
    static let shared = LeaseRegistry()
    private let lock = NSLock()
    private var held: [String: (lock: FileLock, count: Int)] = [:]

    func acquire(_ path: String) throws(StoreError) {
        lock.lock()
        defer { lock.unlock() }
        if let entry = held[path] {
            held[path] = (entry.lock, entry.count + 1)
            return
        }
        held[path] = (try FileLock(path: path, shared: true), 1)
    }

    func release(_ path: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let entry = held[path] else { return }
        held[path] = entry.count > 1 ? (entry.lock, entry.count - 1) : nil
    }
}
