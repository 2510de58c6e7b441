import Foundation
import Synchronization

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

    var leasePath: String { root + "/gc.lock" }

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
private final class LeaseRegistry: Sendable {
    static let shared = LeaseRegistry()
    private let held = Mutex<[String: (lock: FileLock, count: Int)]>([:])

    func acquire(_ path: String) throws(StoreError) {
        try held.withLock { held throws(StoreError) in
            if let entry = held[path] {
                held[path] = (entry.lock, entry.count + 1)
                return
            }
            held[path] = (try FileLock(path: path, shared: true), 1)
        }
    }

    func release(_ path: String) {
        held.withLock { held in
            guard let entry = held[path] else { return }
            held[path] = entry.count > 1 ? (entry.lock, entry.count - 1) : nil
        }
    }
}
