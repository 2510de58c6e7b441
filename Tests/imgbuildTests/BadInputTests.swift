import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// Every bad input is a clear error naming the Imagefile, line and column where it applies, exits
/// non-zero, and leaves the store as it was.
@Suite("Bad input is refused clearly and changes nothing", .mayBlock)
struct BadInputTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var imagefile: String
        /// Prepares the context folder.
        var setup: @Sendable (String) throws -> Void = { _ in }
        /// Every one of these must be in the error output.
        var expected: [String]
        var testDescription: String { name }
    }

    static let header = "name: bad/app\nversion: 1.0.0\n"

    static let cases: [Case] = [
        Case(name: "unknown top-level key", imagefile: header + "verison: 2.0.0\n",
             expected: ["Imagefile:3:1:", "unknown key 'verison'", "expected one of: name, version"]),
        Case(name: "unknown key in a copy entry", imagefile: header + "code:\n  - copy: a\n    to: /a\n    mdoe: \"0755\"\n",
             expected: ["Imagefile:6:5:", "unknown key 'mdoe' in a 'code' entry"]),
        Case(name: "wrong type: a section that is not a list", imagefile: header + "code: src\n",
             expected: ["Imagefile:3:7:", "'code' must be a list"]),
        Case(name: "wrong type: entrypoint as a string", imagefile: header + "config:\n  entrypoint: /app/run\n",
             expected: ["Imagefile:4:15:", "'entrypoint' must be a list of strings"]),
        Case(name: "wrong type: a port that is not a number", imagefile: header + "config:\n  ports: [http]\n",
             expected: ["Imagefile:4:11:", "a port must be a number from 1 to 65535"]),
        Case(name: "missing name", imagefile: "version: 1.0.0\n",
             expected: ["Imagefile:1:1:", "missing key 'name'"]),
        Case(name: "invalid name", imagefile: "name: Bad_Name!\nversion: 1.0.0\n",
             expected: ["Imagefile:1:7:", "'Bad_Name!' is not a valid repository name"]),
        Case(name: "invalid version", imagefile: "name: bad/app\nversion: 1.0\n",
             expected: ["Imagefile:2:10:", "'1.0' is not a semantic version", "expected three numbers"]),
        Case(name: "version with a leading v", imagefile: "name: bad/app\nversion: v1.2.3\n",
             expected: ["Imagefile:2:10:", "drop the leading 'v' (write 1.2.3)"]),
        Case(name: "version with a leading zero", imagefile: "name: bad/app\nversion: 1.02.3\n",
             expected: ["Imagefile:2:10:", "leading zero"]),
        Case(name: "mutable base by version", imagefile: header + "base: hello:1.0.0\n",
             expected: ["Imagefile:3:7:", "must name its image by digest"]),
        Case(name: "invalid YAML", imagefile: header + "code: [a, b\n",
             expected: ["Imagefile:4:1:", "not valid YAML"]),
        Case(name: "invalid mode", imagefile: header + "code:\n  - copy: a\n    to: /a\n    mode: \"0999\"\n",
             expected: ["Imagefile:6:11:", "'mode' must be octal"]),
        Case(name: "owner by name", imagefile: header + "code:\n  - copy: a\n    to: /a\n    owner: app\n",
             expected: ["Imagefile:6:12:", "'owner' must be numeric UID:GID"]),
        Case(name: "relative destination", imagefile: header + "code:\n  - copy: a\n    to: app/\n",
             expected: ["Imagefile:5:9:", "'to' must be an absolute path"]),
        Case(name: "missing file", imagefile: header + "code:\n  - copy: not-there.txt\n    to: /app/\n",
             expected: ["Imagefile:4:5:", "'not-there.txt' does not exist"]),
        Case(name: "path that escapes the context", imagefile: header + "code:\n  - copy: ../outside\n    to: /app/\n",
             expected: ["Imagefile:4:11:", "lies outside the build context"]),
        Case(name: "copy source that is a symlink out of the context",
             imagefile: header + "runtime:\n  - copy: etc-link\n    to: /etc/\n",
             setup: { dir in symlink("/etc", dir + "/etc-link") },
             expected: ["Imagefile:4:5:", "'etc-link' lies outside the build context"]),
        Case(name: "symlink inside a copied folder that escapes the context",
             imagefile: header + "code:\n  - copy: src/\n    to: /app/\n",
             setup: { dir in
                 write("x\n", to: dir + "/src/ok.txt")
                 symlink("../../../etc/passwd", dir + "/src/passwd")
             },
             expected: ["Imagefile:4:5:", "symlink 'src/passwd' -> '../../../etc/passwd' leads outside the build context"]),
        Case(name: "absolute symlink in the context",
             imagefile: header + "code:\n  - copy: src/\n    to: /app/\n",
             setup: { dir in
                 write("x\n", to: dir + "/src/ok.txt")
                 symlink("/etc/shadow", dir + "/src/shadow")
             },
             expected: ["Imagefile:4:5:", "symlink 'src/shadow' -> '/etc/shadow' leads outside the build context"]),
        Case(name: "fifo in the context",
             imagefile: header + "code:\n  - copy: src/\n    to: /app/\n",
             setup: { dir in
                 write("x\n", to: dir + "/src/ok.txt")
                 mkfifo(dir + "/src/pipe", 0o644)
             },
             expected: ["Imagefile:4:5:", "'src/pipe' is a fifo", "device files, sockets and fifos cannot go into an image"]),
        Case(name: "dependency without sha256",
             imagefile: header + "dependencies:\n  - archive: vendor.tar\n    to: /opt\n",
             expected: ["Imagefile:4:5:", "has no 'sha256'", "sha256sum"]),
        Case(name: "sha256 mismatch names both digests",
             imagefile: header + "dependencies:\n  - deb: \(busyboxDeb)\n    sha256: \(String(repeating: "ab", count: 32))\n",
             expected: ["Imagefile:4:5:", "does not match its pinned digest",
                        "sha256:\(String(repeating: "ab", count: 32))", "sha256:\(busyboxSHA256)"]),
        Case(name: "malformed sha256",
             imagefile: header + "dependencies:\n  - deb: x.deb\n    sha256: 12345\n",
             expected: ["Imagefile:5:13:", "'sha256' must be 64 lowercase hex digits"]),
        Case(name: "unreadable archive",
             imagefile: header + "dependencies:\n  - archive: garbage.tar.gz\n    sha256: GARBAGE_SHA\n    to: /opt\n",
             setup: { dir in write(String(repeating: "this is not an archive\n", count: 50), to: dir + "/garbage.tar.gz") },
             expected: ["Imagefile:4:5:", "cannot read archive 'garbage.tar.gz'"]),
        Case(name: "hostile archive entry climbing out with ..",
             imagefile: header + "dependencies:\n  - archive: evil.tar\n    sha256: EVIL_SHA\n    to: /opt\n",
             setup: { dir in
                 // GNU tar writes member names as given with -P.
                 write("pwned\n", to: dir + "/payload")
                 _ = try run("/bin/tar", ["-P", "--transform", "s,^.*payload$,../../../tmp/pwned,", "-cf", dir + "/evil.tar", dir + "/payload"])
             },
             expected: ["Imagefile:4:5:", "archive 'evil.tar' has an unsafe entry '../../../tmp/pwned'"]),
        Case(name: "url that is not http",
             imagefile: header + "dependencies:\n  - url: ftp://127.0.0.1/x.tar\n    sha256: \(busyboxSHA256)\n",
             expected: ["Imagefile:4:10:", "'url' must be an http:// or https:// address"]),
        Case(name: "url that cannot be fetched",
             imagefile: header + "dependencies:\n  - url: http://127.0.0.1:9/nothing.tar.gz\n    sha256: \(busyboxSHA256)\n    to: /opt\n",
             expected: ["Imagefile:4:5:", "cannot fetch 'http://127.0.0.1:9/nothing.tar.gz'"]),
        Case(name: "a platform listed twice",
             imagefile: header + "platforms: [linux/amd64, linux/arm64, linux/arm64/v8]\n",
             expected: ["Imagefile:3:39:", "the platform linux/arm64/v8 is listed twice (as linux/arm64 before)"]),
        Case(name: "an empty platforms list", imagefile: header + "platforms: []\n",
             expected: ["Imagefile:3:12:", "'platforms' is empty"]),
        Case(name: "platform and platforms both", imagefile: header + "platform: linux/amd64\nplatforms: [linux/arm64]\n",
             expected: ["Imagefile:3:11:", "'platform' and 'platforms' cannot both be given"]),
        Case(name: "a platform that is not os/architecture", imagefile: header + "platforms: [linux/amd64, arm64]\n",
             expected: ["Imagefile:3:26:", "a platform must be os/architecture[/variant] in lowercase letters and digits", "not 'arm64'"]),
        Case(name: "a kernel's architecture name", imagefile: header + "platforms: [linux/x86_64]\n",
             expected: ["Imagefile:3:13:", "'x86_64' is not an image architecture name: write linux/amd64"]),
        Case(name: "too many platforms", imagefile: header + "platforms: [" + (0..<65).map { "linux/a\($0)" }.joined(separator: ", ") + "]\n",
             expected: ["Imagefile:3:12:", "'platforms' lists 65 platforms; an image has at most 64"]),
        Case(name: "a dependency for a platform that is not built",
             imagefile: header + "platforms: [linux/amd64]\ndependencies:\n  - deb: \(busyboxDeb)\n    sha256: \(busyboxSHA256)\n    platform: linux/arm64\n",
             expected: ["Imagefile:7:15:", "this dependency is for linux/arm64, which is not built", "add it to 'platforms'"]),
        Case(name: "a dependency for another platform than the one built, with no platform named",
             imagefile: header + "dependencies:\n  - deb: \(busyboxDeb)\n    sha256: \(busyboxSHA256)\n    platform: linux/s390x\n",
             expected: ["Imagefile:4:5:", "this dependency is for linux/s390x, which is not built (this build is for "]),
        Case(name: "packages without repositories", imagefile: header + "packages: [busybox-static]\n",
             expected: ["Imagefile:3:12:", "'packages' needs 'repositories'"]),
        Case(name: "repositories without packages", imagefile: header + repository("http://127.0.0.1:9/debian"),
             expected: ["Imagefile:4:5:", "'repositories' is given but 'packages' is not"]),
        Case(name: "a repository without a keyring",
             imagefile: header + "repositories:\n  - url: http://127.0.0.1:9/debian\n    suite: bookworm\npackages: [a]\n",
             expected: ["Imagefile:4:5:", "a repository needs 'keyring'"]),
        Case(name: "a repository url that is not http", imagefile: header + repository("ftp://mirror/debian") + "packages: [a]\n",
             expected: ["Imagefile:4:10:", "'url' must be an http:// or https:// address, one made of '${VARIABLE}'s"]),
        Case(name: "a repository url with a bad variable", imagefile: header + repository("${1X}/debian") + "packages: [a]\n",
             expected: ["Imagefile:4:10:", "'${1X}' in 'url' is not an environment variable name"]),
        Case(name: "two packages in one entry", imagefile: header + repository("http://127.0.0.1:9/d") + "packages: [\"a | b\"]\n",
             expected: ["Imagefile:7:12:", "'a | b' is more than one package"]),
        Case(name: "a package with a broken version relation", imagefile: header + repository("http://127.0.0.1:9/d") + "packages: [\"libc6 (= )\"]\n",
             expected: ["Imagefile:7:12:", "'libc6 (= )' is not a package", "is not a Debian version"]),
        Case(name: "a package listed twice", imagefile: header + repository("http://127.0.0.1:9/d") + "packages: [libc6, \"libc6 (>= 2)\"]\n",
             expected: ["Imagefile:7:19:", "the package libc6 is listed twice"]),
        Case(name: "a package with an architecture", imagefile: header + repository("http://127.0.0.1:9/d") + "packages: [\"libc6:arm64\"]\n",
             expected: ["Imagefile:7:12:", "the architecture comes from the image's platform"]),
        Case(name: "packages on a base image",
             imagefile: header + "base: hello@sha256:\(String(repeating: "a", count: 64))\n" + repository("http://127.0.0.1:9/d") + "packages: [libc6]\n",
             expected: ["Imagefile:8:12:", "'packages' cannot go on a base image yet"]),
        Case(name: "packages with no lock", imagefile: header + repository("http://127.0.0.1:9/d") + "packages: [libc6]\n",
             expected: ["Imagefile:7:12:", "Imagefile.lock, which does not exist: run 'imgbuild lock"]),
    ]

    static func repository(_ url: String) -> String {
        "repositories:\n  - url: \(url)\n    suite: bookworm\n    keyring: keys/archive.gpg\n"
    }

    /// One store with a good image in it, shared by every case: it must not change.
    static let sharedStore: (path: String, snapshot: [String]) = {
        let context = makeTemporaryDirectory("good")
        write("name: good/app\nversion: 1.0.0\ncode:\n  - copy: a.txt\n    to: /a.txt\n", to: context + "/Imagefile")
        write("a\n", to: context + "/a.txt")
        let store = makeTemporaryDirectory("shared-store") + "/store"
        let result = try! imgbuild(["build", context, "--store", store])
        precondition(result.status == 0, result.stderr)
        return (store, snapshot(store))
    }()

    @Test("bad input", arguments: cases)
    func refused(_ testCase: Case) throws {
        let context = makeTemporaryDirectory("bad")
        try testCase.setup(context)
        var text = testCase.imagefile
        for (placeholder, file) in [("GARBAGE_SHA", "garbage.tar.gz"), ("EVIL_SHA", "evil.tar")] where text.contains(placeholder) {
            let sum = try run("/usr/bin/sha256sum", [context + "/" + file]).stdout.prefix(64)
            text = text.replacingOccurrences(of: placeholder, with: String(sum))
        }
        write(text, to: context + "/Imagefile")

        let store = BadInputTests.sharedStore
        let result = try imgbuild(["build", context, "--store", store.path])
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty, "no digest may be printed")
        for needle in testCase.expected {
            #expect(result.stderr.contains(needle), "missing '\(needle)' in: \(result.stderr)")
        }
        #expect(snapshot(store.path) == store.snapshot, "the store changed")

        // Into a store that does not exist yet: nothing is created.
        let fresh = makeTemporaryDirectory("fresh") + "/store"
        let again = try imgbuild(["build", context, "--store", fresh])
        #expect(again.status != 0)
        #expect(!FileManager.default.fileExists(atPath: fresh), "a failed build created the store")
    }

    @Test("a device file in the context is refused (needs root to create one)", .enabled(if: getuid() == 0))
    func deviceFile() throws {
        let context = makeTemporaryDirectory("device")
        write(Self.header + "code:\n  - copy: src/\n    to: /app/\n", to: context + "/Imagefile")
        write("x\n", to: context + "/src/ok.txt")
        #expect(mknod(context + "/src/null", S_IFCHR | 0o666, (1 << 8) | 3) == 0)  // /dev/null: major 1, minor 3
        let result = try imgbuild(["build", context, "--store", makeTemporaryDirectory("s") + "/store"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("'src/null' is a character device"))
    }

    @Test("no Imagefile at the path")
    func missingImagefile() throws {
        let result = try imgbuild(["build", makeTemporaryDirectory("empty"), "--store", makeTemporaryDirectory("s") + "/store"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("no Imagefile at"))
    }

    @Test("a folder that is not a store is refused")
    func notAStore() throws {
        let context = makeTemporaryDirectory("ctx")
        write("name: good/app\nversion: 1.0.0\ncode:\n  - copy: a.txt\n    to: /a.txt\n", to: context + "/Imagefile")
        write("a\n", to: context + "/a.txt")
        let folder = makeTemporaryDirectory("not-a-store")
        write("precious\n", to: folder + "/notes.txt")
        let result = try imgbuild(["build", context, "--store", folder])
        #expect(result.status != 0)
        #expect(result.stderr.contains("is not an imgbuild store") && result.stderr.contains("--store DIR"), "imgbuild names its flag: \(result.stderr)")
        #expect(snapshot(folder) == ["notes.txt 9"])
        // The same store error met while loading a base image keeps the flag too.
        write("name: good/app\nversion: 1.0.0\nbase: hello@sha256:\(String(repeating: "0", count: 64))\ncode:\n  - copy: a.txt\n    to: /a.txt\n",
              to: context + "/Imagefile")
        let withBase = try imgbuild(["build", context, "--store", folder])
        #expect(withBase.status != 0 && withBase.stderr.contains("base image") && withBase.stderr.contains("--store DIR"), "\(withBase.stderr)")
        #expect(snapshot(folder) == ["notes.txt 9"])
    }
}
