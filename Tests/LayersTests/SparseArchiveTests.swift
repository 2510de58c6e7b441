import Foundation
import Layers
import OCI
import Testing
import TestScheduling

/// The environment variable that makes this test binary, started again by ``SparseArchiveTests``, run one
/// ``SparseBomb`` in ``SparseBombChild`` and write its outcome to the file the variable names.
private let childVariable = "IMGBUILD_SPARSE_BOMB_CHILD"
private let caseVariable = "IMGBUILD_SPARSE_BOMB_CASE"

/// Hostile sparse files: a tar of a few kilobytes whose GNU sparse map claims a petabyte.
///
/// Each runs in a child process (this test binary again, with a memory limit), so that a reader that
/// allocates the holes — the defect of issue 12, which allocated and zero-filled the whole hole before
/// any limit was checked — dies alone, and this test reports it, instead of taking the test run down.
enum SparseBomb: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// `imgdeploy`'s unpack: a PAX 1.0 sparse file of 2^50 bytes, one stored byte at its end, against a
    /// 1 MiB unpack limit: refused by its declared size, before anything is read.
    case unpackPetabyte
    /// The unpack of a PAX 0.1 sparse file that declares 4 KiB but maps a byte at 1 TiB: refused when
    /// that piece is met.
    case unpackMapBeyondDeclaredSize
    /// A 6 GiB sparse file under an 8 GiB unpack limit: unpacked, as a sparse file, with flat memory.
    case unpackLargeHoleWithinLimit
    /// `imgbuild`'s dependency import, with its default limit (16 GiB).
    case importPetabyte
    /// The file inventory of an image (its SBOM), with its default limit (64 GiB).
    case inventoryPetabyte

    var testDescription: String { rawValue }

    static let petabyte: Int64 = 1 << 50

    /// The outcome of the case in this process: `refused: <error>` or `accepted: <details>`.
    func run() throws -> String {
        switch self {
        case .unpackPetabyte:
            var tar = TarBytes()
            tar.file("before", Array("fine".utf8))
            tar.sparse10("big", realSize: SparseBomb.petabyte, map: [(SparseBomb.petabyte - 1, 1)])
            return try unpack(tar, maxBytes: 1 << 20)
        case .unpackMapBeyondDeclaredSize:
            var tar = TarBytes()
            tar.sparse01("big", realSize: 4096, map: [(0, 1), (1 << 40, 1)])
            return try unpack(tar, maxBytes: 1 << 20)
        case .unpackLargeHoleWithinLimit:
            var tar = TarBytes()
            tar.sparse10("big", realSize: 6 << 30, map: [(0, 1), ((6 << 30) - 1, 1)])
            return try unpack(tar, maxBytes: 8 << 30) { root in
                var info = stat()
                guard lstat(root + "/big", &info) == 0 else { return "no file" }
                let handle = FileHandle(forReadingAtPath: root + "/big")
                let first = try handle?.read(upToCount: 2)
                try handle?.seek(toOffset: UInt64((6 << 30) - 2))
                let last = try handle?.read(upToCount: 2)
                return "size \(info.st_size), blocks \(info.st_blocks), first \(Array(first ?? Data())), last \(Array(last ?? Data()))"
            }
        case .importPetabyte:
            var tar = TarBytes()
            tar.sparse10("opt/big", realSize: SparseBomb.petabyte, map: [(SparseBomb.petabyte - 1, 1)])
            var tree = LayerTree(spool: try Spool())
            do { try ArchiveImporter(label: "bomb.tar").importArchive(at: try tar.write(), under: "", into: &tree) } catch {
                return "refused: \(error)"
            }
            return "accepted"
        case .inventoryPetabyte:
            var tar = TarBytes()
            tar.sparse10("big", realSize: SparseBomb.petabyte, map: [(SparseBomb.petabyte - 1, 1)])
            let path = try tar.write()
            do { _ = try LayerInventory.read(layers: [(path, try Digest.ofFile(atPath: path).digest)]) { _ in true } } catch {
                return "refused: \(error)"
            }
            return "accepted"
        }
    }

    private func unpack(_ tar: TarBytes, maxBytes: Int64, inspect: (String) throws -> String = { _ in "" }) throws -> String {
        let root = NSTemporaryDirectory() + "sparse-root-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            _ = try RootfsUnpacker(policy: UnpackPolicy(maxBytes: maxBytes, applyOwners: false)).unpack(layers: [(try tar.write(), "bomb.tar")], into: root)
        } catch {
            return "refused: \(error)"
        }
        return "accepted: " + (try inspect(root))
    }
}

@Suite("Hostile archives: sparse files", .mayBlock)
struct SparseArchiveTests {
    @Test("a sparse file's holes are bounded by the size limit before anything is allocated (in a child process)", arguments: SparseBomb.allCases)
    func sparseBomb(_ bomb: SparseBomb) throws {
        guard ProcessInfo.processInfo.environment[childVariable] == nil else { return }
        let child = try runInChild(bomb)
        guard let outcome = child.outcome else {
            Issue.record("""
                the child process running '\(bomb)' \(child.ending) before reporting: the reader allocated the sparse file's hole \
                (the defect of issue 12). It said:
                \(child.output.split(separator: "\n").filter { $0.contains("Fatal error") }.first ?? child.output.suffix(800))
                """)
            return
        }
        // The peak memory of the child grew by less than 64 MiB while the case ran.
        #expect(child.rssGrowth < 64 << 10, "the child's peak memory grew by \(child.rssGrowth) KiB")
        switch bomb {
        case .unpackPetabyte:
            #expect(outcome.hasPrefix("refused: "), "\(outcome)")
            #expect(outcome.contains("'big'") && outcome.contains("declares a size of 1125899906842624 bytes") && outcome.contains("more than 1048576 bytes"),
                    "the error names the entry, its declared size and the limit: \(outcome)")
        case .unpackMapBeyondDeclaredSize:
            #expect(outcome.hasPrefix("refused: ") && outcome.contains("'big'") && outcome.contains("contents reach 1099511627777 bytes"), "\(outcome)")
        case .unpackLargeHoleWithinLimit:
            #expect(outcome.hasPrefix("accepted: size 6442450944, blocks "), "\(outcome)")
            #expect(outcome.hasSuffix("first [120, 0], last [0, 120]"), "\(outcome)")
            let blocks = outcome.split(separator: " ").drop { $0 != "blocks" }.dropFirst().first.flatMap { Int($0.dropLast()) }
            #expect((blocks ?? .max) < 2048, "the holes stay holes on disk: \(outcome)")
        case .importPetabyte:
            #expect(outcome.hasPrefix("refused: ") && outcome.contains("'opt/big'") && outcome.contains("1125899906842624")
                    && outcome.contains("17179869184"), "\(outcome)")
        case .inventoryPetabyte:
            #expect(outcome.hasPrefix("refused: ") && outcome.contains("'big'") && outcome.contains("1125899906842624")
                    && outcome.contains("68719476736"), "\(outcome)")
        }
    }

    @Test("a sparse map whose offsets go backwards or overlap is refused", arguments: [
        [(Int64(1000), 10), (Int64(0), 10)], [(Int64(0), 100), (Int64(50), 100)],
    ])
    func backwardsMap(_ map: [(Int64, Int)]) throws {
        var tar = TarBytes()
        tar.sparse01("weird", realSize: 2000, map: map)
        let root = NSTemporaryDirectory() + "sparse-root-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let error = #expect(throws: LayerError.self) {
            try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(try tar.write(), "weird.tar")], into: root)
        }
        #expect(error?.description.contains("'weird'") == true && error?.description.contains("goes backwards or overlaps") == true, "\(String(describing: error))")
    }

    @Test("a sparse file keeps its holes and its length, a trailing hole too, when unpacked and when imported")
    func legitimateSparseFile() throws {
        var tar = TarBytes()
        tar.sparse10("data/sparse", realSize: 3 << 20, map: [(1 << 20, 4), (2 << 20, 2)])
        tar.file("data/after", Array("after".utf8))
        let path = try tar.write()

        let root = NSTemporaryDirectory() + "sparse-root-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let summary = try RootfsUnpacker(policy: UnpackPolicy(applyOwners: false)).unpack(layers: [(path, "sparse.tar")], into: root)
        let contents = try Data(contentsOf: URL(fileURLWithPath: root + "/data/sparse"))
        var expected = Data(count: 3 << 20)
        expected.replaceSubrange((1 << 20)..<((1 << 20) + 4), with: Array("xxxx".utf8))
        expected.replaceSubrange((2 << 20)..<((2 << 20) + 2), with: Array("xx".utf8))
        #expect(contents.count == 3 << 20, "the trailing hole is part of the file")
        let same = contents == expected  // not inside #expect, which would diff 3 MiB on a failure
        #expect(same, "the data lands at its offsets, zeros around it")
        #expect(summary.bytes == (3 << 20) + 5, "holes count against the unpack limit")
        var info = stat()
        lstat(root + "/data/sparse", &info)
        #expect(info.st_blocks < 1024, "the holes stay holes on disk (\(info.st_blocks) blocks)")
        #expect(try String(contentsOfFile: root + "/data/after", encoding: .utf8) == "after")

        var tree = LayerTree(spool: try Spool())
        try ArchiveImporter(label: "sparse.tar").importArchive(at: path, under: "", into: &tree)
        let entry = try tree.finalizedEntries().first { $0.path == "data/sparse" }
        guard case .regularFile(.spool(_, let size)) = entry?.kind else {
            Issue.record("no regular file 'data/sparse' in \(String(describing: entry))")
            return
        }
        #expect(size == 3 << 20)
        let inventory = try LayerInventory.read(layers: [(path, Digest.ofFile(atPath: path).digest)]) { _ in false }
        #expect(inventory.files.first { $0.path == "data/sparse" }?.sha256 == Digest.of(expected).hex)
    }
}

/// The other half of ``SparseArchiveTests/sparseBomb(_:)``: runs in the child process only.
@Suite("Hostile archives: a sparse bomb in a child process", .mayBlock)
struct SparseBombChild {
    @Test("run one sparse bomb", .enabled(if: ProcessInfo.processInfo.environment[childVariable] != nil))
    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let output = environment[childVariable], let name = environment[caseVariable], let bomb = SparseBomb(rawValue: name) else { return }
        // A bound on what this process may allocate: 1 GiB more than it has now.
        if let data = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            .split(separator: "\n").first(where: { $0.hasPrefix("VmData:") })?
            .split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ UInt64($0) }) {
            var limit = rlimit(rlim_cur: rlim_t((data << 10) + (1 << 30)), rlim_max: rlim_t((data << 10) + (1 << 30)))
            setrlimit(__rlimit_resource_t(RLIMIT_DATA.rawValue), &limit)
        }
        let before = peakResidentKiB()
        let outcome = try bomb.run()
        let growth = peakResidentKiB() - before
        try Data("\(growth)\n\(outcome)".utf8).write(to: URL(fileURLWithPath: output))
    }
}

private func peakResidentKiB() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
}

private struct ChildOutcome {
    /// The case's outcome, nil when the child ended without writing one.
    var outcome: String?
    /// How much the child's peak memory grew while the case ran, in KiB.
    var rssGrowth: Int
    /// How the child ended, in words.
    var ending: String
    /// Its standard output and error.
    var output: String
}

/// Runs `bomb` in this test binary started again, with the swift-testing filter on ``SparseBombChild``.
private func runInChild(_ bomb: SparseBomb) throws -> ChildOutcome {
    let folder = NSTemporaryDirectory() + "sparse-child-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = ["--testing-library", "swift-testing", "--filter", "SparseBombChild"]
    var environment = ProcessInfo.processInfo.environment
    environment[childVariable] = folder + "/outcome"
    environment[caseVariable] = bomb.rawValue
    environment["SWIFT_BACKTRACE"] = "enable=no"  // a crash prints its "Fatal error" line, not pages of backtrace
    process.environment = environment
    _ = FileManager.default.createFile(atPath: folder + "/output", contents: nil)
    let log = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/output"))
    process.standardOutput = log
    process.standardError = log
    try process.run()
    let deadline = Date().addingTimeInterval(120)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    try log.close()
    let output = (try? String(contentsOfFile: folder + "/output", encoding: .utf8)) ?? ""
    let ending = process.terminationReason == .uncaughtSignal ? "died of signal \(process.terminationStatus)" : "exited with status \(process.terminationStatus)"
    guard let text = try? String(contentsOfFile: folder + "/outcome", encoding: .utf8), let newline = text.firstIndex(of: "\n") else {
        return ChildOutcome(outcome: nil, rssGrowth: 0, ending: Date() >= deadline ? "was killed after 120 s" : ending, output: output)
    }
    return ChildOutcome(outcome: String(text[text.index(after: newline)...]), rssGrowth: Int(text[..<newline]) ?? .max, ending: ending, output: output)
}
