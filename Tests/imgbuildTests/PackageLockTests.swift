import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// A signed Debian archive made by fixtures/debian-archive/make (real packages from the machine's Debian
/// mirror, a few made there, indexed by apt-ftparchive, signed by a throwaway gpg key), served over HTTP on
/// 127.0.0.1 by `python3 -m http.server`.
final class TestArchive {
    let folder: String
    let port: Int
    private var server: ExampleTests.FixtureServer?
    nonisolated(unsafe) private static var nextPort = 18790

    var archive: String { folder + "/archive" }
    var url: String { "http://127.0.0.1:\(port)" }
    var keyring: String { folder + "/keyring.gpg" }
    var otherKeyring: String { folder + "/other-keyring.gpg" }

    init(newer: Bool = false) throws {
        folder = makeTemporaryDirectory("debian-archive")
        port = Self.nextPort
        Self.nextPort += 1
        try make(newer: newer)
        server = try ExampleTests.FixtureServer(port: port, directory: archive)
    }

    /// Builds (or rebuilds, with the same key) the archive's files.
    func make(newer: Bool) throws {
        let made = try run(repositoryRoot + "/fixtures/debian-archive/make", [folder] + (newer ? ["--newer"] : []))
        guard made.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: made.stderr]) }
    }

    /// Rewrites the suite's Release (`edit`, then its index hashes again for `components`) and signs InRelease
    /// with `signers` (gpg user ids), over `digest` (gpg's --digest-algo) if given.
    func resign(components: [String] = ["main"], fields: [String] = [], signers: [String] = ["archive@invalid"], digest: String? = nil) throws {
        let dists = archive + "/dists/bookworm"
        let script = """
        set -e
        cd "\(dists)"
        for c in \(components.joined(separator: " ")); do for a in amd64 arm64; do mkdir -p $c/binary-$a; [ -f $c/binary-$a/Packages ] || { : > $c/binary-$a/Packages; gzip -9nk $c/binary-$a/Packages; }; done; done
        apt-ftparchive -o APT::FTPArchive::Release::Suite=bookworm -o APT::FTPArchive::Release::Codename=bookworm \\
          -o APT::FTPArchive::Release::Architectures="amd64 arm64" -o APT::FTPArchive::Release::Components="\(components.joined(separator: " "))" \\
          -o APT::FTPArchive::Release::Date="Tue, 14 Nov 2023 22:13:20 UTC" release . > ../Release.new
        { \(fields.map { "echo '\($0)';" }.joined()) cat ../Release.new; } > Release; rm ../Release.new
        rm -f InRelease
        GNUPGHOME="\(folder)/gnupg" gpg --batch -q --yes \(signers.map { "-u '\($0)'" }.joined(separator: " ")) \(digest.map { "--digest-algo \($0)" } ?? "") --clearsign -o InRelease Release
        """
        let result = try run("/bin/sh", ["-c", script])
        guard result.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: result.stderr]) }
    }

    func stop() {
        server?.stop()
        server = nil
    }

    deinit { stop() }

    /// An Imagefile using this archive (its url from ${TEST_ARCHIVE}) in a new context folder.
    func context(packages: [String], keyring: String? = nil, extra: String = "", repositoryExtra: String = "", components: [String]? = ["main"],
                 platform: String = "platform: linux/amd64") -> String {
        let context = makeTemporaryDirectory("packages")
        write("""
        name: packaged
        version: 1.0.0
        \(platform)
        repositories:
          - url: ${TEST_ARCHIVE}
            suite: bookworm
            keyring: \(keyring ?? self.keyring)
        \(components.map { "    components: [\($0.joined(separator: ", "))]\n" } ?? "")\(repositoryExtra)packages: [\(packages.map { "\"\($0)\"" }.joined(separator: ", "))]
        config:
          entrypoint: [/bin/busybox, sh]
        \(extra)
        """, to: context + "/Imagefile")
        return context
    }

    var environment: [String: String] { ["TEST_ARCHIVE": url] }

    /// What apt itself installs for `packages` from this archive, in an empty root of its own: the SHA-256
    /// of each file it downloads, with its name.
    func aptClosure(_ packages: [String]) throws -> [String: String] {
        let root = makeTemporaryDirectory("apt-root")
        for folder in ["etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "var/lib/apt/lists/partial",
                       "var/cache/apt/archives/partial", "var/lib/dpkg"] {
            try FileManager.default.createDirectory(atPath: root + "/" + folder, withIntermediateDirectories: true)
        }
        write("", to: root + "/var/lib/dpkg/status")
        write("deb [signed-by=\(keyring)] \(url) bookworm main\n", to: root + "/etc/apt/sources.list")
        let options = ["-o", "Dir=\(root)", "-o", "Dir::State::status=\(root)/var/lib/dpkg/status", "-o", "Dir::Etc::Parts=\(root)/etc/apt/apt.conf.d",
                       "-o", "APT::Architecture=amd64", "-o", "APT::Architectures::=amd64", "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]
        let update = try run("/usr/bin/apt-get", options + ["update", "-qq"])
        guard update.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: update.stderr]) }
        let install = try run("/usr/bin/apt-get", options + ["install", "--download-only", "-qq", "--no-install-recommends", "-y"] + packages)
        guard install.status == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: install.stderr]) }
        let archives = root + "/var/cache/apt/archives"
        var result: [String: String] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: archives) where file.hasSuffix(".deb") {
            let hash = try run("/usr/bin/sha256sum", [archives + "/" + file]).stdout.prefix(64)
            result[String(hash)] = file.removingPercentEncoding ?? file
        }
        guard !result.isEmpty else { throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "apt downloaded nothing: \(install.stderr)"]) }
        return result
    }
}

/// The lock file's packages for the one platform: SHA-256 and name.
func lockedFiles(_ context: String) throws -> [String: String] {
    let lock = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: context + "/Imagefile.lock"))) as! [String: Any]
    let platforms = lock["platforms"] as! [[String: Any]]
    var result: [String: String] = [:]
    for package in platforms[0]["packages"] as! [[String: Any]] {
        result[package["sha256"] as! String] = "\(package["name"]!)_\(package["version"]!)"
    }
    return result
}

func lockedVersions(_ context: String) throws -> [String: String] {
    let lock = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: context + "/Imagefile.lock"))) as! [String: Any]
    let platforms = lock["platforms"] as! [[String: Any]]
    return Dictionary(uniqueKeysWithValues: (platforms[0]["packages"] as! [[String: Any]]).map { ($0["name"] as! String, $0["version"] as! String) })
}

@Suite("Packages locked from a signed Debian archive", .mayBlock, .serialized)
struct PackageLockTests {
    @Test("imgbuild lock resolves the same closure as apt for every package set, and writes the same bytes twice")
    func closureEqualsApt() throws {
        let archive = try TestArchive()
        let sets: [[String]] = [
            ["busybox-static"], ["ca-certificates"], ["liblocale-gettext-perl"], ["adduser"],
            ["imgtest-virtual-user", "imgtest-api-user", "imgtest-epoch-user"], ["?essential"],
            ["busybox-static", "ca-certificates", "liblocale-gettext-perl", "adduser", "imgtest-virtual-user"],
        ]
        for packages in sets {
            let context = archive.context(packages: packages)
            let lock = try imgbuild(["lock", context], environment: archive.environment)
            #expect(lock.status == 0, "\(packages): \(lock.stderr)")
            let ours = try lockedFiles(context)
            let apts = try archive.aptClosure(packages)
            #expect(!ours.isEmpty && Set(ours.keys) == Set(apts.keys), "\(packages): imgbuild \(ours.values.sorted()) apt \(apts.values.sorted())")
            let first = try Data(contentsOf: URL(fileURLWithPath: context + "/Imagefile.lock"))
            try FileManager.default.removeItem(atPath: context + "/Imagefile.lock")
            #expect(try imgbuild(["lock", context], environment: archive.environment).status == 0)
            #expect(try Data(contentsOf: URL(fileURLWithPath: context + "/Imagefile.lock")) == first, "\(packages): the second lock differs")
        }
        // Edges: the lock says why each package is there, alternatives and virtuals included.
        let context = archive.context(packages: ["imgtest-virtual-user", "imgtest-api-user", "imgtest-epoch-user"])
        #expect(try imgbuild(["lock", context], environment: archive.environment).status == 0)
        let text = try String(contentsOfFile: context + "/Imagefile.lock", encoding: .utf8)
        #expect(text.contains("imgtest-virtual-user Depends: imgtest-missing | debconf-2.0"))
        #expect(text.contains("imgtest-api-user Depends: imgtest-api (>= 2)"))
        #expect(try lockedVersions(context)["imgtest-epoch"] == "1:0.9-1", "the epoch orders 1:0.9-1 after 1.5-1")
        #expect(!text.contains("127.0.0.1"), "the lock names the archive by its url as written, not its address")
    }

    @Test("a build installs exactly the lock: the same digest from another cache and store, and offline once cached")
    func buildsFromLock() throws {
        let archive = try TestArchive()
        let context = archive.context(packages: ["busybox-static", "ca-certificates"])
        #expect(try imgbuild(["lock", context], environment: archive.environment).status == 0)
        let cache = makeTemporaryDirectory("cache")
        var environment = archive.environment
        environment["IMGBUILD_CACHE"] = cache
        let store = makeTemporaryDirectory("store") + "/store"
        let first = try imgbuild(["build", context, "--store", store], environment: environment)
        #expect(first.status == 0, "\(first.stderr)")
        // Another machine: another cache, another store.
        let other = try imgbuild(["build", context, "--store", makeTemporaryDirectory("store") + "/store"],
                                 environment: ["TEST_ARCHIVE": archive.url, "IMGBUILD_CACHE": makeTemporaryDirectory("cache")])
        #expect(other.status == 0 && other.lastLine == first.lastLine, "\(other.stderr)")
        // Offline: no server, no variable; the cache has every package.
        archive.stop()
        let offline = try imgbuild(["build", context, "--store", makeTemporaryDirectory("store") + "/store"], environment: ["TEST_ARCHIVE": "", "IMGBUILD_CACHE": cache])
        #expect(offline.status == 0 && offline.lastLine == first.lastLine, "\(offline.stderr)")
        // Not cached and no address: the error names the variable.
        let nowhere = try imgbuild(["build", context, "--store", makeTemporaryDirectory("store") + "/store"], environment: ["TEST_ARCHIVE": "", "IMGBUILD_CACHE": makeTemporaryDirectory("cache")])
        #expect(nowhere.status != 0 && nowhere.stderr.contains("TEST_ARCHIVE"), "\(nowhere.stderr)")

        let layers = try layerDigests(store: store, manifest: first.lastLine)
        let root = makeTemporaryDirectory("root")
        #expect(try run("/bin/tar", ["-xzf", store + "/blobs/sha256/" + layers[0].dropFirst(7), "-C", root]).status == 0)
        let locked = try lockedVersions(context)
        let records = try FileManager.default.contentsOfDirectory(atPath: root + "/var/lib/dpkg/status.d").sorted()
        #expect(records == locked.keys.sorted(), "one status.d record per locked package")
        // dpkg itself reads the status file the layer carries.
        let listed = try run("/usr/bin/dpkg-query", ["--admindir=\(root)/var/lib/dpkg", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let rows = listed.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(Dictionary(uniqueKeysWithValues: rows.map { ($0[0], $0[1]) }) == locked)
        #expect(rows.allSatisfy { $0.last == "ii" }, "\(listed.stdout)")
        #expect(FileManager.default.fileExists(atPath: root + "/bin/busybox") && FileManager.default.fileExists(atPath: root + "/usr/share/ca-certificates"))
    }

    @Test("a tampered index, a bad signature, an unknown key and an unsatisfiable dependency are refused; the lock stays as it was")
    func refusals() throws {
        let archive = try TestArchive()
        let context = archive.context(packages: ["busybox-static"])
        #expect(try imgbuild(["lock", context], environment: archive.environment).status == 0)
        let lockPath = context + "/Imagefile.lock"
        let before = try Data(contentsOf: URL(fileURLWithPath: lockPath))
        let dists = archive.archive + "/dists/bookworm"
        func lockFails(_ context: String, _ expected: [String], _ what: String) throws {
            let result = try imgbuild(["lock", context, "--update"], environment: archive.environment)
            #expect(result.status != 0, "\(what) was accepted")
            for text in expected { #expect(result.stderr.contains(text), "\(what): \(result.stderr)") }
            #expect(try Data(contentsOf: URL(fileURLWithPath: lockPath)) == before, "\(what): the lock changed")
        }

        // An unknown key.
        let unknown = archive.context(packages: ["busybox-static"], keyring: archive.otherKeyring)
        write(String(decoding: before, as: UTF8.self), to: unknown + "/Imagefile.lock")
        let byOther = try imgbuild(["lock", unknown, "--update"], environment: archive.environment)
        #expect(byOther.status != 0 && byOther.stderr.contains("not in the repository's keyring"), "\(byOther.stderr)")

        // A tampered Packages index (the signed Release still names the old one).
        let gz = dists + "/main/binary-amd64/Packages.gz"
        let original = try Data(contentsOf: URL(fileURLWithPath: gz))
        let packages = try String(contentsOfFile: dists + "/main/binary-amd64/Packages", encoding: .utf8)
        write(packages.replacingOccurrences(of: "Package: imgtest-broken", with: "Package: imgtest-evil"), to: dists + "/main/binary-amd64/Packages")
        #expect(try run("/bin/gzip", ["-9nf", dists + "/main/binary-amd64/Packages"]).status == 0)
        try lockFails(context, ["Packages.gz", "the index is refused", "the signed Release file gives"], "a tampered index")
        // Longer than the Release file says: refused while it arrives.
        var longer = try Data(contentsOf: URL(fileURLWithPath: gz))
        longer.append(contentsOf: [UInt8](repeating: 0, count: 100))
        try longer.write(to: URL(fileURLWithPath: gz))
        try lockFails(context, ["Packages.gz", "the index is refused", "more than the \(original.count) expected"], "a longer index")
        try original.write(to: URL(fileURLWithPath: gz))

        // A changed InRelease: the signature no longer matches.
        let inRelease = try String(contentsOfFile: dists + "/InRelease", encoding: .utf8)
        write(inRelease.replacingOccurrences(of: "Suite: bookworm", with: "Suite: bookwarm"), to: dists + "/InRelease")
        try lockFails(context, ["InRelease", "signature does not match"], "a changed InRelease")
        write(inRelease, to: dists + "/InRelease")

        // An unsatisfiable dependency.
        let broken = archive.context(packages: ["imgtest-broken"])
        let unsatisfiable = try imgbuild(["lock", broken], environment: archive.environment)
        #expect(unsatisfiable.status != 0 && unsatisfiable.stderr.contains("imgtest-broken 1.0-1 Depends 'imgtest-nothing (>= 2)'"), "\(unsatisfiable.stderr)")
        #expect(!FileManager.default.fileExists(atPath: broken + "/Imagefile.lock"))

        // A package file larger than the lock says: the download stops there.
        let bigger = archive.archive + "/pool/main/b/busybox"
        let biggerDeb = try FileManager.default.contentsOfDirectory(atPath: bigger).first { $0.hasPrefix("busybox-static_") && $0.hasSuffix("_amd64.deb") }!
        let originalDeb = try Data(contentsOf: URL(fileURLWithPath: bigger + "/" + biggerDeb))
        try (originalDeb + Data(count: 1 << 20)).write(to: URL(fileURLWithPath: bigger + "/" + biggerDeb))
        let tooBig = try imgbuild(["build", context, "--store", makeTemporaryDirectory("store") + "/store"],
                                  environment: archive.environment.merging(["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]) { $1 })
        #expect(tooBig.status != 0 && tooBig.stderr.contains("the server sent more than the \(originalDeb.count) bytes the lock gives"), "\(tooBig.stderr)")
        try originalDeb.write(to: URL(fileURLWithPath: bigger + "/" + biggerDeb))

        // A package file whose SHA-256 is not the index's: the build names it, and the store gets no tag.
        let pool = archive.archive + "/pool/main/b/busybox"
        let deb = try FileManager.default.contentsOfDirectory(atPath: pool).first { $0.hasPrefix("busybox-static_") && $0.hasSuffix("_amd64.deb") }!
        var bytes = try Data(contentsOf: URL(fileURLWithPath: pool + "/" + deb))
        bytes[bytes.count - 1] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: pool + "/" + deb))
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", context, "--store", store], environment: archive.environment.merging(["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]) { $1 })
        #expect(build.status != 0 && build.stderr.contains(deb) && build.stderr.contains("busybox-static 1:1.35.0-4+deb12u1+b1 from")
                && build.stderr.contains("is not the file Imagefile.lock pins"), "\(build.stderr)")
        #expect(try imgbuild(["tags", "packaged", "--store", store]).stdout.isEmpty)

        // A lock edited by hand: another architecture for the platform, or a request dropped.
        let lockText = String(decoding: before, as: UTF8.self)
        write(lockText.replacingOccurrences(of: "\"architecture\" : \"amd64\",\n      \"packages\"", with: "\"architecture\" : \"arm64\",\n      \"packages\""), to: lockPath)
        let otherArchitecture = try imgbuild(["build", context, "--store", store], environment: archive.environment)
        #expect(otherArchitecture.status != 0 && otherArchitecture.stderr.contains("has no packages for linux/amd64 (amd64)"), "\(otherArchitecture.stderr)")
        write(lockText.replacingOccurrences(of: "\"requested: busybox-static\"", with: "\"libc6 Depends: busybox-static\""), to: lockPath)
        let dropped = try imgbuild(["build", context, "--store", store], environment: archive.environment)
        #expect(dropped.status != 0 && dropped.stderr.contains("does not install 'busybox-static'"), "\(dropped.stderr)")
        write(lockText, to: lockPath)

        // The Imagefile changed since the lock: the build says to lock again.
        let imagefile = try String(contentsOfFile: context + "/Imagefile", encoding: .utf8)
        write(imagefile.replacingOccurrences(of: "\"busybox-static\"", with: "\"busybox-static\", \"libc6\""), to: context + "/Imagefile")
        let stale = try imgbuild(["build", context, "--store", store], environment: archive.environment)
        #expect(stale.status != 0 && stale.stderr.contains("run 'imgbuild lock"), "\(stale.stderr)")
        try FileManager.default.removeItem(atPath: lockPath)
        let missing = try imgbuild(["build", context, "--store", store], environment: archive.environment)
        #expect(missing.status != 0 && missing.stderr.contains("Imagefile.lock, which does not exist"), "\(missing.stderr)")
    }

    @Test("Imagefiles/hello-debian builds from its committed lock against a copy of Debian's archive on 127.0.0.1")
    func example() throws {
        let archive = try TestArchive()
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", repositoryRoot + "/Imagefiles/hello-debian", "--store", store],
                                 environment: ["DEBIAN_MIRROR": archive.url, "IMGBUILD_CACHE": makeTemporaryDirectory("cache")])
        #expect(build.status == 0, "\(build.stderr)")
        #expect(build.stderr.contains("/pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_amd64.deb"), "\(build.stderr)")
        let tags = try imgbuild(["tags", "hello-debian", "--store", store])
        #expect(tags.stdout.contains("1.0.0"), "the image's file tests passed and the version was tagged")
    }

    @Test("signatures as apt takes them: one good signature of several is enough; weak digests, an expired Release and a second message are refused")
    func signatures() throws {
        let archive = try TestArchive()
        let context = archive.context(packages: ["busybox-static"])
        // Debian signs with several keys and a keyring may hold one: either key's keyring is enough.
        try archive.resign(signers: ["archive@invalid", "other@invalid"])
        #expect(try imgbuild(["lock", context], environment: archive.environment).status == 0)
        let other = archive.context(packages: ["busybox-static"], keyring: archive.otherKeyring)
        let byOther = try imgbuild(["lock", other], environment: archive.environment)
        #expect(byOther.status == 0, "\(byOther.stderr)")
        let before = try Data(contentsOf: URL(fileURLWithPath: context + "/Imagefile.lock"))
        func refused(_ expected: String, _ what: String) throws {
            let result = try imgbuild(["lock", context, "--update"], environment: archive.environment)
            #expect(result.status != 0 && result.stderr.contains(expected), "\(what): \(result.stderr)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: context + "/Imagefile.lock")) == before, "\(what): the lock changed")
        }
        // A message signed by another key put before the good one: gpgv would print both texts.
        let inRelease = archive.archive + "/dists/bookworm/InRelease"
        let good = try String(contentsOfFile: inRelease, encoding: .utf8)
        let forged = archive.folder + "/forged"
        write("Origin: evil\nSuite: bookworm\nSHA256:\n", to: forged)
        #expect(try run("/bin/sh", ["-c", "GNUPGHOME=\(archive.folder)/gnupg gpg --batch -q --yes -u other@invalid --clearsign -o \(forged).asc \(forged)"]).status == 0)
        let forgedText = try String(contentsOfFile: forged + ".asc", encoding: .utf8)
        write(forgedText + good, to: inRelease)
        try refused("not one clearsigned message with nothing around it", "a second message")
        // ... with its armor lines ending in blanks, which gpg still reads as armor.
        write(forgedText.replacingOccurrences(of: "-----\n", with: "----- \t\n") + good, to: inRelease)
        try refused("not one clearsigned message with nothing around it", "a second message with blanks after its armor")
        // A Release past its Valid-Until (a replayed old one).
        try archive.resign(fields: ["Valid-Until: Wed, 15 Nov 2023 22:13:20 UTC"])
        try refused("it expired at Wed, 15 Nov 2023 22:13:20 UTC (Valid-Until)", "an expired Release")
        // ... which a snapshot archive may be: checkValidUntil: false.
        let snapshot = archive.context(packages: ["busybox-static"], repositoryExtra: "    checkValidUntil: false\n")
        let accepted = try imgbuild(["lock", snapshot], environment: archive.environment)
        #expect(accepted.status == 0, "\(accepted.stderr)")
        // SHA-1 signatures.
        try archive.resign(digest: "SHA1")
        try refused("signed only over a weak digest", "a SHA-1 signature")
        // Release and Release.gpg (no InRelease), the good signature among three thousand by an unknown key:
        // gpgv writes megabytes about them, and lock neither hangs nor gives up.
        try archive.resign()
        let dists = archive.archive + "/dists/bookworm"
        let many = """
        set -e
        cd "\(dists)"; rm -f InRelease
        export GNUPGHOME="\(archive.folder)/gnupg"
        gpg --batch -q --yes -u archive@invalid -b -o good.sig Release
        gpg --batch -q --yes -u other@invalid -b -o other.sig Release
        { cat good.sig; for i in $(seq 3000); do cat other.sig; done; } > Release.gpg; rm good.sig other.sig
        """
        #expect(try run("/bin/sh", ["-c", many]).status == 0)
        let detached = try imgbuild(["lock", context, "--update"], environment: archive.environment)
        #expect(detached.status == 0, "\(detached.stderr.prefix(2000))")
        // A mirror without the first index form the Release lists (Packages.gz): the next one is read.
        try FileManager.default.removeItem(atPath: dists + "/main/binary-amd64/Packages.gz")
        let fallback = try imgbuild(["lock", context, "--update"], environment: archive.environment)
        #expect(fallback.status == 0, "\(fallback.stderr)")

        // A backports suite (NotAutomatic, ButAutomaticUpgrades) with a newer version: apt's candidate is
        // still the main suite's, at priority 500 against 100.
        let backports = archive.archive + "/dists/bookworm-backports"
        let newer = """
        set -e
        mkdir -p "\(backports)/main/binary-amd64"; cd "\(backports)"
        printf 'Package: imgtest-epoch\\nVersion: 2:1-1~bpo12+1\\nArchitecture: all\\nFilename: pool/main/i/imgtest-epoch/imgtest-epoch_1-1~bpo12+1_all.deb\\nSize: 10\\nSHA256: %064d\\nDescription: newer\\n' 0 > main/binary-amd64/Packages
        apt-ftparchive -o APT::FTPArchive::Release::Suite=bookworm-backports -o APT::FTPArchive::Release::Codename=bookworm-backports \\
          -o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main release . > ../Release.new
        { echo 'NotAutomatic: yes'; echo 'ButAutomaticUpgrades: yes'; cat ../Release.new; } > Release; rm ../Release.new
        GNUPGHOME="\(archive.folder)/gnupg" gpg --batch -q --yes -u archive@invalid --clearsign -o InRelease Release
        """
        let made = try run("/bin/sh", ["-c", newer])
        #expect(made.status == 0, "\(made.stderr)")
        let twoSuites = archive.context(packages: ["imgtest-epoch-user"], repositoryExtra: """
              - url: ${TEST_ARCHIVE}
                suite: bookworm-backports
                keyring: \(archive.keyring)

            """)
        let locked = try imgbuild(["lock", twoSuites], environment: archive.environment)
        #expect(locked.status == 0, "\(locked.stderr)")
        #expect(try lockedVersions(twoSuites)["imgtest-epoch"] == "1:0.9-1", "backports' version was taken over the main suite's")
        let pinned = archive.context(packages: ["imgtest-epoch (>= 2:0)"], repositoryExtra: """
              - url: ${TEST_ARCHIVE}
                suite: bookworm-backports
                keyring: \(archive.keyring)

            """)
        #expect(try imgbuild(["lock", pinned], environment: archive.environment).status == 0)
        #expect(try lockedVersions(pinned)["imgtest-epoch"] == "2:1-1~bpo12+1", "a request for a newer version takes backports'")

        // An empty component (bookworm-updates has some) is read as no packages.
        try archive.resign(components: ["main", "contrib"])
        let both = archive.context(packages: ["busybox-static"], repositoryExtra: "    components: [main, contrib]\n", components: nil)
        let withEmpty = try imgbuild(["lock", both], environment: archive.environment)
        #expect(withEmpty.status == 0 && withEmpty.stderr.contains("contrib/amd64: 0 packages"), "\(withEmpty.stderr)")
    }

    @Test("a two-platform image: each platform's closure from its own index, each image with its own busybox")
    func twoPlatforms() throws {
        let archive = try TestArchive()
        let context = archive.context(packages: ["busybox-static", "imgtest-virtual-user"], platform: "platforms: [linux/amd64, linux/arm64]")
        let lock = try imgbuild(["lock", context], environment: archive.environment)
        #expect(lock.status == 0, "\(lock.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: context + "/Imagefile.lock"))) as! [String: Any]
        let platforms = json["platforms"] as! [[String: Any]]
        #expect(platforms.map { $0["platform"] as! String } == ["linux/amd64", "linux/arm64"])
        for platform in platforms {
            let architecture = platform["architecture"] as! String
            let packages = platform["packages"] as! [[String: Any]]
            let busybox = packages.first { $0["name"] as? String == "busybox-static" }!
            #expect(busybox["architecture"] as? String == architecture && (busybox["filename"] as! String).hasSuffix("_\(architecture).deb"))
            #expect(Set(packages.map { $0["name"] as! String }) == ["busybox-static", "debconf", "imgtest-virtual-user"])
        }
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", context, "--store", store], environment: archive.environment.merging(["IMGBUILD_CACHE": makeTemporaryDirectory("cache")]) { $1 })
        #expect(build.status == 0, "\(build.stderr)")
        for (platform, kind) in [("linux/amd64", "x86-64"), ("linux/arm64", "aarch64")] {
            let inspect = try imgbuild(["inspect", "packaged:1.0.0", "--platform", platform, "--format", "json", "--store", store])
            #expect(inspect.status == 0, "\(inspect.stderr)")
            let document = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
            let digest = ((document?["manifest"] as? [String: Any])?["layers"] as? [[String: Any]])?.first?["digest"] as? String ?? ""
            let root = makeTemporaryDirectory("root")
            #expect(try run("/bin/tar", ["-xzf", store + "/blobs/sha256/" + digest.dropFirst(7), "-C", root]).status == 0, "\(platform): \(inspect.stdout.prefix(400))")
            #expect(try run("/usr/bin/file", ["-L", root + "/bin/busybox"]).stdout.contains(kind), "\(platform)")
        }
    }

    @Test("lock keeps the versions it has while the archive offers them; --update takes the newest and says so")
    func keepsVersions() throws {
        let archive = try TestArchive()
        let context = archive.context(packages: ["imgtest-epoch-user"])
        #expect(try imgbuild(["lock", context], environment: archive.environment).status == 0)
        #expect(try lockedVersions(context)["imgtest-epoch"] == "1:0.9-1")
        try archive.make(newer: true)
        let again = try imgbuild(["lock", context], environment: archive.environment)
        #expect(again.status == 0 && again.stderr.contains("is up to date"), "\(again.stderr)")
        #expect(try lockedVersions(context)["imgtest-epoch"] == "1:0.9-1")
        let update = try imgbuild(["lock", context, "--update"], environment: archive.environment)
        #expect(update.status == 0 && update.stderr.contains("imgtest-epoch 1:0.9-1 -> 2:1-1"), "\(update.stderr)")
        #expect(try lockedVersions(context)["imgtest-epoch"] == "2:1-1")

        // A version the lock keeps that a changed Imagefile cannot use is resolved afresh, not refused.
        let pinned = archive.context(packages: ["imgtest-epoch (= 1.5-1)"])
        #expect(try imgbuild(["lock", pinned], environment: archive.environment).status == 0)
        let imagefile = try String(contentsOfFile: pinned + "/Imagefile", encoding: .utf8)
        write(imagefile.replacingOccurrences(of: "\"imgtest-epoch (= 1.5-1)\"", with: "\"imgtest-epoch-user\", \"imgtest-epoch\""), to: pinned + "/Imagefile")
        let changed = try imgbuild(["lock", pinned], environment: archive.environment)
        #expect(changed.status == 0 && changed.stderr.contains("imgtest-epoch 1.5-1 -> 2:1-1"), "\(changed.stderr)")
    }
}
