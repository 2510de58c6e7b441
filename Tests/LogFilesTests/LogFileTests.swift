import Foundation
import LogFiles
import Testing
import TestScheduling

@Suite("Logs of processes that outlive the daemon", .mayBlock)
struct LogFileTests {
    /// The size of the file at `path` (an empty file is not read: Foundation's `Data(contentsOf:)` leaks
    /// the buffer it reads an empty file into, which LeakSanitizer reports).
    private func size(of path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

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
        #expect(size(of: path) == 0)
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

    @Test("a writer that did not open its log for appending (an instance an older daemon started) goes on behind a hole: the log is emptied once, then measured from its data, and its tail has no hole in it")
    func writerWithoutAppendLeavesAHoleThatIsNotCounted() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/output.log"
        FileManager.default.createFile(atPath: path, contents: nil)
        let writer = try #require(FileHandle(forWritingAtPath: path))
        // Not a whole number of blocks: the file system reports the data from the start of its block.
        let written = (1 << 20) + 1000
        try writer.write(contentsOf: Data(repeating: UInt8(ascii: "a"), count: written))
        #expect(LogFile.keep(path, to: 4096))
        try writer.write(contentsOf: Data("after\n".utf8))
        try writer.close()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(size == written + 6, "the writer went on at its own offset")
        let before = try Data(contentsOf: URL(fileURLWithPath: path + ".1"))
        #expect(!LogFile.keep(path, to: 4096), "6 bytes of data behind a hole are within the limit")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".1")) == before, "the .1 file was not rewritten")
        let tail = LogFile.tail(of: path, bytes: 20)
        #expect(tail == String(repeating: "a", count: 14) + "after\n", "no zero byte of the hole: \(tail.debugDescription)")
    }

    @Test("an emptied log's tail comes from its .1 file")
    func tailOfAnEmptiedLog() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/output.log"
        try Data("first\nsecond\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(LogFile.keep(path, to: 4))
        #expect(LogFile.tail(of: path, bytes: 100) == "ond\n")
        LogFile.append("third\n", to: path)
        #expect(LogFile.tail(of: path, bytes: 8) == "d\nthird\n")
    }

    @Test("what is not a log of its own is left alone: a hard link to another file, a FIFO, a symbolic link; a .1.partial link is not followed")
    func hostileLogsAreLeftAlone() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let victim = folder + "/victim"
        let secret = Data(repeating: UInt8(ascii: "s"), count: 10_000)
        try secret.write(to: URL(fileURLWithPath: victim))
        #expect(link(victim, folder + "/hard.log") == 0)
        #expect(!LogFile.keep(folder + "/hard.log", to: 100), "a log with two links")
        #expect(symlink(victim, folder + "/soft.log") == 0)
        #expect(!LogFile.keep(folder + "/soft.log", to: 100), "a log that is a symbolic link")
        #expect(LogFile.tail(of: folder + "/soft.log", bytes: 10) == "")
        #expect(LogFile.openForAppending(folder + "/hard.log", emptied: true) == nil, "a log with two links is not opened (nor emptied)")
        #expect(LogFile.openForAppending(folder + "/soft.log") == nil, "a symbolic link is not followed")
        #expect(mkfifo(folder + "/fifo.log", 0o600) == 0)
        #expect(!LogFile.keep(folder + "/fifo.log", to: 100), "a FIFO (and nothing blocks)")
        #expect(LogFile.openForAppending(folder + "/fifo.log") == nil, "a FIFO is not opened for appending (nor blocks)")
        #expect(LogFile.tail(of: folder + "/fifo.log", bytes: 10) == "")
        #expect(try Data(contentsOf: URL(fileURLWithPath: victim)) == secret, "the file linked to is untouched")

        let log = folder + "/output.log"
        try Data(repeating: UInt8(ascii: "l"), count: 1000).write(to: URL(fileURLWithPath: log))
        #expect(symlink(victim, log + ".1.partial") == 0)
        #expect(LogFile.keep(log, to: 100))
        #expect(try Data(contentsOf: URL(fileURLWithPath: victim)) == secret, "the .1.partial link was replaced, not written through")
        #expect(try Data(contentsOf: URL(fileURLWithPath: log + ".1")) == Data(repeating: UInt8(ascii: "l"), count: 100))
    }

    @Test("a log whose copy cannot be made is emptied all the same: the disk comes first")
    func emptiedWhenTheCopyFails() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = folder + "/output.log"
        try Data(repeating: UInt8(ascii: "l"), count: 1000).write(to: URL(fileURLWithPath: log))
        // A folder where the copy would be written: it can be neither removed nor created.
        try FileManager.default.createDirectory(atPath: log + ".1.partial/inside", withIntermediateDirectories: true)
        // An older .1, which would otherwise read as what came just before the emptied log.
        try Data("older".utf8).write(to: URL(fileURLWithPath: log + ".1"))
        #expect(LogFile.keep(log, to: 100))
        #expect(size(of: log) == 0)
        #expect(!FileManager.default.fileExists(atPath: log + ".1"))
        #expect(LogFile.tail(of: log, bytes: 100) == "")
    }

    @Test("a log opened emptied for a new start is made 0600, whatever mode it had")
    func emptiedLogIsPrivate() throws {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let log = folder + "/output.log"
        try Data("old".utf8).write(to: URL(fileURLWithPath: log))
        chmod(log, 0o644)
        let fd = try #require(LogFile.openForAppending(log, emptied: true))
        close(fd)
        var info = stat()
        stat(log, &info)
        #expect(info.st_mode & 0o777 == 0o600 && info.st_size == 0)
    }
}
