import Foundation
import Imagefile
import Layers
import OCI
import Runtime
import Store

/// The outcome of an image's tests: one line per assertion, with the actual value when it failed.
public struct TestReport: Sendable, Codable, Equatable {
    public struct Result: Sendable, Codable, Equatable {
        public var check: String
        public var passed: Bool
        /// What was found, when the check failed.
        public var actual: String?
        /// The platform of the image checked, in a multi-platform image's report.
        public var platform: String?
        /// A command test that was not run (on a platform other than the host's): neither passed nor
        /// failed, and said so in the record, so that no deployer of that platform takes it for a pass.
        public var notRun = false

        public init(check: String, passed: Bool, actual: String? = nil, platform: String? = nil, notRun: Bool = false) {
            self.check = check
            self.passed = passed
            self.actual = actual
            self.platform = platform
            self.notRun = notRun
        }
    }

    public var image: Digest
    public var results: [Result]

    public init(image: Digest, results: [Result]) {
        self.image = image
        self.results = results
    }

    public var passed: Bool { results.allSatisfy(\.passed) }
    public var failures: [Result] { results.filter { !$0.passed } }
    /// The checks that ran (and passed or failed), not those left for another platform.
    public var checksRun: Int { results.filter { !$0.notRun }.count }

    /// The report as the test record keeps it: `{"image", "passed", "results"}`, sorted keys; a result
    /// of a multi-platform image names its `platform`, and a command left for another platform is `notRun`.
    public func document() throws -> Data {
        let results = self.results.map { result -> [String: Any] in
            var entry: [String: Any] = ["check": result.check, "passed": result.passed]
            if let actual = result.actual { entry["actual"] = actual }
            if let platform = result.platform { entry["platform"] = platform }
            if result.notRun { entry["notRun"] = true }
            return entry
        }
        return try JSONSerialization.data(withJSONObject: ["image": image.description, "passed": passed, "results": results],
                                          options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// One line per failed check: what was expected, and what was found.
    public var failureText: String {
        failures.map { "  ✗ \($0.check): \($0.actual ?? "failed")" }.joined(separator: "\n")
    }
}

/// Runs an Imagefile's `tests:` against an image in the store: file and config assertions on the image
/// as unpacked, and commands inside it with runc (the deployer's runtime).
public struct ImageTester: Sendable {
    public let store: Store

    public init(store: Store) {
        self.store = store
    }

    /// What the image may unpack to for its tests (holes of sparse files included): more than any image
    /// needs, and a bound on what a hostile base image can make the test write.
    public static let maxUnpackBytes: Int64 = 64 << 30
    /// The most bytes of a file a `contains` check reads.
    public static let containsLimit = 16 << 20

    /// Runs `suite` against an image manifest, or against every image of an index: its config and file
    /// checks on each platform's image (each check named with its platform), its commands on the image
    /// of the host's platform, the only one they can run on.
    public func run(_ suite: ImageTestSuite, image: Digest) async throws -> TestReport {
        switch try store.manifest(image).manifest {
        case .image(let manifest):
            return TestReport(image: image, results: try await run(suite, manifest: manifest, digest: image, commands: true))
        case .index(let index):
            // Every entry is tested or refused, none passed over: buildx's attestations (platform
            // unknown/unknown, annotated as such) are the only entries that are not images to test.
            let images = index.manifests.filter { $0.annotations?["vnd.docker.reference.type"] != "attestation-manifest" }
            for entry in images where !MediaType.isImageManifest(entry.mediaType) || entry.platform == nil {
                throw RuntimeError.setupFailed(instance: "tests", reason: "the index \(image) lists \(entry.digest) (\(entry.mediaType)) without a platform or not as an image manifest: only an index of images, each with its platform, can be tested")
            }
            guard !images.isEmpty else { throw RuntimeError.setupFailed(instance: "tests", reason: "the index \(image) holds no image manifest with a platform") }
            let host = images.first { $0.platform!.matches(Platform.host) }
            if !suite.commands.isEmpty && host == nil {
                throw RuntimeError.setupFailed(instance: "tests", reason: "the image has no \(Platform.host) image to run its command tests on (it has \(images.map { $0.platform!.description }.joined(separator: ", "))): command tests run on this machine's platform only; build \(Platform.host) too, or test on a machine of one of those platforms")
            }
            var results: [TestReport.Result] = []
            for child in images {
                guard case .image(let manifest) = try store.manifest(child.digest).manifest else {
                    throw RuntimeError.setupFailed(instance: "tests", reason: "\(child.digest) in the index \(image) is not an image manifest")
                }
                let platform = child.platform!.description
                var platformResults = try await run(suite, manifest: manifest, digest: child.digest, commands: child == host)
                if child != host {
                    // Said, not left out: a record of this run must not read as if the commands ran here.
                    platformResults += suite.commands.map {
                        .init(check: "command \($0.run) not run: commands run on \(Platform.host) only", passed: true, notRun: true)
                    }
                }
                results += platformResults.map { result in
                    var named = result
                    named.check = "\(platform): \(result.check)"
                    named.platform = platform
                    return named
                }
            }
            return TestReport(image: image, results: results)
        }
    }

    /// The suite's results on one image manifest; its commands only when `commands`.
    private func run(_ suite: ImageTestSuite, manifest: ImageManifest, digest image: Digest, commands: Bool) async throws -> [TestReport.Result] {
        var suite = suite
        if !commands { suite.commands = [] }
        let config = try store.imageConfig(manifest.config.digest).config
        var results: [TestReport.Result] = []
        if let check = suite.config { results += configResults(check, config) }
        guard !suite.files.isEmpty || !suite.commands.isEmpty else { return results }

        let work = NSTemporaryDirectory() + "imgbuild-test-\(image.hex.prefix(12))-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let rootfs = work + "/rootfs"
        try FileManager.default.createDirectory(atPath: rootfs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let layers = manifest.layers.map { (path: store.blobPath($0.digest), label: "layer \($0.digest)") }
        _ = try RootfsUnpacker(policy: UnpackPolicy(allowSetuid: true, maxBytes: ImageTester.maxUnpackBytes)).unpack(layers: layers, into: rootfs)
        // Without root the unpack cannot give files their owners: take them from the layers instead.
        let owners = geteuid() == 0 ? nil : try LayerInventory.owners(layers: manifest.layers.map { (store.blobPath($0.digest), $0.digest) })
        for check in suite.files { results.append(fileResult(check, rootfs: rootfs, owners: owners)) }
        if !suite.commands.isEmpty {
            let runner = try RuncRunner(stateRoot: work + "/runc")
            for (index, check) in suite.commands.enumerated() {
                let name = "command \(check.run)"
                do {
                    let outcome = try await runner.runCommand(check.run, id: "imgbuild-test-\(getpid())-\(index)", rootfs: rootfs, config: config,
                                                              image: "\(image)", directory: work + "/command-\(index)",
                                                              timeout: .milliseconds(check.timeoutMilliseconds))
                    var problems: [String] = []
                    if outcome.timedOut { problems.append("timed out after \(check.timeoutMilliseconds) ms") }
                    if outcome.status != check.exitCode { problems.append("exit status \(outcome.status), expected \(check.exitCode)") }
                    if let pattern = check.output, !matches(pattern, outcome.output) { problems.append("output does not match /\(pattern)/") }
                    results.append(.init(check: name, passed: problems.isEmpty,
                                         actual: problems.isEmpty ? nil : problems.joined(separator: "; ") + "; output: \(outcome.output.suffix(500))"))
                } catch {
                    results.append(.init(check: name, passed: false, actual: "could not run: \(error)"))
                }
            }
        }
        return results
    }

    func configResults(_ check: ImageTestSuite.ConfigCheck, _ config: ImageConfig) -> [TestReport.Result] {
        let execution = config.config
        var results: [TestReport.Result] = []
        func compare<T: Equatable>(_ name: String, _ expected: T?, _ actual: T?, _ show: (T?) -> String) {
            guard let expected else { return }
            results.append(.init(check: "config \(name) is \(show(expected))", passed: expected == actual, actual: expected == actual ? nil : show(actual)))
        }
        compare("entrypoint", check.entrypoint, execution?.entrypoint) { $0.map { "\($0)" } ?? "unset" }
        compare("cmd", check.cmd, execution?.cmd) { $0.map { "\($0)" } ?? "unset" }
        compare("user", check.user, execution?.user) { $0 ?? "unset" }
        compare("workdir", check.workdir, execution?.workingDir) { $0 ?? "unset" }
        let ports = execution?.exposedPorts.map { $0.keys.compactMap { Int($0.split(separator: "/").first ?? "") }.sorted() }
        compare("ports", check.ports?.sorted(), ports) { $0.map { "\($0)" } ?? "none" }
        for (name, value) in (check.env ?? [:]).sorted(by: { $0.key < $1.key }) {
            let actual = execution?.env?.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
            results.append(.init(check: "config env \(name)=\(value)", passed: actual == value, actual: actual == value ? nil : (actual.map { "\(name)=\($0)" } ?? "\(name) unset")))
        }
        return results
    }

    /// A file check, with every path resolved inside `rootfs` (``ImageRoot``), so that no symlink in the
    /// image can make it look at, or print, a file of the host. Existence, mode and owner are those of
    /// the path itself (a final symlink is not followed); `contains` reads what it leads to in the image.
    func fileResult(_ check: ImageTestSuite.FileCheck, rootfs: String, owners: [String: (uid: UInt32, gid: UInt32)]?) -> TestReport.Result {
        let root = ImageRoot(rootfs)
        var description = "file \(check.path) " + (check.exists ? "exists" : "is absent")
        if let mode = check.mode { description += ", mode \(String(mode, radix: 8))" }
        if let owner = check.owner { description += ", owner \(owner)" }
        if let pattern = check.contains { description += ", contains /\(pattern)/" }
        let status: stat?
        do { status = try root.status(check.path) } catch {
            return .init(check: description, passed: false, actual: "cannot look it up: \(error)")
        }
        guard check.exists else {
            return .init(check: description, passed: status == nil, actual: status == nil ? nil : "it exists")
        }
        guard let info = status else { return .init(check: description, passed: false, actual: "it does not exist") }
        var problems: [String] = []
        if let mode = check.mode, UInt32(info.st_mode) & 0o7777 != mode {
            problems.append("mode is \(String(UInt32(info.st_mode) & 0o7777, radix: 8))")
        }
        if let owner = check.owner {
            let recorded = owners.map { $0[String(check.path.drop { $0 == "/" })] }
            let actual = recorded.map { $0.map { "\($0.uid):\($0.gid)" } ?? "0:0" } ?? "\(info.st_uid):\(info.st_gid)"
            if actual != owner { problems.append("owner is \(actual)") }
        }
        if let pattern = check.contains {
            do {
                let data = try root.read(check.path, limit: ImageTester.containsLimit, beyondLimit: .truncate)
                if !matches(pattern, String(decoding: data, as: UTF8.self)) {
                    problems.append("its contents do not match; they begin: \(String(decoding: data.prefix(200), as: UTF8.self))")
                }
            } catch {
                if case .notRegularFile = error { problems.append("it is not a regular file") } else { problems.append("cannot read it: \(error)") }
            }
        }
        return .init(check: description, passed: problems.isEmpty, actual: problems.isEmpty ? nil : problems.joined(separator: "; "))
    }

    func matches(_ pattern: String, _ text: String) -> Bool {
        guard let expression = try? NSRegularExpression(pattern: pattern) else { return false }
        return expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }
}
