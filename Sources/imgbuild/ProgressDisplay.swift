import Foundation
import NIOConcurrencyHelpers

/// Shows transfers on standard error: on a terminal, one bar per blob in flight, redrawn in place at
/// most ten times a second; otherwise (a pipe, a log, CI) plain lines only.
final class ProgressDisplay: Sendable {
    private let enabled: Bool
    private let terminal = isatty(STDERR_FILENO) == 1
    private let screen = NIOLockedValueBox(Screen())

    /// What is drawn below the last line.
    private struct Screen {
        var bars: [(name: String, done: Int64, total: Int64)] = []
        var drawnLines = 0
        var lastDraw = Date.distantPast

        mutating func clear() {
            guard drawnLines > 0 else { return }
            FileHandle.standardError.write(Data(String(repeating: "\u{1B}[1A\u{1B}[2K", count: drawnLines).utf8))
            drawnLines = 0
        }

        mutating func draw(terminal: Bool) {
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

    init(enabled: Bool) {
        self.enabled = enabled
    }

    /// A step: printed as a line above the bars.
    func line(_ text: String) {
        guard enabled else { return }
        if terminal && text.hasSuffix(": done") { return }  // the bar already shows it
        screen.withLockedValue { screen in
            screen.clear()
            printError(text)
            screen.draw(terminal: terminal)
        }
    }

    /// Bytes of one blob.
    func bytes(_ name: String, done: Int64, total: Int64) {
        guard enabled, terminal else { return }
        screen.withLockedValue { screen in
            if let index = screen.bars.firstIndex(where: { $0.name == name }) {
                screen.bars[index].done = done
            } else {
                screen.bars.append((name, done, total))
            }
            if done >= total { screen.bars.removeAll { $0.name == name } }
            guard Date().timeIntervalSince(screen.lastDraw) > 0.1 || done >= total else { return }
            screen.clear()
            screen.draw(terminal: terminal)
        }
    }

    func finish() {
        screen.withLockedValue { $0.clear() }
    }
}
