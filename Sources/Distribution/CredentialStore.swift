import Foundation
import NIOConcurrencyHelpers

/// Registry credentials where docker, podman, skopeo and crane keep them: the `auths` of docker's
/// `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), its credential helpers
/// (`credHelpers` per registry, `credsStore` for all: the `docker-credential-NAME` programs, spoken to
/// with their get/store/erase protocol), and, for reading, the containers `auth.json` that podman and
/// skopeo write (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`).
public struct CredentialStore: Sendable {
    public var environment: [String: String]
    /// How long a credential helper may take (one that waits for a keyring to unlock gets this long).
    public var helperDeadline: TimeInterval = 60

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The file `login` writes: docker's `config.json`.
    public var configPath: String {
        (environment["DOCKER_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.docker")) + "/config.json"
    }

    /// Where `config.json` really is: a symbolic link (a dotfiles checkout) is written through, as docker does.
    var resolvedConfigPath: String {
        guard let resolved = realpath(configPath, nil) else { return configPath }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The files read for credentials, first match winning: podman's and skopeo's, then docker's.
    var readPaths: [String] {
        var paths: [String] = []
        if let file = environment["REGISTRY_AUTH_FILE"], !file.isEmpty { paths.append(file) }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { paths.append(runtime + "/containers/auth.json") }
        paths.append(configPath)
        return paths
    }

    /// The keys a registry may be filed under: `HOST[:PORT]` as docker writes it, with or without a
    /// scheme, and Docker Hub's historical `https://index.docker.io/v1/`.
    static func keys(for host: String) -> [String] {
        var keys = [host, "https://\(host)", "http://\(host)", "https://\(host)/v2/", "http://\(host)/v2/"]
        if ["docker.io", "registry-1.docker.io", "index.docker.io"].contains(host) {
            keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"] + keys
        }
        return keys
    }

    /// The key `login` files a registry under.
    static func loginKey(for host: String) -> String {
        ["docker.io", "registry-1.docker.io", "index.docker.io"].contains(host) ? "https://index.docker.io/v1/" : host
    }

    /// The credentials for `host` (`HOST[:PORT]`): `IMGBUILD_USERNAME`/`IMGBUILD_PASSWORD` first, then a
    /// credential helper named for it, then the files, then the default helper. Nil when none; a helper
    /// that fails, or a `config.json` that cannot be read, is an error that names it.
    public func credentials(for host: String) throws(CredentialError) -> RegistryCredentials? {
        if let user = environment["IMGBUILD_USERNAME"], let password = environment["IMGBUILD_PASSWORD"], !user.isEmpty {
            return RegistryCredentials(username: user, password: password)
        }
        let host = host.lowercased()
        let docker = try Self.readObject(configPath)
        if let helper = try helper(for: host, in: docker) {
            return try self.get(host, helper: helper)
        }
        for path in readPaths {
            guard let auths = (try? Self.readObject(path))?["auths"] as? [String: Any] else { continue }
            for key in Self.keys(for: host) {
                guard let entry = auths[key] as? [String: Any] else { continue }
                if let auth = entry["auth"] as? String, let decoded = Data(base64Encoded: auth).map({ String(decoding: $0, as: UTF8.self) }),
                   let colon = decoded.firstIndex(of: ":") {
                    return RegistryCredentials(username: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
                }
                if let user = entry["username"] as? String, let password = entry["password"] as? String {
                    return RegistryCredentials(username: user, password: password)
                }
            }
        }
        if let store = docker["credsStore"] as? String, !store.isEmpty { return try get(host, helper: store) }
        return nil
    }

    /// Files credentials for `host` as docker does: with its credential helper when `credHelpers` names one
    /// for it or `credsStore` is set, else base64 in `config.json`'s `auths` (the file kept 0600, its other
    /// settings untouched). Returns where they went.
    public func save(_ credentials: RegistryCredentials, for host: String) throws(CredentialError) -> String {
        let host = host.lowercased()
        let lock = try ConfigLock(path: resolvedConfigPath)
        defer { withExtendedLifetime(lock) {} }
        var config = try Self.readObject(resolvedConfigPath)
        let key = Self.loginKey(for: host)
        if let helper = try helper(for: host, in: config) ?? (config["credsStore"] as? String).flatMap({ $0.isEmpty ? nil : $0 }) {
            let request = ["ServerURL": key, "Username": credentials.username, "Secret": credentials.password]
            _ = try runHelper(helper, "store", input: (try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])) ?? Data(),
                              secret: credentials.password)
            // Asked back at once: a helper that claims to have stored them but cannot give them is found now, not at the next pull.
            guard try get(host, helper: helper)?.username == credentials.username else {
                throw .helperFailed(helper: helper, operation: "get", detail: "it does not give back the credentials it was asked to store")
            }
            return "docker-credential-\(helper)"
        }
        var auths = try Self.auths(config, path: resolvedConfigPath)
        auths[key] = ["auth": Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()]
        config["auths"] = auths
        try replaceConfig(with: config)
        return resolvedConfigPath
    }

    /// Forgets `host`'s credentials, in its helper and in `config.json`. Returns whether any were filed.
    public func remove(host: String) throws(CredentialError) -> Bool {
        let host = host.lowercased()
        let lock = try ConfigLock(path: resolvedConfigPath)
        defer { withExtendedLifetime(lock) {} }
        var config = try Self.readObject(resolvedConfigPath)
        let key = Self.loginKey(for: host)
        var found = false
        if let helper = try helper(for: host, in: config) ?? (config["credsStore"] as? String).flatMap({ $0.isEmpty ? nil : $0 }) {
            found = (try? runHelper(helper, "erase", input: Data(key.utf8))) != nil
        }
        if config["auths"] != nil {
            var auths = try Self.auths(config, path: resolvedConfigPath)
            for candidate in Self.keys(for: host) where auths[candidate] != nil {
                auths[candidate] = nil
                found = true
            }
            config["auths"] = auths
            try replaceConfig(with: config)
        }
        return found
    }

    /// The helper `credHelpers` names for `host`. A `credHelpers` that is not an object of names is an
    /// error: quietly ignoring it would file a password in clear that was meant for a helper.
    private func helper(for host: String, in config: [String: Any]) throws(CredentialError) -> String? {
        guard let value = config["credHelpers"] else { return nil }
        guard let helpers = value as? [String: Any] else { throw .unreadable(path: configPath, reason: "its credHelpers is not an object") }
        for key in Self.keys(for: host) {
            guard let named = helpers[key] else { continue }
            guard let name = named as? String else { throw .unreadable(path: configPath, reason: "its credHelpers entry for \(key) is not a name") }
            if !name.isEmpty { return name }
        }
        return nil
    }

    /// The `auths` object of a config (empty when absent); anything else there is an error, not replaced.
    static func auths(_ config: [String: Any], path: String) throws(CredentialError) -> [String: Any] {
        guard let value = config["auths"] else { return [:] }
        guard let auths = value as? [String: Any] else { throw .unreadable(path: path, reason: "its auths is not an object") }
        return auths
    }

    private func get(_ host: String, helper: String) throws(CredentialError) -> RegistryCredentials? {
        let output: Data
        do { output = try runHelper(helper, "get", input: Data(Self.loginKey(for: host).utf8)) } catch {
            // The protocol's answer for "nothing filed" is a failure saying so.
            if case .helperFailed(_, _, let detail) = error, detail.contains("credentials not found") { return nil }
            throw error
        }
        guard let answer = try? JSONSerialization.jsonObject(with: output) as? [String: Any],
              let user = answer["Username"] as? String, let secret = answer["Secret"] as? String else {
            throw .helperFailed(helper: helper, operation: "get", detail: "its answer is not {\"Username\",\"Secret\"} JSON")
        }
        return RegistryCredentials(username: user, password: secret)
    }


    /// Runs `docker-credential-NAME OPERATION` with `input` on its standard input; its standard output.
    /// Its outputs are read at the same time (a helper that fills one pipe cannot block), it is killed
    /// after ``helperDeadline``, and `secret` never appears in an error.
    private func runHelper(_ name: String, _ operation: String, input: Data, secret: String? = nil) throws(CredentialError) -> Data {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw .helperFailed(helper: name, operation: operation, detail: "not a credential helper name")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["docker-credential-" + name, operation]
        process.environment = environment
        // The input (a few hundred bytes) is written into the pipe before the helper starts, while this
        // process still holds the reading end: a helper that exits without reading it cannot make the
        // write fail with SIGPIPE.
        guard input.count <= 16 << 10 else {
            throw .helperFailed(helper: name, operation: operation, detail: "its input would be \(input.count) bytes, more than a credential needs")
        }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        stdin.fileHandleForWriting.write(input)
        try? stdin.fileHandleForWriting.close()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do { try process.run() } catch {
            throw .helperFailed(helper: name, operation: operation, detail: "it cannot be started: \(error.localizedDescription)")
        }
        let collected = HelperOutput()
        let group = DispatchGroup()
        for (pipe, isError) in [(stdout, false), (stderr, true)] {
            group.enter()
            DispatchQueue.global().async {
                collected.append(pipe.fileHandleForReading.readDataToEndOfFile(), error: isError)
                group.leave()
            }
        }
        if group.wait(timeout: .now() + helperDeadline) == .timedOut {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            throw .helperFailed(helper: name, operation: operation, detail: "it did not answer within \(Int(helperDeadline)) s")
        }
        process.waitUntilExit()
        let (output, errors) = collected.value
        guard process.terminationStatus == 0 else {
            var detail = String(decoding: output + errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if let secret, !secret.isEmpty { detail = detail.replacingOccurrences(of: secret, with: "(secret)") }
            throw .helperFailed(helper: name, operation: operation, detail: detail.isEmpty ? "it exited with status \(process.terminationStatus)" : String(detail.prefix(300)))
        }
        return output
    }

    /// A JSON object file, or an empty object when there is no file.
    static func readObject(_ path: String) throws(CredentialError) -> [String: Any] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            // Only a file that is not there reads as empty: one that cannot be read must not be replaced.
            if access(path, F_OK) != 0, errno == ENOENT { return [:] }
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) { return [:] }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .unreadable(path: path, reason: "it is not a JSON object")
        }
        return object
    }

    /// Replaces `config.json` in one step. The new file is created 0600 before a byte is written, so a
    /// secret is never readable by others, not even for an instant.
    private func replaceConfig(with config: [String: Any]) throws(CredentialError) {
        let path = resolvedConfigPath
        let folder = (path as NSString).deletingLastPathComponent
        let data: Data
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        } catch {
            throw .unwritable(path: path, reason: error.localizedDescription)
        }
        let temporary = folder + "/.config.json.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw .unwritable(path: path, reason: String(cString: strerror(errno))) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == data.count, synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw .unwritable(path: path, reason: reason)
        }
    }
}

/// An exclusive lock on `config.json.lock` beside the file, held while it is read, changed and replaced,
/// so two logins at once cannot lose each other's entries.
private final class ConfigLock {
    private let fd: Int32

    init(path: String) throws(CredentialError) {
        let folder = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        fd = open(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .unwritable(path: path + ".lock", reason: String(cString: strerror(errno))) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                close(fd)
                throw .unwritable(path: path + ".lock", reason: String(cString: strerror(errno)))
            }
        }
    }

    deinit { close(fd) }
}

/// A helper's standard output and error, gathered from two threads.
private final class HelperOutput: Sendable {
    private let state = NIOLockedValueBox<(output: Data, errors: Data)>((Data(), Data()))

    func append(_ data: Data, error: Bool) {
        state.withLockedValue { if error { $0.errors.append(data) } else { $0.output.append(data) } }
    }

    var value: (Data, Data) { state.withLockedValue { ($0.output, $0.errors) } }
}

/// Why credentials could not be read or filed.
public enum CredentialError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case helperFailed(helper: String, operation: String, detail: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read \(path): \(reason); fix or remove it (docker, podman and crane read it too)"
        case let .unwritable(path, reason): return "cannot write \(path): \(reason)"
        case let .helperFailed(helper, operation, detail):
            return "the credential helper docker-credential-\(helper) failed to \(operation): \(detail) (config.json names it in credHelpers or credsStore)"
        }
    }
}
