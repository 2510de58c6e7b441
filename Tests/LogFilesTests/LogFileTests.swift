import Foundation
import LogFiles
import Testing
import TestScheduling

@Suite("Logs of processes that outlive the daemon", .mayBlock)
struct LogFileTests {
    private func temporaryFolder() throws -> String {
        let folder = NSTemporaryDirectory() + "logfile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    @Test("a log past its limit is copied to .1, its last limit bytes, and emptied; one within it is left alone")
    func keepsToItsLimit() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/output.log"
        let lines = (0..<200).map { "line \($0)\n" }.joined()
        try Data(lines.utf8).write(to: URL(fileURLWithPath: path))
        #expect(!LogFile.keep(path, to: lines.utf8.count), "a log at its limit is not touched")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == lines.utf8.count)

        #expect(LogFile.keep(path, to: 100))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).isEmpty)
        let kept = try String(contentsOfFile: path + ".1", encoding: .utf8)
        #expect(kept == String(lines.suffix(100)), "the last 100 bytes are kept: \(kept)")
        #expect(!FileManager.default.fileExists(atPath: path + ".1.partial"))
        var info = stat()
        stat(path + ".1", &info)
        #expect(info.st_mode & 0o777 == 0o600)
    }

    @Test("a process that keeps writing to a log opened for appending goes on at its new start once it is emptied: no hole, nothing of the earlier part")
    func appendingWriterHasNoHole() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/output.log"
        let log = try #require(LogFile.openForAppending(path))
        // A real writer of its own: a shell that writes a megabyte, waits to be told, then writes a line.
        let go = folder + "/go"
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "head -c 1048576 /dev/zero; while [ ! -e '\(go)' ]; do sleep 0.05; done; echo after"]
        writer.standardOutput = FileHandle(fileDescriptor: log, closeOnDealloc: true)
        try writer.run()
        var size = 0
        for _ in 0..<600 where size < 1 << 20 {
            usleep(50_000)
            size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        }
        #expect(size == 1 << 20)
        #expect(LogFile.keep(path, to: 4096))
        FileManager.default.createFile(atPath: go, contents: nil)
        writer.waitUntilExit()
        let after = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(after == Data("after\n".utf8), "the writer went on at the start of the emptied log: \(after.count) bytes")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".1")).count == 4096)
    }

    @Test("the tail of a log is read from its end, whatever its size; a missing log has none")
    func tail() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/output.log"
        #expect(LogFile.tail(of: path, bytes: 10) == "")
        try Data(("x" + String(repeating: "y", count: 100_000) + "the end").utf8).write(to: URL(fileURLWithPath: path))
        #expect(LogFile.tail(of: path, bytes: 7) == "the end")
        #expect(LogFile.tail(of: path, bytes: 1_000_000).hasPrefix("xyy"))
    }
}
