import Foundation
#if canImport(Glibc)
import Glibc
import NIOConcurrencyHelpers
#endif

/// Writes why requests failed to the front's log, at most `perSecond` lines a second: a backend that is
/// down fails every request, and the log must stay readable (the lines left out are counted).
final class FailureLog: Sendable {
    private struct Window {
        var second: time_t = 0
        var written = 0
        var skipped = 0
    }

    private let log: @Sendable (String) -> Void
    private let perSecond: Int
    private let window = NIOLockedValueBox(Window())

    init(perSecond: Int = 20, log: @escaping @Sendable (String) -> Void) {
        self.log = log
        self.perSecond = perSecond
    }

    /// Logs `note` unless this second's allowance is spent; the first line of a later second says how many
    /// lines the earlier ones left out.
    func note(_ note: String) {
        let (write, skipped) = window.withLockedValue { window -> (Bool, Int) in
            let now = time(nil)
            var skipped = 0
            if window.second != now {
                skipped = window.skipped
                window = Window(second: now)
            }
            guard window.written < perSecond else {
                window.skipped += 1
                return (false, 0)
            }
            window.written += 1
            return (true, skipped)
        }
        if skipped > 0 { log("\(skipped) more failed request(s) before this were not logged") }
        if write { log("failed request: \(note)") }
    }
}
