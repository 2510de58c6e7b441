import Foundation
import PackageLock
import Testing
import TestScheduling

@Suite("Where a repository's url points", .mayBlock)
struct RepositoryAddressTests {
    @Test("variables come from the environment; an unset one is named")
    func variables() throws {
        let address = try RepositoryAddress.resolve("${MIRROR}/debian/", suite: "bookworm", environment: ["MIRROR": "http://127.0.0.1:9"])
        #expect(address.root == "http://127.0.0.1:9/debian" && address.keyrings.isEmpty)
        do {
            _ = try RepositoryAddress.resolve("${MIRROR}/debian", suite: "bookworm", environment: [:])
            Issue.record("an unset variable was accepted")
        } catch {
            #expect(error.description.contains("needs the environment variable MIRROR, which is not set"))
        }
        #expect(throws: RepositoryAddress.UnknownAddress.self) {
            try RepositoryAddress.resolve("${MIRROR}", suite: "s", environment: ["MIRROR": "file:///srv/debian"])
        }
    }

    @Test("system: the machine's apt sources, deb822 and one-line, with their Signed-By")
    func system() throws {
        let apt = FileManager.default.temporaryDirectory.appendingPathComponent("apt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: apt) }
        try FileManager.default.createDirectory(atPath: apt + "/sources.list.d", withIntermediateDirectories: true)
        try "# comment\ndeb-src http://src.invalid/debian bookworm main\ndeb [arch=amd64 signed-by=/k/one.gpg] http://one.invalid/debian/ trixie main\n"
            .write(toFile: apt + "/sources.list", atomically: true, encoding: .utf8)
        try "Types: deb\n# a comment\nURIs: http://two.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k/two.gpg\n\nTypes: deb\nURIs: http://off.invalid/debian\nSuites: sid\nEnabled: no\n"
            .write(toFile: apt + "/sources.list.d/debian.sources", atomically: true, encoding: .utf8)
        let trixie = try RepositoryAddress.resolve("system", suite: "trixie", environment: [:], aptDirectory: apt)
        #expect(trixie == RepositoryAddress(root: "http://one.invalid/debian", keyrings: ["/k/one.gpg"]))
        let updates = try RepositoryAddress.resolve("system", suite: "bookworm-updates", environment: [:], aptDirectory: apt)
        #expect(updates == RepositoryAddress(root: "http://two.invalid/debian", keyrings: ["/k/two.gpg"]))
        #expect(throws: RepositoryAddress.UnknownAddress.self) { try RepositoryAddress.resolve("system", suite: "sid", environment: [:], aptDirectory: apt) }
    }
}
