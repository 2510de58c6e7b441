import Foundation
import DebianArchive
import Testing
import TestScheduling

@Suite("Debian versions", .mayBlock)
struct DebianVersionTests {
    static let versions = ["1.0", "1.0-1", "1.0-2", "1.0-10", "1:0.9", "0:1.0", "2:0", "1.0~rc1", "1.0~~", "1.0~", "1.0a", "1.0+b1", "1.00", "1.0.1",
                           "2", "10", "9", "1.0-1ubuntu1", "1.0-1~bpo1", "1.35.0-4+deb12u1+b1", "1:1.35.0-4+deb12u1+b1", "1.0-1.1", "1.a"]

    @Test("every pair sorts exactly as dpkg --compare-versions sorts it")
    func againstDpkg() throws {
        let list = Self.versions.map { "'\($0)'" }.joined(separator: " ")
        // One shell for all pairs: dpkg's answer as -1, 0 or 1.
        let script = """
            for a in \(list); do for b in \(list); do
              if dpkg --compare-versions "$a" lt "$b" 2>/dev/null; then r=-1; elif dpkg --compare-versions "$a" eq "$b" 2>/dev/null; then r=0; else r=1; fi
              echo "$a $b $r"
            done; done
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var checked = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 3, let a = DebianVersion(fields[0]), let b = DebianVersion(fields[1]) else { continue }
            let ours = DebianVersion.compare(a, b).signum()
            #expect(ours == Int(fields[2]), "\(fields[0]) vs \(fields[1]): dpkg says \(fields[2]), we say \(ours)")
            checked += 1
        }
        #expect(checked > 500, "pairs compared: \(checked)")
        #expect(DebianVersion("1.0~rc1")! < DebianVersion("1.0")! && DebianVersion("1:0.1")! > DebianVersion("9.9")!)
        #expect(DebianVersion("x:1.0") == nil && DebianVersion("") == nil)
    }
}
