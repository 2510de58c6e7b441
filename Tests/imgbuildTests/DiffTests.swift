import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// `imgbuild diff`, checked against what `tar -tv` says of the layers and `dpkg-deb` built.
@Suite("imgbuild diff", .mayBlock)
struct DiffTests {
    /// A .deb made by dpkg-deb: the package `imgdiff-tool` at `version`, holding one file. (Versions of
    /// different lengths, so that tar's sizes show the change too.)
    func debianPackage(version: String, in folder: String) throws -> (path: String, sha256: String) {
        let root = folder + "/pkg-\(version)"
        write("Package: imgdiff-tool\nVersion: \(version)\nArchitecture: amd64\nMaintainer: imgbuild tests <tests@imgbuild.invalid>\nDescription: a package for diff tests\n",
              to: root + "/DEBIAN/control")
        write("tool \(version)\n", to: root + "/usr/share/imgdiff/tool.txt")
        let deb = folder + "/tool-\(version).deb"
        let built = try run("/usr/bin/dpkg-deb", ["--build", "--root-owner-group", root, deb])
        #expect(built.status == 0, "\(built.stderr)")
        return (deb, String(try run("/usr/bin/sha256sum", [deb]).stdout.prefix(64)))
    }

    /// A context for `diff/app` at `version`.
    func context(version: String, package: String, files: [String: String], scriptMode: Int, env: String) throws -> String {
        let folder = makeTemporaryDirectory("diff-\(version)")
        let deb = try debianPackage(version: package, in: folder)
        write("""
            name: diff/app
            version: \(version)
            dependencies:
              - deb: \(deb.path)
                sha256: \(deb.sha256)
            runtime:
              - copy: data/
                to: /data/
            code:
              - copy: app.txt
                to: /app/app.txt
            config:
              env: { MODE: \(env) }

            """, to: folder + "/Imagefile")
        write("the same in both\n", to: folder + "/app.txt")
        for (name, text) in files { write(text, to: folder + "/data/" + name) }
        write("#!/bin/sh\necho hello\n", to: folder + "/data/script.sh", mode: scriptMode)
        return folder
    }

    /// Every regular file the image's layers leave (no whiteouts in these images), from `tar -tvzf` of each layer: path → (mode, size).
    func tarListing(store: String, digest: String) throws -> [String: (mode: String, size: Int)] {
        func blob(_ digest: String) -> String { store + "/blobs/sha256/" + digest.dropFirst(7) }
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: blob(digest)))) as? [String: Any] ?? [:]
        var files: [String: (String, Int)] = [:]
        for layer in manifest["layers"] as? [[String: Any]] ?? [] {
            let listing = try run("/bin/tar", ["-tvzf", blob(layer["digest"] as! String)])
            for line in listing.stdout.split(separator: "\n") where line.hasPrefix("-") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                files[String(fields[5...].joined(separator: " "))] = (String(fields[0]), Int(fields[2]) ?? -1)
            }
        }
        return files
    }

    @Test("diff of two versions: layers shared and replaced, files added, removed and changed as tar -tv says, the package upgrade, the config change")
    func twoVersions() throws {
        let store = makeTemporaryDirectory("store") + "/store"
        let a = try context(version: "1.0.0", package: "1.0-1", files: ["keep.txt": "kept\n", "gone.txt": "gone\n", "change.txt": "short\n"], scriptMode: 0o644, env: "one")
        let b = try context(version: "1.1.0", package: "1.0-12", files: ["keep.txt": "kept\n", "new.txt": "new\n", "change.txt": "a longer text\n"], scriptMode: 0o755, env: "two")
        let first = try imgbuild(["build", a, "--store", store]), second = try imgbuild(["build", b, "--store", store])
        #expect(first.status == 0 && second.status == 0, "\(first.stderr)\(second.stderr)")

        let result = try imgbuild(["diff", "diff/app:1.0.0", "diff/app:1.1.0", "--format", "json", "--store", store])
        #expect(result.status == 0, "\(result.stderr)")
        let file = makeTemporaryDirectory("diff-json") + "/diff.json"
        write(result.stdout, to: file)
        #expect(try run("/usr/bin/python3", ["-m", "json.tool", file]).status == 0, "one JSON document: \(result.stdout)")
        let diff = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]

        // Files, against tar's own listing of both images' layers.
        let before = try tarListing(store: store, digest: first.lastLine), after = try tarListing(store: store, digest: second.lastLine)
        var expected: [String: String] = [:]
        for path in Set(before.keys).union(after.keys) {
            switch (before[path], after[path]) {
            case (nil, _?): expected[path] = "added"
            case (_?, nil): expected[path] = "removed"
            case (let old?, let new?) where old.mode != new.mode || old.size != new.size: expected[path] = "changed"
            default: break
            }
        }
        var reported: [String: String] = [:]
        for file in diff["files"] as? [[String: Any]] ?? [] { reported[file["path"] as! String] = file["change"] as? String }
        #expect(!expected.isEmpty && reported == expected, "diff says \(reported), tar says \(expected)")
        #expect(expected["data/new.txt"] == "added" && expected["data/gone.txt"] == "removed" && expected["data/script.sh"] == "changed")
        let script = (diff["files"] as? [[String: Any]] ?? []).first { $0["path"] as? String == "data/script.sh" }
        #expect((script?["before"] as? [String: Any])?["mode"] as? String == "0644" && (script?["after"] as? [String: Any])?["mode"] as? String == "0755")

        // Layers: the code layer is the same file in both, the others differ.
        let layers = diff["layers"] as? [String: [String]] ?? [:]
        #expect(layers["shared"]?.count == 1 && layers["removed"]?.count == 2 && layers["added"]?.count == 2, "\(layers)")

        let packages = diff["packages"] as? [[String: Any]] ?? []
        #expect(packages.count == 1 && packages.first?["name"] as? String == "imgdiff-tool:amd64" && packages.first?["change"] as? String == "upgraded"
            && packages.first?["before"] as? String == "1.0-1" && packages.first?["after"] as? String == "1.0-12", "\(packages)")
        let config = (diff["config"] as? [[String: Any]] ?? []).map { "\($0["field"] as? String ?? ""): \($0["before"] as? String ?? "-") → \($0["after"] as? String ?? "-")" }
        #expect(config.contains("Env.MODE: one → two"), "\(config)")

        // The same diff for people, and the reverse direction reads as a downgrade.
        let text = try imgbuild(["diff", "diff/app:1.0.0", "diff/app:1.1.0", "--store", store])
        #expect(text.stdout.contains("+ /data/new.txt") && text.stdout.contains("- /data/gone.txt") && text.stdout.contains("mode 0644 → 0755")
            && text.stdout.contains("upgraded imgdiff-tool:amd64 1.0-1 → 1.0-12"), "\(text.stdout)")
        let reverse = try imgbuild(["diff", "diff/app:1.1.0", "diff/app:1.0.0", "--store", store])
        #expect(reverse.stdout.contains("downgraded imgdiff-tool:amd64 1.0-12 → 1.0-1"), "\(reverse.stdout)")
        let same = try imgbuild(["diff", "diff/app:1.0.0", "diff/app@\(first.lastLine)", "--store", store])
        #expect(same.status == 0 && same.stdout.contains("no differences"), "\(same.stdout)")
        let missing = try imgbuild(["diff", "diff/app:1.0.0", "diff/app:9.9.9", "--store", store])
        #expect(missing.status != 0 && missing.stderr.contains("9.9.9"), "\(missing.stderr)")
    }
}
