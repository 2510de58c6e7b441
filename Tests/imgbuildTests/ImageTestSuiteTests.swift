import CommandLineTesting
import Foundation
import Testing
import TestScheduling

@Suite("Image tests (the Imagefile's tests: section)", .mayBlock, .serialized)
struct ImageTestSuiteTests {
    /// The hello example with extra tests appended.
    func context(tests: String) throws -> String {
        let folder = makeTemporaryDirectory("tested")
        try FileManager.default.removeItem(atPath: folder)
        try FileManager.default.copyItem(atPath: repositoryRoot + "/Imagefiles/hello", toPath: folder)
        var imagefile = try String(contentsOfFile: folder + "/Imagefile", encoding: .utf8)
        imagefile = imagefile.replacingOccurrences(of: "../../fixtures", with: repositoryRoot + "/fixtures")
        imagefile = String(imagefile[..<imagefile.range(of: "\ntests:")!.lowerBound]) + "\n" + tests
        write(imagefile, to: folder + "/Imagefile")
        return folder
    }

    @Test("a failing test prevents the tag and names the assertion with the value found; imgbuild test reports it too")
    func failingTestPreventsTag() throws {
        let store = makeTemporaryDirectory("tested-store")
        let folder = try context(tests: """
        tests:
          files:
            - { path: /app/hello, mode: "0700" }
            - { path: /srv/www/index.html, contains: "hello 9\\\\.9\\\\.9" }
            - { path: /bin/busybox, absent: true }
          config:
            user: "0:0"
            env: { PORT: "9999" }

        """)
        let build = try imgbuild(["build", folder, "--store", store])
        #expect(build.status != 0)
        #expect(build.stderr.contains("failed its tests, so the version was not tagged"), "\(build.stderr)")
        for expected in ["file /app/hello exists, mode 700: mode is 755", "contains /hello 9\\.9\\.9/: its contents do not match",
                         "file /bin/busybox is absent: it exists", "config user is 0:0: 65534:65534", "config env PORT=9999: PORT=8080"] {
            #expect(build.stderr.contains(expected), "missing: \(expected)\n\(build.stderr)")
        }
        #expect(try imgbuild(["tags", "hello", "--store", store]).stdout.isEmpty, "no version was tagged")

        // The same image by digest: `imgbuild test` finds the suite in the image and reports the same failures.
        let digest = try #require(build.stderr.split(separator: "\n").first { $0.hasPrefix("testing hello@") }?.split(separator: "@").last.map(String.init))
        #expect(try imgbuild(["tag", "hello", "0.0.1-failing", digest, "--store", store]).status == 0)
        let test = try imgbuild(["test", "hello@" + digest, "--store", store])
        #expect(test.status != 0 && test.stdout.contains("✗ file /app/hello exists, mode 700: mode is 755"), "\(test.stdout)\(test.stderr)")
        #expect(test.stderr.contains("failed 5 of 5 tests"), "\(test.stderr)")
    }

    @Test("command tests run inside the image with runc; a pass is recorded and travels as a referrer", .enabled(if: getuid() == 0, "runc needs root, as CI has"))
    func commandTests() throws {
        let store = makeTemporaryDirectory("tested-store")
        let passing = try context(tests: """
        tests:
          commands:
            - { run: ["/bin/busybox", "cat", "/srv/www/healthz"], output: "^ok" }
            - { run: ["/bin/busybox", "id", "-u"], output: "65534" }
            - { run: ["/bin/busybox", "sh", "-c", "wget -q -T 1 -O- http://1.1.1.1/ || exit 3"], exitCode: 3, timeout: 20s }

        """)
        let build = try imgbuild(["build", passing, "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        #expect(build.stderr.contains("✓ command [\"/bin/busybox\", \"id\", \"-u\"]") && build.stderr.contains("test results sha256:"), "\(build.stderr)")
        let again = try imgbuild(["test", "hello:1.0.0", "--store", store])
        #expect(again.status == 0 && again.stdout.contains("passed: 3 tests"), "\(again.stdout)\(again.stderr)")

        let failing = try context(tests: """
        tests:
          commands:
            - { run: ["/bin/busybox", "sh", "-c", "echo broken; exit 2"], output: "^fine" }
            - { run: ["/bin/busybox", "sleep", "30"], timeout: 1s }

        """)
        let refused = try imgbuild(["build", failing, "--store", store, "--version", "1.0.1"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("exit status 2, expected 0; output does not match /^fine/; output: broken"), "\(refused.stderr)")
        #expect(refused.stderr.contains("timed out after 1000 ms"), "\(refused.stderr)")
        #expect(!(try imgbuild(["tags", "hello", "--store", store]).stdout.contains("1.0.1")))
    }

    @Test("without root, owner checks use the owners the layers record", .enabled(if: getuid() == 0, "switching to nobody needs root"))
    func ownersWithoutRoot() throws {
        let folder = try context(tests: """
        tests:
          files:
            - { path: /app/hello, owner: "0:0", mode: "0755" }
            - { path: /srv/www/index.html, owner: "65534:65534" }

        """)
        // Everything nobody needs, in folders nobody can read, wherever the checkout lives.
        let scratch = makeTemporaryDirectory("nobody")
        chmod(scratch, 0o777)
        try FileManager.default.copyItem(atPath: imgbuildBinary, toPath: scratch + "/imgbuild")
        try FileManager.default.copyItem(atPath: busyboxDeb, toPath: folder + "/busybox-static.deb")
        let imagefile = try String(contentsOfFile: folder + "/Imagefile", encoding: .utf8)
        write(imagefile.replacingOccurrences(of: busyboxDeb, with: "busybox-static.deb"), to: folder + "/Imagefile")
        _ = try run("/bin/chmod", ["-R", "a+rX", folder, scratch])
        var parent = URL(fileURLWithPath: folder).deletingLastPathComponent()
        while parent.path != "/" { chmod(parent.path, 0o755 | (try FileManager.default.attributesOfItem(atPath: parent.path)[.posixPermissions] as! mode_t)); parent.deleteLastPathComponent() }
        let command = "IMGBUILD_STORE=\(scratch)/store IMGBUILD_CACHE=\(scratch)/cache TMPDIR=\(scratch) \(scratch)/imgbuild build \(folder)"
        let result = try run("/bin/su", ["-s", "/bin/sh", "nobody", "-c", command])
        #expect(result.status != 0, "index.html is owned by 0:0 in the layer, not 65534:65534")
        #expect(result.stderr.contains("✓ file /app/hello exists, mode 755, owner 0:0"), "\(result.stderr)")
        #expect(result.stderr.contains("✗ file /srv/www/index.html exists, owner 65534:65534: owner is 0:0"), "\(result.stderr)")
    }
}
