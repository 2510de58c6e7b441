import CommandLineTesting
import Foundation
import Testing
import TestScheduling

/// What scripts and shells rely on: `--format json`, `--version`, completion, and credentials filed where
/// docker, podman, skopeo and crane keep them.
@Suite("Scripts, shells and credentials", .mayBlock)
struct ScriptingTests {
    func builtImage(seed: String, version: String = "1.0.0") throws -> (store: String, digest: String) {
        let store = makeTemporaryDirectory("store") + "/store"
        let build = try imgbuild(["build", makeSmallContext(seed: seed, name: "team/app", version: version, bigFileMiB: 1), "--store", store])
        #expect(build.status == 0, "\(build.stderr)")
        return (store, build.lastLine)
    }

    /// Checks that `python3 -m json.tool` accepts the whole of standard output, and returns it parsed.
    func document(_ result: ProcessResult) throws -> [String: Any] {
        #expect(result.status == 0, "\(result.stderr)")
        let file = makeTemporaryDirectory("json") + "/out.json"
        write(result.stdout, to: file)
        let tool = try run("/usr/bin/python3", ["-m", "json.tool", file])
        #expect(tool.status == 0, "standard output is one JSON document: \(tool.stderr)\n\(result.stdout)")
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    @Test("--format json on images, tags, resolve, inspect, push, pull and copy: one document each, with the digests and counts")
    func jsonOutput() throws {
        let (store, digest) = try builtImage(seed: "json-1", version: "1.0.0+b.1")
        let images = try document(imgbuild(["images", "--format", "json", "--store", store]))
        let repository = (images["repositories"] as? [[String: Any]])?.first
        #expect(repository?["name"] as? String == "team/app" && repository?["versions"] as? Int == 1)
        #expect((repository?["latest"] as? [String: Any])?["digest"] as? String == digest)

        let tags = try document(imgbuild(["tags", "team/app", "--format", "json", "--store", store]))
        let tag = (tags["tags"] as? [[String: Any]])?.first
        #expect(tag?["version"] as? String == "1.0.0+b.1" && tag?["digest"] as? String == digest && (tag?["size"] as? Int ?? 0) > 0)

        let resolved = try document(imgbuild(["resolve", "team/app@^1.0.0", "--format", "json", "--store", store]))
        #expect(resolved["version"] as? String == "1.0.0+b.1" && resolved["digest"] as? String == digest && resolved["range"] as? String == "^1.0.0")

        let inspected = try document(imgbuild(["inspect", "team/app:1.0.0+b.1", "--format", "json", "--store", store]))
        #expect(inspected["digest"] as? String == digest)

        let registry = try DistributionRegistry()
        defer { registry.stop() }
        let push = try document(imgbuild(["push", "team/app:1.0.0+b.1", "127.0.0.1:\(registry.port)/team/app", "--format", "json", "--store", store]))
        let sent = push["blobs"] as? [String: Any]
        // The tag as the registry holds it: '+' travels as '_'.
        #expect(push["digest"] as? String == digest && push["tag"] as? String == "1.0.0_b.1", "\(push)")
        #expect((sent?["sent"] as? Int ?? 0) >= 3 && sent?["skipped"] as? Int == 0 && (sent?["bytesSent"] as? Int ?? 0) > 10_000, "\(push)")
        let again = try document(imgbuild(["push", "team/app:1.0.0+b.1", "127.0.0.1:\(registry.port)/team/app", "--format", "json", "--store", store]))
        #expect((again["blobs"] as? [String: Any])?["sent"] as? Int == 0 && (again["blobs"] as? [String: Any])?["bytesSent"] as? Int == 0, "\(again)")

        let pulled = makeTemporaryDirectory("pulled") + "/store"
        let pull = try document(imgbuild(["pull", "127.0.0.1:\(registry.port)/team/app@\(digest)", "--format", "json", "--store", pulled]))
        #expect(pull["digest"] as? String == digest && pull["tag"] is NSNull, "pulled by digest: pinned, no tag: \(pull)")
        let copy = try document(imgbuild(["copy", "store:team/app@\(digest)", "oci:\(makeTemporaryDirectory("layout"))/oci:1.0.0",
                                          "--format", "json", "--store", pulled]))
        #expect(copy["digest"] as? String == digest && copy["tag"] as? String == "1.0.0", "\(copy)")
    }

    @Test("--version names the version, the commit built from and the store format")
    func version() throws {
        let result = try imgbuild(["--version"])
        #expect(result.status == 0)
        let head = try run("/usr/bin/git", ["-C", repositoryRoot, "rev-parse", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(result.stdout.contains("imgbuild 0.1.0") && result.stdout.contains("store format imgbuild-store/1"), "\(result.stdout)")
        // Built from this checkout (the commit, marked -dirty when tracked files had changes).
        #expect(head.count == 40 && result.stdout.contains("commit \(head)"), "\(result.stdout) vs \(head)")
    }

    @Test("bash completion offers the store's NAME:VERSION references and names, from the --store on the line being completed")
    func completion() throws {
        let (store, _) = try builtImage(seed: "complete-1", version: "1.2.0")
        let script = makeTemporaryDirectory("completion") + "/imgbuild.bash"
        let generated = try imgbuild(["--generate-completion-script", "bash"])
        #expect(generated.status == 0 && generated.stdout.contains("_imgbuild"))
        write(generated.stdout, to: script)
        func complete(_ words: [String]) throws -> [String] {
            let line = words.joined(separator: " ")
            let quoted = words.map { "'\($0)'" }.joined(separator: " ")
            let program = """
                source '\(script)'
                COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1); COMP_LINE='\(line)'; COMP_POINT=\(line.count)
                _imgbuild imgbuild '\(words.last!)' '\(words[words.count - 2])'
                printf '%s\\n' "${COMPREPLY[@]}"
                """
            let binaries = URL(fileURLWithPath: imgbuildBinary).deletingLastPathComponent().path
            let result = try run("/bin/bash", ["-c", program], environment: ["PATH": binaries + ":/usr/bin:/bin"])
            return result.stdout.split(separator: "\n").map(String.init)
        }
        #expect(try complete(["imgbuild", "inspect", "--store", store, "team/"]) == ["team/app:1.2.0"])
        #expect(try complete(["imgbuild", "tags", "--store", store, ""]).contains("team/app"))
        #expect(try complete(["imgbuild", "resolve", "--store", store, "te"]) == ["team/app@"])
        #expect(try complete(["imgbuild", "inspect", "--store", store, "other"]).isEmpty)
    }

    @Test("login files checked credentials in docker's config.json that skopeo reads; skopeo login's file is read back; logout forgets; a wrong password is never filed")
    func loginInterop() throws {
        let registry = try DistributionRegistry(auth: .htpasswd(["alice": "s3cret-pass"]))
        defer { registry.stop() }
        let (store, digest) = try builtImage(seed: "login-1")
        let docker = makeTemporaryDirectory("docker")
        let environment = ["DOCKER_CONFIG": docker, "XDG_RUNTIME_DIR": makeTemporaryDirectory("runtime")]
        write(#"{"experimental":"enabled"}"#, to: docker + "/config.json")
        func imgbuildIn(_ arguments: [String], stdin: String? = nil) throws -> ProcessResult {
            guard let stdin else { return try imgbuild(arguments, environment: environment) }
            return try run("/bin/sh", ["-c", "printf '%s\\n' \"$1\" | \"$0\" \"$@\"".replacingOccurrences(of: "\"$@\"", with: "\"${@:2}\""), imgbuildBinary, stdin] + arguments,
                           environment: environment)
        }
        let host = "127.0.0.1:\(registry.port)"
        let wrong = try run("/bin/sh", ["-c", "echo wrong | \"$0\" login \(host) --username alice --password-stdin", imgbuildBinary], environment: environment)
        #expect(wrong.status != 0 && wrong.stderr.contains("refused access"), "\(wrong.stderr)")
        #expect(!(try String(contentsOfFile: docker + "/config.json", encoding: .utf8)).contains("auths"), "nothing is filed")
        _ = imgbuildIn

        let login = try run("/bin/sh", ["-c", "echo s3cret-pass | \"$0\" login \(host) --username alice --password-stdin", imgbuildBinary], environment: environment)
        #expect(login.status == 0 && login.stdout.contains("logged in to \(host) as alice"), "\(login.stdout)\(login.stderr)")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: docker + "/config.json"))) as? [String: Any] ?? [:]
        #expect(((config["auths"] as? [String: Any])?[host] as? [String: String])?["auth"] == Data("alice:s3cret-pass".utf8).base64EncodedString())
        #expect(config["experimental"] as? String == "enabled", "other settings are kept")
        let attributes = try FileManager.default.attributesOfItem(atPath: docker + "/config.json")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        // imgbuild pushes with the filed credentials; skopeo reads the same file.
        #expect(try imgbuild(["push", "team/app:1.0.0", "\(host)/team/app", "--store", store], environment: environment).status == 0)
        let inspect = try run("/usr/bin/skopeo", ["inspect", "--tls-verify=false", "--authfile", docker + "/config.json", "docker://\(host)/team/app:1.0.0"])
        #expect(inspect.status == 0 && inspect.stdout.contains(digest), "\(inspect.stderr)")

        // The other way: skopeo login writes an auth file, and imgbuild reads it.
        let authFile = makeTemporaryDirectory("auth") + "/auth.json"
        let skopeoLogin = try run("/usr/bin/skopeo", ["login", "--tls-verify=false", "--authfile", authFile, "--username", "alice", "--password", "s3cret-pass", host])
        #expect(skopeoLogin.status == 0, "\(skopeoLogin.stderr)")
        let other = makeTemporaryDirectory("docker-empty")
        let viaSkopeo = ["DOCKER_CONFIG": other, "REGISTRY_AUTH_FILE": authFile]
        let pushed = try imgbuild(["push", "team/app:1.0.0", "\(host)/skopeo/app", "--store", store], environment: viaSkopeo)
        #expect(pushed.status == 0 && pushed.lastLine == digest, "\(pushed.stderr)")
        let pulled = makeTemporaryDirectory("pulled") + "/store"
        let pull = try imgbuild(["pull", "\(host)/skopeo/app:1.0.0", "--store", pulled], environment: viaSkopeo)
        #expect(pull.status == 0 && pull.lastLine == digest, "\(pull.stderr)")

        let logout = try imgbuild(["logout", host], environment: environment)
        #expect(logout.status == 0 && logout.stdout.contains("removed the credentials for \(host)"))
        let denied = try imgbuild(["pull", "\(host)/team/app:1.0.0", "--store", makeTemporaryDirectory("p") + "/store"], environment: environment)
        #expect(denied.status != 0 && denied.stderr.contains("refused access"), "\(denied.stderr)")
    }

    @Test("a credential helper named in credHelpers is asked to store, get and erase, and config.json holds no secret")
    func credentialHelper() throws {
        let registry = try DistributionRegistry(auth: .htpasswd(["bob": "helper-pass"]))
        defer { registry.stop() }
        let (store, digest) = try builtImage(seed: "login-helper")
        let host = "127.0.0.1:\(registry.port)"
        let docker = makeTemporaryDirectory("docker")
        write(#"{"credHelpers":{"\#(host)":"imgtest"}}"#, to: docker + "/config.json")
        let secrets = makeTemporaryDirectory("secrets") + "/secrets.json"
        let environment = ["DOCKER_CONFIG": docker, "IMGTEST_CREDENTIALS": secrets, "XDG_RUNTIME_DIR": makeTemporaryDirectory("runtime"),
                           "PATH": repositoryRoot + "/fixtures/credentials:" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        let login = try run("/bin/sh", ["-c", "echo helper-pass | \"$0\" login \(host) -u bob --password-stdin", imgbuildBinary], environment: environment)
        #expect(login.status == 0 && login.stdout.contains("docker-credential-imgtest"), "\(login.stdout)\(login.stderr)")
        #expect(!(try String(contentsOfFile: docker + "/config.json", encoding: .utf8)).contains("auth\""), "no secret in config.json")
        #expect((try String(contentsOfFile: secrets, encoding: .utf8)).contains("helper-pass"))

        let push = try imgbuild(["push", "team/app:1.0.0", "\(host)/team/app", "--store", store], environment: environment)
        #expect(push.status == 0 && push.lastLine == digest, "\(push.stderr)")
        #expect(try imgbuild(["logout", host], environment: environment).status == 0)
        let log = try String(contentsOfFile: secrets + ".log", encoding: .utf8).split(separator: "\n")
        #expect(log.contains("store") && log.contains("get") && log.contains("erase"), "\(log)")
        #expect(!(try String(contentsOfFile: secrets, encoding: .utf8)).contains("helper-pass"), "erased")
    }
}
