import CommandLineTesting
import Foundation

/// A build context made by the tests, in one of two "machines": the same files, made differently.
///
/// The second variant creates files in the opposite order, with other permission bits (the executable
/// bit kept), other owners, other mtimes and under another umask, which must not change any digest.
struct TestContext {
    enum Variant { case first, second }

    let directory: String
    /// An archive dependency (the same file for every variant: its bytes are pinned by digest).
    let archivePath: String
    let archiveSHA256: String

    /// The Imagefile text; `includeDeb` adds the busybox package, `bigFile` a 24 MiB file that spans
    /// several zstd jobs.
    static func imagefile(archive: String, sha256: String, includeDeb: Bool, multiPlatform: Bool = false) -> String {
        var text = """
        name: repro/app
        version: 1.0.0
        \(multiPlatform ? "platforms: [linux/amd64, linux/arm64]" : "platform: linux/amd64")
        dependencies:

        """
        if includeDeb {
            text += "  - deb: \(busyboxDeb)\n    sha256: \(busyboxSHA256)\n" + (multiPlatform ? "    platform: linux/amd64\n" : "")
        }
        if includeDeb && multiPlatform {
            text += """
              - deb: \(repositoryRoot)/fixtures/debs/busybox-static-arm64.deb
                sha256: 732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5
                platform: linux/arm64

            """
        }
        text += """
          - archive: \(archive)
            sha256: \(sha256)
            to: /opt/vendor
        runtime:
          - copy: runtime/
            to: /etc/app/
        code:
          - copy: code/
            to: /app/
            exclude: ["**/*.tmp"]
        config:
          entrypoint: ["/app/bin/app"]
          env: { GREETING: "hello world" }
          workdir: /app

        """
        return text
    }

    /// The files of the context: (relative path, content, executable).
    static func files(bigFile: Bool) -> [(String, Data, Bool)] {
        var files: [(String, Data, Bool)] = [
            ("runtime/app.conf", Data("port=8080\n".utf8), false),
            ("runtime/nested/deep/values.txt", Data("a=1\nb=2\n".utf8), false),
            ("code/bin/app", Data("#!/bin/sh\necho app\n".utf8), true),
            ("code/lib/a.txt", Data("line one\nline two\nline three\n".utf8), false),
            ("code/lib/b.txt", Data("bee\n".utf8), false),
            ("code/lib/Zeta.txt", Data("upper case sorts first\n".utf8), false),
            ("code/lib/ümlaut.txt", Data("non-ASCII name\n".utf8), false),
            ("code/scratch.tmp", Data("excluded\n".utf8), false),
        ]
        if bigFile {
            files.append(("code/data/big.bin", TestContext.mixedData(megabytes: 24), false))
        }
        return files
    }

    /// Deterministic data: half pseudo-random (incompressible), half text (compressible).
    static func mixedData(megabytes: Int) -> Data {
        let total = megabytes << 20
        var data = Data(capacity: total)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let line = Data("the quick brown fox jumps over the lazy dog 0123456789\n".utf8)
        var textBlock = Data()
        while textBlock.count < 64 << 10 { textBlock.append(line) }
        textBlock = textBlock.prefix(64 << 10)
        while data.count < total {
            var block = [UInt64](repeating: 0, count: 8192)  // 64 KiB of xorshift output
            for i in 0..<block.count {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                block[i] = state
            }
            block.withUnsafeBytes { data.append(contentsOf: $0) }
            data.append(textBlock)
        }
        return data.prefix(total)
    }

    /// Creates the context in a new folder.
    static func make(_ variant: Variant, archive: (path: String, sha256: String), includeDeb: Bool, bigFile: Bool, multiPlatform: Bool = false) throws -> TestContext {
        let directory = makeTemporaryDirectory(variant == .first ? "ctx-a" : "ctx-b")
        let umask = variant == .first ? "022" : "077"
        var files = TestContext.files(bigFile: bigFile)
        if variant == .second { files.reverse() }
        for (index, (path, content, executable)) in files.enumerated() {
            let full = directory + "/" + path
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try content.write(to: URL(fileURLWithPath: full))
            let mode: Int
            switch variant {
            case .first: mode = executable ? 0o755 : 0o644
            case .second: mode = executable ? 0o700 : (index % 2 == 0 ? 0o600 : 0o666)
            }
            chmod(full, mode_t(mode))
            if variant == .second {
                // Other owners and timestamps than the first machine.
                _ = chown(full, 1234, 5678)
                var times = [timespec(tv_sec: 1_000_000 + index * 7919, tv_nsec: 0), timespec(tv_sec: 2_000_000_000 - index * 104_729, tv_nsec: 12345)]
                utimensat(AT_FDCWD, full, &times, 0)
            }
        }
        // A symlink and a hard link.
        symlink("a.txt", directory + "/code/lib/link-to-a")
        link(directory + "/code/lib/a.txt", directory + "/code/lib/hard-a.txt")
        if variant == .second {
            try run("/bin/sh", ["-c", "umask \(umask); chmod -R g+w,o-rwx \(directory)/runtime; chmod 0700 \(directory)/code"])
        }
        write(TestContext.imagefile(archive: archive.path, sha256: archive.sha256, includeDeb: includeDeb, multiPlatform: multiPlatform), to: directory + "/Imagefile")
        return TestContext(directory: directory, archivePath: archive.path, archiveSHA256: archive.sha256)
    }

    /// A small archive dependency made with GNU tar (owned 0:0 whatever user runs the tests).
    static func makeArchive() throws -> (path: String, sha256: String) {
        let source = makeTemporaryDirectory("archive-src")
        write("#!/bin/sh\necho vendored\n", to: source + "/bin/vendored", mode: 0o755)
        write("vendored data\n", to: source + "/share/data.txt")
        let path = makeTemporaryDirectory("archive") + "/vendor.tar.gz"
        let result = try run("/bin/sh", ["-c", "tar --owner=0 --group=0 --numeric-owner -C \(source) -czf \(path) bin share"])
        precondition(result.status == 0, result.stderr)
        let sum = try run("/usr/bin/sha256sum", [path]).stdout.prefix(64)
        return (path, String(sum))
    }
}
