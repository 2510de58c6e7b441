import Foundation
import Imagefile
import OCI
import Testing
import TestScheduling

@Suite("Imagefile parsing", .mayBlock)
struct ImagefileTests {
    static let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/Imagefiles"

    @Test("the full example: every section and field")
    func fullExample() throws {
        let file = try Imagefile.load(path: Self.examples + "/full/Imagefile")
        #expect(file.name.value == "examples/full")
        #expect(file.version.description == "2.3.0-rc.1+build.7")
        #expect(file.base == .scratch)
        #expect(file.platform == Platform(os: "linux", architecture: "amd64"))
        #expect(file.sourceDateEpoch == 1_700_000_000)
        #expect(file.dependencies.map(\.source) == [.deb(path: "../../fixtures/debs/busybox-static.deb"),
                                                    .archive(path: "../../fixtures/archives/tool.tar.gz"),
                                                    .url("http://127.0.0.1:8733/greeting.tar.zst")])
        #expect(file.dependencies.map(\.destination) == ["", "opt/tool", "opt/greeting"])
        #expect(file.dependencies[1].location.line == 12 && file.dependencies[1].location.column == 5)
        #expect(file.runtime.first?.owner == Imagefile.Owner(uid: 0, gid: 1000))
        #expect(file.code.map(\.fileMode) == [nil, 0o750])
        #expect(file.code.first?.excludes.map(\.pattern) == ["**/*.tmp", "notes"])
        #expect(file.config.cmd == ["--port", "8080"])
        #expect(file.config.env.map(\.key) == ["PORT", "MODE"])
        #expect(file.config.ports == ["8080/tcp", "9090/udp"])
        #expect(file.config.health == Imagefile.Health(path: "/healthz", port: 8080))
    }

    @Test("repositories and packages: the hello-debian example, versions and ?essential")
    func packages() throws {
        let file = try Imagefile.load(path: Self.examples + "/hello-debian/Imagefile")
        #expect(file.repositories.map(\.url) == ["${DEBIAN_MIRROR}"] && file.repositories[0].components == ["main"])
        #expect(file.repositories[0].keyring == "/usr/share/keyrings/debian-archive-keyring.gpg")
        #expect(file.packages.map(\.relation?.name) == ["busybox-static"])
        #expect(file.lockPath == Self.examples + "/hello-debian/Imagefile.lock")
        let parsed = try Imagefile.parse("name: a\nversion: 1.0.0\nrepositories:\n  - { url: system, suite: bookworm }\npackages: [\"libc6 (>= 1:2.36~)\", \"?essential\"]\n",
                                         path: "Imagefile", contextDirectory: "/tmp")
        #expect(parsed.repositories[0].keyring == nil && parsed.repositories[0].components == ["main"])
        #expect(parsed.packages[0].relation?.constraint?.description == ">= 1:2.36~" && parsed.packages[1].relation == nil)
    }

    func error(_ text: String) -> ImagefileError? {
        do { _ = try Imagefile.parse(text, path: "Imagefile", contextDirectory: "/tmp"); return nil } catch { return error }
    }

    @Test("errors carry the line and column of the offending value")
    func locations() {
        let e = error("name: a\nversion: 1.0.0\nconfig:\n  env: [A]\n")
        #expect(e?.location?.line == 4 && e?.location?.column == 8)
        #expect(e?.description.hasPrefix("Imagefile:4:8: 'env' must be a mapping") == true)
        let dup = error("name: a\nversion: 1.0.0\nname: b\n")
        #expect(dup?.description.contains("duplicate key 'name'") == true)
        #expect(error("")?.description.contains("the Imagefile is empty") == true)
        #expect(error("- a\n- b\n")?.description.contains("the Imagefile must be a mapping") == true)
        #expect(error("name: a\nversion: 1.0.0\ndependencies:\n  - deb: x.deb\n    archive: y.tar\n    sha256: \(String(repeating: "a", count: 64))\n")?
            .description.contains("exactly one of 'deb', 'archive' or 'url'") == true)
        #expect(error("name: a\nversion: 1.0.0\ndependencies:\n  - deb: x.deb\n    to: /opt\n    sha256: \(String(repeating: "a", count: 64))\n")?
            .description.contains("'to' is not allowed") == true)
        #expect(error("name: a\nversion: 1.0.0\nconfig:\n  stopSignal: TERM\n")?.description.contains("'stopSignal' must be a signal name") == true)
        #expect(error("name: a\nversion: 1.0.0\nconfig:\n  workdir: app\n")?.description.contains("'workdir' must be an absolute path") == true)
    }
}
