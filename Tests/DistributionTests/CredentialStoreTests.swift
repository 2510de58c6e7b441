import Foundation
import Testing
@testable import Distribution
import TestScheduling

/// Filing credentials where docker, podman and crane read them, against hostile and odd config files.
@Suite("Credentials in config.json and helpers", .mayBlock)
struct CredentialStoreTests {
    func folder() -> String {
        let path = NSTemporaryDirectory() + "credentials-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func store(_ docker: String, path: String? = nil) -> CredentialStore {
        var environment = ["DOCKER_CONFIG": docker, "HOME": docker]
        if let path { environment["PATH"] = path + ":/usr/bin:/bin" }
        return CredentialStore(environment: environment)
    }

    @Test("eight logins at once keep every entry and the file's other settings; the file is 0600; hosts are filed lowercase")
    func concurrentSaves() throws {
        let docker = folder()
        try Data(#"{"psFormat":"keep me"}"#.utf8).write(to: URL(fileURLWithPath: docker + "/config.json"))
        let credentials = store(docker)
        DispatchQueue.concurrentPerform(iterations: 8) { index in
            _ = try? credentials.save(RegistryCredentials(username: "user\(index)", password: "pass\(index)"), for: "HOST\(index).example:5000")
        }
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: docker + "/config.json"))) as? [String: Any] ?? [:]
        #expect((config["auths"] as? [String: Any])?.count == 8 && config["psFormat"] as? String == "keep me", "\(config)")
        let mode = (try FileManager.default.attributesOfItem(atPath: docker + "/config.json")[.posixPermissions] as? Int) ?? 0
        #expect(mode == 0o600)
        #expect(try credentials.credentials(for: "host3.example:5000")?.password == "pass3")
    }

    @Test("a config.json that cannot be read, or whose auths or credHelpers are not objects, is refused and left as it was")
    func unreadableOrMalformed() throws {
        let docker = folder()
        try FileManager.default.createDirectory(atPath: docker + "/config.json", withIntermediateDirectories: true)
        #expect(throws: CredentialError.self) { try store(docker).save(RegistryCredentials(username: "a", password: "b"), for: "h.example") }
        var isFolder: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: docker + "/config.json", isDirectory: &isFolder) && isFolder.boolValue)

        for text in [#"{"auths":[]}"#, #"{"credHelpers":{"h.example":"nope","x":1}}"#, #"{"credHelpers":{"h.example":7}}"#] {
            let other = folder()
            try Data(text.utf8).write(to: URL(fileURLWithPath: other + "/config.json"))
            #expect(throws: CredentialError.self, "\(text)") { try store(other).save(RegistryCredentials(username: "a", password: "b"), for: "h.example") }
            #expect(try String(contentsOfFile: other + "/config.json", encoding: .utf8) == text)
        }
    }

    @Test("a config.json that is a symbolic link is written through it")
    func symlinkedConfig() throws {
        let docker = folder(), dotfiles = folder()
        try Data("{}".utf8).write(to: URL(fileURLWithPath: dotfiles + "/docker-config.json"))
        try FileManager.default.createSymbolicLink(atPath: docker + "/config.json", withDestinationPath: dotfiles + "/docker-config.json")
        _ = try store(docker).save(RegistryCredentials(username: "a", password: "b"), for: "h.example")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: docker + "/config.json") == dotfiles + "/docker-config.json")
        #expect(try String(contentsOfFile: dotfiles + "/docker-config.json", encoding: .utf8).contains("h.example"))
    }

    @Test("a helper that floods its error output, hangs, or echoes the secret: a clear error, in bounded time, without the secret")
    func hostileHelpers() throws {
        let bin = folder()
        func helper(_ name: String, _ body: String) throws {
            let path = bin + "/docker-credential-" + name
            try Data("#!/bin/sh\n\(body)\n".utf8).write(to: URL(fileURLWithPath: path))
            chmod(path, 0o755)
        }
        try helper("flood", "head -c 300000 /dev/zero | tr '\\\\0' x >&2; exit 1")
        try helper("hang", "sleep 30")
        try helper("echo", "cat; exit 1")
        for (name, expected) in [("flood", "failed to store"), ("hang", "did not answer within 2 s"), ("echo", "(secret)")] {
            let docker = folder()
            try Data(#"{"credsStore":"\#(name)"}"#.utf8).write(to: URL(fileURLWithPath: docker + "/config.json"))
            var credentials = store(docker, path: bin)
            // Short only where the deadline is what is tested: a helper that answers at once may still take
            // seconds to start on a loaded machine (under ThreadSanitizer in CI, it took more than 2 s).
            credentials.helperDeadline = name == "hang" ? 2 : 60
            do {
                _ = try credentials.save(RegistryCredentials(username: "u", password: "s3cret-value"), for: "h.example")
                Issue.record("\(name): no error")
            } catch {
                #expect(error.description.contains(expected) && !error.description.contains("s3cret-value"), "\(name): \(error)")
            }
        }
    }

    @Test("login and logout hosts are filed lowercase, as docker files them")
    func lowercaseHosts() throws {
        #expect(try ImageLocation.registryHost("LOCALHOST:5000").host == "localhost:5000")
        #expect(try ImageLocation.registryHost("https://Registry.Example/").host == "registry.example")
        let docker = folder()
        _ = try store(docker).save(RegistryCredentials(username: "a", password: "b"), for: "Registry.Example")
        #expect(try store(docker).credentials(for: "registry.example")?.username == "a")
    }
}
