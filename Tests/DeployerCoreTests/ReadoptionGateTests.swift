import Foundation
import Front
import OCI
import ReleaseSpec
@testable import DeployerCore
import Testing
import TestScheduling

/// The daemon's start against a user's `apply`: the re-adoption of a service is begun before the daemon
/// answers anyone, and a rollout asked for meanwhile waits for it instead of running beside it. The
/// front "executable" is a script that records each launch and never serves, so no root, instance or
/// real front is needed.
@Suite("Re-adoption and apply do not run together", .mayBlock)
struct ReadoptionGateTests {
    @Test("a rollout asked for as the daemon starts begins only once the re-adoption has ended")
    func applyWaitsForReadoption() async throws {
        let root = NSTemporaryDirectory() + "readoption-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let paths = DeployPaths(root: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        // Each launch of a front records how many re-adoptions the history holds at that moment, and
        // fails: nothing serves.
        let launches = root + "/launches"
        let script = root + "/front.sh"
        let history = paths.history("hello")
        try Data("#!/bin/sh\necho \"readoptions recorded: $(grep -c readopt \(history) 2>/dev/null || echo 0)\" >> \(launches)\nexit 1\n".utf8)
            .write(to: URL(fileURLWithPath: script))
        chmod(script, 0o755)
        var launcher = FrontLauncher(executable: script)
        launcher.startTimeout = .milliseconds(400)

        let image = PinnedImage(name: try RepositoryName("hello"), digest: Digest.of(Data("hello".utf8)))
        let spec = ReleaseSpec(service: "hello", image: image, source: .store(path: root + "/no-store"), port: 8080,
                               listen: .init(host: "127.0.0.1", port: 0))
        try ReleaseHistory(paths: paths, service: "hello").saveCurrent(spec)

        let deployer = Deployer(paths: paths, launcher: launcher)
        #expect(await deployer.start() == ["hello"])
        // Asked at once: the re-adoption holds the service already.
        let during = try await deployer.status("hello")
        #expect(during.first?.rolloutRunning == true)
        #expect(during.first?.lastRollout?.kind == "readopt")

        await #expect(throws: DeployError.self) { try await deployer.apply(spec) }
        let readopt = try #require(try await deployer.history("hello").first { $0.kind == "readopt" })
        #expect(readopt.state == RolloutState.failed && readopt.finished != nil)
        // Two launches: the re-adoption's, with nothing recorded yet, then the rollout's, after the
        // re-adoption was recorded as ended.
        let lines = try String(contentsOfFile: launches, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == ["readoptions recorded: 0", "readoptions recorded: 1"])
        #expect(try await deployer.status("hello").first?.rolloutRunning == false)
    }
}
