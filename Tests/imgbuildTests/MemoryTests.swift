import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// Memory stays flat with input size: layers are streamed, archive contents are spooled to disk.
@Suite("Flat memory", .mayBlock)
struct MemoryTests {
    /// The peak resident memory (KiB) of one imgbuild command, measured by the kernel (ru_maxrss of the
    /// child, read through python3's resource module).
    func peakKiB(_ arguments: [String]) throws -> Int {
        let script = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        let result = try run("/usr/bin/env", ["python3", "-c", script, imgbuildBinary] + arguments,
                             environment: ["IMGBUILD_CACHE": scratchRoot + "/cache"])
        let fields = result.stdout.split(separator: "\n").last?.split(separator: " ") ?? []
        #expect(fields.first == "0", "imgbuild failed: \(result.stderr)")
        return Int(fields.last ?? "") ?? .max
    }

    @Test("a build of 16 MiB and of 160 MiB (files and an archive) peak at about the same memory")
    func flat() throws {
        var peaks: [Int] = []
        for megabytes in [16, 160] {
            let context = makeTemporaryDirectory("mem")
            let data = TestContext.mixedData(megabytes: megabytes / 2)
            try data.write(to: URL(fileURLWithPath: context + "/big.bin"))
            let archiveSource = makeTemporaryDirectory("mem-archive")
            try data.write(to: URL(fileURLWithPath: archiveSource + "/inside.bin"))
            #expect(try run("/bin/tar", ["-C", archiveSource, "-czf", context + "/vendor.tar.gz", "inside.bin"]).status == 0)
            let sum = String(try run("/usr/bin/sha256sum", [context + "/vendor.tar.gz"]).stdout.prefix(64))
            write("""
            name: mem/app
            version: 1.0.0
            dependencies:
              - archive: vendor.tar.gz
                sha256: \(sum)
                to: /opt
            code:
              - copy: big.bin
                to: /app/big.bin

            """, to: context + "/Imagefile")
            peaks.append(try peakKiB(["build", context, "--store", makeTemporaryDirectory("mem-store") + "/store", "-q"]))
        }
        // Ten times the input may add a few MiB of bookkeeping, never the input itself.
        #expect(peaks[1] < peaks[0] + 24 * 1024, "peak \(peaks[0]) KiB for 16 MiB, \(peaks[1]) KiB for 160 MiB")
        #expect(peaks[1] < 160 * 1024, "peak \(peaks[1]) KiB holds the input in memory")
    }
}
