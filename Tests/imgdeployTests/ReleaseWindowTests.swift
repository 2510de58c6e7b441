import CommandLineTesting
import Foundation
import Testing

/// Six versions of the hello example (`6.0.1` … `6.0.6`, each page saying its version) in a store of their own,
/// so that a test can take the store away.
struct HelloSeries {
    let store: String
    var digests: [String] = []
    var versions: [String] { (1...digests.count).map { "6.0.\($0)" } }

    init(count: Int = 6) throws {
        store = makeTemporaryDirectory("series-store")
        for number in 1...count {
            let version = "6.0.\(number)"
            let context = makeTemporaryDirectory("series-\(version)")
            try FileManager.default.removeItem(atPath: context)
            try FileManager.default.copyItem(atPath: repositoryRoot + "/Imagefiles/hello", toPath: context)
            let imagefile = try String(contentsOfFile: context + "/Imagefile", encoding: .utf8)
            write(imagefile.replacingOccurrences(of: "../../fixtures", with: repositoryRoot + "/fixtures").replacingOccurrences(of: "1.0.0", with: version),
                  to: context + "/Imagefile")
            let page = try String(contentsOfFile: context + "/www/index.html", encoding: .utf8)
            write(page.replacingOccurrences(of: "1.0.0", with: version), to: context + "/www/index.html")
            let build = try imgbuild(["build", context, "--store", store])
            guard build.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: build.stderr]) }
            digests.append(build.lastLine)
        }
    }

    func spec(_ index: Int, port: Int, keep: Int, source: String? = nil) -> String {
        let path = makeTemporaryDirectory("spec") + "/release.yaml"
        write("""
        service: hello
        image: hello@\(digests[index])
        source: \(source ?? store)
        replicas: 1
        port: 8080
        listen: 127.0.0.1:\(port)
        keep: \(keep)
        stopTimeout: 1s
        health: { path: /healthz, interval: 200ms, timeout: 1s, healthyAfter: 1, deadline: 15s }
        """, to: path)
        return path
    }

    /// Every blob `indexes` reach in the source store: each manifest, its config and its layers, and the same
    /// for the artifacts that refer to it (its test record).
    func blobs(of indexes: [Int]) throws -> Set<String> {
        var reached = Set<String>()
        func manifest(_ hex: String) throws {
            reached.insert(hex)
            let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: store + "/blobs/sha256/" + hex))) as? [String: Any] ?? [:]
            let descriptors = [manifest["config"] as? [String: Any] ?? [:]] + (manifest["layers"] as? [[String: Any]] ?? [])
            for descriptor in descriptors { reached.insert(String((descriptor["digest"] as? String ?? "").dropFirst("sha256:".count))) }
        }
        let artifacts = store + "/repositories/hello/artifacts"
        for index in indexes {
            let hex = String(digests[index].dropFirst("sha256:".count))
            try manifest(hex)
            for tag in try FileManager.default.contentsOfDirectory(atPath: artifacts) where tag.hasPrefix("sha256-" + hex + ".") {
                let descriptor = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: artifacts + "/" + tag))) as? [String: Any] ?? [:]
                try manifest(String((descriptor["digest"] as? String ?? "").dropFirst("sha256:".count)))
            }
        }
        return reached
    }
}

extension DeployTests {
    static let series = Result { try HelloSeries() }

    /// The release folders the deployer holds, by digest.
    func releaseFolders(_ state: String) -> Set<String> {
        Set(((try? FileManager.default.contentsOfDirectory(atPath: state + "/releases")) ?? []).filter { !$0.hasPrefix(".partial-") })
    }

    func folders(_ series: HelloSeries, _ indexes: [Int]) -> Set<String> {
        Set(indexes.map { "sha256-" + series.digests[$0].dropFirst("sha256:".count) })
    }

    @Test("keep: 3 over six deploys leaves three releases and only their blobs; a rollback inside the window needs no source, one outside fetches again or fails clearly; gc after down empties the store")
    func rollbackWindow() throws {
        let series = try DeployTests.series.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        for index in 0..<6 {
            let result = try daemon.command(["apply", series.spec(index, port: port, keep: 3)])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(try frontPage(port).contains("hello \(series.versions[index])"))
            #expect(releaseFolders(daemon.state) == folders(series, Array(max(0, index - 2)...index)), "after deploying \(series.versions[index])")
        }
        // The last deploy said what it removed.
        let status = try daemon.status("hello")
        let kept = (status["releases"] as? [[String: Any]] ?? []).map { ($0["image"] as? String ?? "", $0["bytes"] as? Int ?? 0) }
        #expect(kept.map(\.0) == [5, 4, 3].map { "hello@" + series.digests[$0] }, "\(kept)")
        #expect(kept.allSatisfy { $0.1 > 100_000 }, "each kept release has its size on disk: \(kept)")
        let text = try daemon.command(["status", "hello"]).stdout
        #expect(text.contains("serving  hello@\(series.digests[5])") && text.contains("kept     hello@\(series.digests[3])"), "\(text)")

        // The deployer's store holds exactly what the three kept releases reach, and its own fsck agrees.
        let stored = Set(try FileManager.default.contentsOfDirectory(atPath: daemon.state + "/store/blobs/sha256"))
        #expect(stored == (try series.blobs(of: [3, 4, 5])))
        let fsck = try imgbuild(["fsck", "--store", daemon.state + "/store"])
        #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")

        // Inside the window: no source needed.
        let away = series.store + ".away"
        try FileManager.default.moveItem(atPath: series.store, toPath: away)
        defer { try? FileManager.default.moveItem(atPath: away, toPath: series.store) }
        let inside = try daemon.command(["rollback", "hello", "--to", series.digests[3]])
        #expect(inside.status == 0, "\(inside.stdout)\(inside.stderr)")
        #expect(try frontPage(port).contains("hello 6.0.4"))

        // Outside it, with the source gone: a clear failure, and traffic stays where it was.
        let gone = try daemon.command(["rollback", "hello", "--to", series.digests[0]])
        #expect(gone.status != 0)
        #expect(gone.stderr.contains("is no longer kept here (outside the rollback window of keep: 3 releases, or removed while the service was down), and fetching it again failed")
            && gone.stderr.contains(series.store), "\(gone.stdout)\(gone.stderr)")
        for _ in 0..<5 { #expect(try frontPage(port).contains("hello 6.0.4")) }

        // With the source back, it is fetched again, and the record says so.
        try FileManager.default.moveItem(atPath: away, toPath: series.store)
        let back = try daemon.command(["rollback", "hello", "--to", series.digests[0], "--json"])
        #expect(back.status == 0, "\(back.stdout)\(back.stderr)")
        let record = try JSONSerialization.jsonObject(with: Data(back.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(record["refetched"] as? Bool == true, "\(back.stdout)")
        #expect(try frontPage(port).contains("hello 6.0.1"))
        // The window is now 6.0.1, 6.0.4, 6.0.6: 6.0.5 went.
        #expect(releaseFolders(daemon.state) == folders(series, [0, 3, 5]))
        let removed = (record["removed"] as? [String: Any])?["removed"] as? [[String: Any]] ?? []
        #expect(removed.map { $0["digest"] as? String } == [series.digests[4]], "\(back.stdout)")

        // A wider window takes in 6.0.5 again, which is no longer here: status says so instead of a stale size.
        let wider = try daemon.command(["apply", series.spec(0, port: port, keep: 4)])
        #expect(wider.status == 0, "\(wider.stdout)\(wider.stderr)")
        let widened = (try daemon.status("hello")["releases"] as? [[String: Any]] ?? []).map { ($0["image"] as? String ?? "", $0["bytes"] as? Int) }
        #expect(widened.map(\.0) == [0, 3, 5, 4].map { "hello@" + series.digests[$0] } && widened.last?.1 == nil && widened.dropLast().allSatisfy { $0.1 != nil },
                "\(widened)")
        #expect(try daemon.command(["status", "hello"]).stdout.contains("not here (a rollback to it fetches it again)"))

        // Nothing outside a window: gc has nothing to do. After `down`, the service keeps nothing.
        let idle = try daemon.command(["gc", "--dry-run", "--json"])
        #expect(((try JSONSerialization.jsonObject(with: Data(idle.stdout.utf8)) as? [String: Any])?["removed"] as? [Any])?.isEmpty == true, "\(idle.stdout)")
        #expect(try daemon.command(["down", "hello"]).status == 0)
        let dry = try daemon.command(["gc", "--dry-run"])
        #expect(dry.status == 0 && dry.stdout.contains("would remove 3 release(s)"), "\(dry.stdout)\(dry.stderr)")
        #expect(releaseFolders(daemon.state).count == 3, "a dry run removes nothing")
        let real = try daemon.command(["gc"])
        #expect(real.status == 0 && real.stdout.contains("removed 3 release(s)"), "\(real.stdout)\(real.stderr)")
        #expect(releaseFolders(daemon.state).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.state + "/store/blobs/sha256").isEmpty)
        #expect(try imgbuild(["fsck", "--store", daemon.state + "/store"]).status == 0)
    }

    @Test("gc run over and over during rollouts and rollbacks removes nothing they need; kill -9 of the daemon in the middle of a removal leaves the next start clean")
    func collectionRacesRollouts() throws {
        let series = try DeployTests.series.get()
        var daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        // A second client that collects without pause while the rollouts run.
        let stop = makeTemporaryDirectory("gc-loop") + "/stop"
        let loop = Process()
        loop.executableURL = URL(fileURLWithPath: "/bin/sh")
        loop.arguments = ["-c", "while [ ! -e \(stop) ]; do \(imgdeployBinary) gc --state \(daemon.state) >/dev/null 2>&1; done"]
        try loop.run()
        for (index, keep) in [(0, 1), (1, 1), (2, 1), (1, 1), (3, 2), (0, 2)] {
            let result = try daemon.command(["apply", series.spec(index, port: port, keep: keep)])
            #expect(result.status == 0, "\(series.versions[index]): \(result.stdout)\(result.stderr)")
            #expect(try frontPage(port).contains("hello \(series.versions[index])"))
        }
        let rollback = try daemon.command(["rollback", "hello"])
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        #expect(try frontPage(port).contains("hello 6.0.4"))
        write("", to: stop)
        loop.waitUntilExit()
        #expect(releaseFolders(daemon.state) == folders(series, [3, 0]))

        // Deploy three more releases to remove, take the service down, and kill the daemon while gc removes them.
        for delay in [0, 10_000, 40_000, 120_000] {
            for index in [1, 2, 4] {
                let result = try daemon.command(["apply", series.spec(index, port: port, keep: 3)])
                #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            }
            #expect(try daemon.command(["down", "hello"]).status == 0)
            let gc = Process()
            gc.executableURL = URL(fileURLWithPath: imgdeployBinary)
            gc.arguments = ["gc", "--state", daemon.state]
            gc.standardOutput = FileHandle.nullDevice
            gc.standardError = FileHandle.nullDevice
            try gc.run()
            usleep(useconds_t(delay))
            daemon.kill9()
            gc.waitUntilExit()
            daemon = try DeployDaemon(state: daemon.state)
            // The new daemon finishes the removal: every folder left is a complete release, then none is left.
            for _ in 0..<100 where !releaseFolders(daemon.state).isEmpty { usleep(100_000) }
            #expect(releaseFolders(daemon.state).isEmpty, "after kill -9 at \(delay) µs: \(releaseFolders(daemon.state))")
            let fsck = try imgbuild(["fsck", "--store", daemon.state + "/store"])
            #expect(fsck.status == 0, "\(fsck.stdout)\(fsck.stderr)")
        }
        // And it deploys again from a clean state.
        let again = try daemon.command(["apply", series.spec(5, port: port, keep: 3)])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(try frontPage(port).contains("hello 6.0.6"))
    }
}

extension DeployTests {
    @Test("down leaves no front behind, even when the daemon's watchdog finds the front gone while down stops it")
    func downLeavesNoFront() throws {
        let series = try DeployTests.series.get()
        let daemon = try DeployDaemon()
        defer { daemon.stop() }
        let port = freePort()
        for round in 0..<6 {
            let applied = try daemon.command(["apply", series.spec(round % 2, port: port, keep: 1)])
            #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
            #expect(try daemon.command(["down", "hello"]).status == 0)
            // The watchdog checks every second: give it two chances to start a front again.
            usleep(2_200_000)
            let fronts = try run("/usr/bin/pgrep", ["-f", daemon.state + "/fronts/hello.sock"])
            #expect(fronts.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "round \(round): a front still runs: \(fronts.stdout)")
            #expect(try run("/usr/bin/curl", ["-s", "--max-time", "2", "http://127.0.0.1:\(port)/"]).status != 0, "round \(round): nothing answers")
        }
    }
}
