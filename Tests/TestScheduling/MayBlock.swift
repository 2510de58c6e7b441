import Dispatch
import Foundation
import Testing

/// Runs each test of a suite on threads of its own, so that a test that blocks its thread (a process it
/// waits for, a socket it reads, a `sleep` between two steps) holds up no other test.
///
/// Without it, tests run on Swift's cooperative pool, which has one thread per core: two tests waiting
/// for a child process stop every other test of the run, and their NIO-free async code too, for as long
/// as they wait. On CI's two cores the whole run then spent most of its time with the CPU idle, and a
/// test's timings (the seconds it reports, the timeouts of the servers it starts) included minutes in
/// which it could not run at all.
///
/// Every suite of the repository carries it, `@Suite("…", .mayBlock)`, so that no test body runs on the
/// cooperative pool. What a test starts with `Task {}` does run there (an unstructured task does not
/// inherit the preference): such a task must not block.
///
/// Freed from the pool's limit, Swift Testing would start every test at once (two dozen builds on two
/// cores, where a test's bounded waits ran out), so the trait also admits at most ``TestSlots/width``
/// tests at a time.
public struct MayBlockTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> MayBlockTrait? {
        // Each test case gets the scope; a suite's own set-up needs none.
        testCase == nil ? nil : self
    }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // The trait given twice (a suite and its test) takes one slot, not two.
        guard !TestSlots.holding else { return try await function() }
        await TestSlots.shared.acquire()
        do {
            try await TestSlots.$holding.withValue(true) {
                try await withTaskExecutorPreference(BlockingTaskExecutor.shared) {
                    try await function()
                }
            }
        } catch {
            await TestSlots.shared.release()
            throw error
        }
        await TestSlots.shared.release()
    }
}

extension Trait where Self == MayBlockTrait {
    /// Tests that run on threads they may block (see ``MayBlockTrait``).
    public static var mayBlock: MayBlockTrait { MayBlockTrait() }
}

/// A task executor whose jobs run on a concurrent dispatch queue: when every thread it has is blocked,
/// dispatch starts another (the queue is not limited to one thread per core, as the cooperative pool is).
public final class BlockingTaskExecutor: TaskExecutor {
    public static let shared = BlockingTaskExecutor()

    private let queue = DispatchQueue(label: "tests.may-block", attributes: .concurrent)

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}

/// The tests that may run at once: `IMGBUILD_TEST_WIDTH`, or four per core. A test waits here, before it
/// starts, for one of them to end. On two cores the whole run took 458 s with 4 (the CPU 61 % idle:
/// most tests wait on processes, sockets and timeouts), 365 s with 8 (50 % idle), and about 330 s
/// with no limit, where two dozen builds at once starved a test's own tasks past their 30 s bounds.
public actor TestSlots {
    public static let shared = TestSlots(width: width)

    public static var width: Int {
        if let text = ProcessInfo.processInfo.environment["IMGBUILD_TEST_WIDTH"], let width = Int(text), width > 0 { return width }
        return 4 * max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Whether the current task's test holds a slot.
    @TaskLocal static var holding = false

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(width: Int) {
        free = width
    }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
