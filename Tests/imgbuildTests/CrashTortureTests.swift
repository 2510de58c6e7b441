import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// Builds, tags and garbage collections killed with SIGKILL at random moments never leave the store
/// invalid, never lose a tag that was reported written, and never keep a rerun from succeeding.
@Suite("Crash torture", .mayBlock)
struct CrashTortureTests {
    /// Starts imgbuild, kills it after `delay` microseconds unless it finished, and returns its exit
    /// status and stdout if it finished on its own.
    func runAndKill(_ arguments: [String], after delay: UInt32) throws -> (finished: Bool, status: Int32, stdout: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: imgbuildBinary)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["IMGBUILD_CACHE"] = scratchRoot + "/cache"
        process.environment = env
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(delay)
        let killed = process.isRunning && kill(process.processIdentifier, SIGKILL) == 0
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let finished = !(killed && process.terminationReason == .uncaughtSignal)
        return (finished, process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("50 builds, tags and gcs killed at random moments: fsck clean, no reported tag lost, reruns succeed")
    func killAtRandom() throws {
        let store = makeTemporaryDirectory("torture") + "/store"
        let context = makeSmallContext(seed: "base", name: "torture/app", bigFileMiB: 6)
        var reported: [String: String] = [:]  // version -> digest that a finished command printed
        // The store exists before the torture starts (its creation is atomic: see the next test).
        let first = try imgbuild(["build", context, "--store", store, "--version", "0.0.0"])
        #expect(first.status == 0)
        reported["0.0.0"] = first.lastLine
        var killedCount = 0
        var generator = SystemRandomNumberGenerator()
        for iteration in 0..<50 {
            let version = "1.0.\(iteration)"
            write("iteration \(iteration)\n", to: context + "/app.txt")
            let arguments: [String]
            switch iteration % 5 {
            case 3 where !reported.isEmpty:
                // Tag a reported digest under a new version.
                arguments = ["tag", "torture/app", version, reported.values.sorted()[0], "--store", store]
            case 4:
                arguments = ["gc", "--store", store]
            default:
                arguments = ["build", context, "--store", store, "--version", version, "-q"]
            }
            let delay = UInt32.random(in: 0...400_000, using: &generator)
            let outcome = try runAndKill(arguments, after: delay)
            if !outcome.finished { killedCount += 1 }
            if outcome.finished, outcome.status == 0, arguments[0] == "build" {
                reported[version] = outcome.stdout.split(separator: "\n").last.map(String.init)
            }

            let fsck = try imgbuild(["fsck", "--store", store])
            #expect(fsck.status == 0, "iteration \(iteration) (\(arguments[0]), killed after \(delay) µs): \(fsck.stdout)\(fsck.stderr)")

            // A rerun of the same command succeeds (a killed build's version was not tagged, or was tagged
            // with the very digest the rerun produces).
            let rerun = try imgbuild(arguments)
            #expect(rerun.status == 0, "rerun of iteration \(iteration): \(rerun.stderr)")
            if arguments[0] == "build" {
                if let earlier = reported[version] { #expect(earlier == rerun.lastLine) }
                reported[version] = rerun.lastLine
            }
        }
        #expect(killedCount > 0, "no command was killed: the torture tested nothing")
        let tags = try imgbuild(["tags", "torture/app", "--store", store]).stdout
        for (version, digest) in reported {
            #expect(tags.contains("\(version) \(digest)\n"), "lost \(version) \(digest)")
        }
        #expect(try imgbuild(["gc", "--store", store]).status == 0)
        #expect(try imgbuild(["fsck", "--store", store]).status == 0)
    }

    @Test("creating a store killed at random moments leaves no store or a complete one")
    func storeCreation() throws {
        var generator = SystemRandomNumberGenerator()
        let context = makeSmallContext(seed: "create")
        var killed = 0
        for _ in 0..<15 {
            let store = makeTemporaryDirectory("create") + "/store"
            let outcome = try runAndKill(["build", context, "--store", store, "-q"], after: UInt32.random(in: 0...60_000, using: &generator))
            if !outcome.finished { killed += 1 }
            if FileManager.default.fileExists(atPath: store) {
                #expect(try imgbuild(["fsck", "--store", store]).status == 0)
            }
            #expect(try imgbuild(["build", context, "--store", store, "-q"]).status == 0)
            #expect(try imgbuild(["fsck", "--store", store]).status == 0)
        }
        #expect(killed > 0)
    }

    @Test("gc running alongside builds never removes what a build is about to tag")
    func gcDuringBuilds() throws {
        let store = makeTemporaryDirectory("gc-race") + "/store"
        // The first layer is new in every round; the last one is slow to write (12 MiB), so a gc that
        // starts meanwhile finds the new first layer committed but not yet reachable from any tag.
        let context = makeTemporaryDirectory("gc-ctx")
        write("name: race/gc\nversion: 0.0.0\nruntime:\n  - copy: round.txt\n    to: /round.txt\ncode:\n  - copy: big.bin\n    to: /big.bin\n",
              to: context + "/Imagefile")
        try TestContext.mixedData(megabytes: 12).write(to: URL(fileURLWithPath: context + "/big.bin"))
        write("round -1\n", to: context + "/round.txt")
        #expect(try imgbuild(["build", context, "--store", store]).status == 0)
        var generator = SystemRandomNumberGenerator()
        for round in 0..<10 {
            write("round \(round)\n", to: context + "/round.txt")
            let build = Process()
            build.executableURL = URL(fileURLWithPath: imgbuildBinary)
            build.arguments = ["build", context, "--store", store, "--version", "1.0.\(round)", "-q"]
            build.standardOutput = FileHandle.nullDevice
            build.standardError = FileHandle.nullDevice
            try build.run()
            usleep(UInt32.random(in: 20_000...300_000, using: &generator))
            let gc = try imgbuild(["gc", "--store", store])
            build.waitUntilExit()
            #expect(gc.status == 0, "\(gc.stderr)")
            #expect(build.terminationStatus == 0, "build of round \(round) failed alongside gc")
            let fsck = try imgbuild(["fsck", "--store", store])
            #expect(fsck.status == 0, "round \(round): \(fsck.stdout)")
        }
        #expect(try imgbuild(["tags", "race/gc", "--store", store]).stdout.split(separator: "\n").count == 11)
    }
}
