import Foundation

/// Shows transfers on standard error: on a terminal, one bar per blob in flight, redrawn in place at
/// most ten times a second; otherwise (a pipe, a log, CI) plain lines only.
final class ProgressDisplay: @unchecked Sendable {
    private let enabled: Bool
    private let terminal = isatty(STDERR_FILENO) == 1
    private let lock = NSLock()
    private var bars: [(name: String, done: Int64, total: Int64)] = []
    private var drawnLines = 0
    private var lastDraw = Date.distantPast

    init(enabled: Bool) {
        self.enabled = enabled
    }

    /// A step: printed as a line above the bars.
    func line(_ text: String) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        if terminal && text.hasSuffix(": done") { return }  // the bar already shows it
        clear()
        printError(text)
        draw()
    }

    /// Bytes of one blob.
    func bytes(_ name: String, done: Int64, total: Int64) {
        guard enabled, terminal else { return }
        lock.lock(); defer { lock.unlock() }
        if let index = bars.firstIndex(where: { $0.name == name }) { bars[index].done = done } else { bars.append((name, done, total)) }
        if done >= total { bars.removeAll { $0.name == name } }
        guard Date().timeIntervalSince(lastDraw) > 0.1 || done >= total else { return }
        clear()
        draw()
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        clear()
    }

    private func clear() {
        guard drawnLines > 0 else { return }
        FileHandle.standardError.write(Data(String(repeating: "\u{1B}[1A\u{1B}[2K", count: drawnLines).utf8))
        drawnLines = 0
    }

    private func draw() {
        guard terminal else { return }
        for bar in bars {
            let fraction = bar.total > 0 ? Double(bar.done) / Double(bar.total) : 1
            let filled = Int(fraction * 30)
            let text = "\(bar.name.prefix(19)) [\(String(repeating: "=", count: filled))\(String(repeating: " ", count: 30 - filled))] "
                + "\(Int(fraction * 100))% \(bar.done / 1024)/\(bar.total / 1024) KiB"
            printError(text)
        }
        drawnLines = bars.count
        lastDraw = Date()
    }
}
