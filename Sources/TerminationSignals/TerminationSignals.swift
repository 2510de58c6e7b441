import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT turned into a call of `action`, so a server can drain before it ends instead of
/// being cut off by the signals' default action. Call ``cancel()`` when the server has stopped.
public final class TerminationSignals: @unchecked Sendable {
    private let sources: [DispatchSourceSignal]

    /// From now on, SIGTERM and SIGINT call `action` (on a dispatch queue) and no longer end the process.
    public init(_ action: @escaping @Sendable () -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler(handler: action)
            source.resume()
            return source
        }
    }

    /// Stops listening for the signals.
    public func cancel() {
        sources.forEach { $0.cancel() }
    }
}
