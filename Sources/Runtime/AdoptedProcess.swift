import InstanceNetwork
import Foundation
#if canImport(Glibc)
import Glibc
import ProcessLimits
#endif

/// The main process of an instance, as its runner watches and signals it: a child this process started
/// (``ChildProcess``), or one a previous daemon started and this one adopted (``AdoptedProcess``).
public protocol InstanceProcess: Sendable {
    var pid: Int32 { get }
    /// The exit status once the process has exited (-1 when it is not known: an adopted process).
    var exitStatus: Int32? { get }
    func waitForExit() async -> Int32
    /// Waits at most `timeout` for the exit; true if the process has exited.
    func waitForExit(timeout: Duration) async -> Bool
    func signal(_ signal: Int32)
}

extension ChildProcess: InstanceProcess {}

/// A process started by another process (a daemon that has since died), watched by polling: it is not
/// this process's child, so its exit cannot be waited for, only seen, and its status is not known.
public struct AdoptedProcess: InstanceProcess {
    public let pid: Int32
    /// When it started (clock ticks after boot), so a recycled pid is never taken for it.
    public let startTime: UInt64

    /// The process `pid` if it still runs and started at `startTime`.
    public init?(pid: Int32, startTime: UInt64) {
        guard pid > 0, ProcessStart.of(pid) == startTime else { return nil }
        self.pid = pid
        self.startTime = startTime
    }

    private var isAlive: Bool { ProcessStart.of(pid) == startTime }

    public var exitStatus: Int32? { isAlive ? nil : -1 }

    public func waitForExit() async -> Int32 {
        while isAlive { try? await Task.sleep(for: .milliseconds(100)) }
        return -1
    }

    public func waitForExit(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isAlive, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !isAlive
    }

    public func signal(_ signal: Int32) {
        if isAlive { kill(pid, signal) }
    }
}

/// The processes below one process, from `/proc` (children first, then theirs).
public func descendants(of pid: Int32) -> [Int32] {
    var parents: [Int32: [Int32]] = [:]
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let child = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/stat"),
              let close = data.lastIndex(of: UInt8(ascii: ")")) else { continue }
        let fields = data[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let parent = Int32(String(decoding: fields[1], as: UTF8.self)) else { continue }
        parents[parent, default: []].append(child)
    }
    var found: [Int32] = []
    var queue = [pid]
    while !queue.isEmpty {
        let next = parents[queue.removeFirst()] ?? []
        found += next
        queue += next
    }
    return found
}

/// What a daemon records of each instance it starts, so the next daemon can adopt it.
public struct InstanceRecord: Sendable, Codable, Equatable {
    public enum Runner: String, Sendable, Codable { case runc, bwrap }
    public var id: String
    public var runner: Runner
    /// The process the daemon started (`runc run`, or bwrap through setpriv) and when it started.
    public var pid: Int32
    public var startTime: UInt64
    /// The instance's folder (overlay root, log).
    public var directory: String
    public var stopSignal: Int32
    /// The instance's private network, if it has one (records of older daemons have none).
    public var network: NetworkNamespace?

    public init(id: String, runner: Runner, pid: Int32, startTime: UInt64, directory: String, stopSignal: Int32, network: NetworkNamespace?) {
        self.id = id
        self.runner = runner
        self.pid = pid
        self.startTime = startTime
        self.directory = directory
        self.stopSignal = stopSignal
        self.network = network
    }
}
