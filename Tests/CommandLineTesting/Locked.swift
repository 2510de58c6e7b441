import Foundation

/// A value behind a pthread mutex (`NSLock`), for stand-ins that tasks of a test share.
///
/// Not `Synchronization.Mutex`: when it is contended, that mutex waits in a priority-inheritance futex,
/// which hands the lock over inside the kernel where ThreadSanitizer cannot see it, so the sanitizer
/// reports races between accesses that the mutex does order. Pthread mutexes it intercepts.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) {
        self.value = value
    }

    @discardableResult
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
