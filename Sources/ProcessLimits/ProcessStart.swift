import Foundation

/// When a process started, from `/proc/PID/stat`: with the pid, it names one process for good.
public enum ProcessStart {
    /// The start time of `pid` in clock ticks after boot; nil when there is no such process or it is a zombie.
    public static func of(_ pid: Int32) -> UInt64? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
              let close = data.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // After the command name: state is field 3, starttime field 22.
        let fields = data[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19, fields[0].first != UInt8(ascii: "Z"), fields[0].first != UInt8(ascii: "X") else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }
}

/// One process, named for good by its pid and start time (a pid alone may be reused once it exits).
public struct ProcessIdentity: Sendable, Equatable {
    public let pid: Int32
    public let startTime: UInt64

    /// The process `pid` is now; nil when there is none (or a zombie).
    public init?(running pid: Int32) {
        guard let startTime = ProcessStart.of(pid) else { return nil }
        self.pid = pid
        self.startTime = startTime
    }

    /// Whether it still runs (not a zombie, and not another process that got its pid).
    public var isRunning: Bool { ProcessStart.of(pid) == startTime }
}
