import Foundation

/// Registry credentials where docker, podman, skopeo and crane keep them: the `auths` of docker's
/// `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), its credential helpers
/// (`credHelpers` per registry, `credsStore` for all: the `docker-credential-NAME` programs, spoken to
/// with their get/store/erase protocol), and, for reading, the containers `auth.json` that podman and
/// skopeo write (`$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`).
public struct CredentialStore: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    /// The file `login` writes: docker's `config.json`.
    public var configPath: String {
        (environment["DOCKER_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.docker")) + "/config.json"
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
    /// credential helper named for it, then the files, then the default helper. Nil when none.
    public func credentials(for host: String) -> RegistryCredentials? {
        if let user = environment["IMGBUILD_USERNAME"], let password = environment["IMGBUILD_PASSWORD"], !user.isEmpty {
            return RegistryCredentials(username: user, password: password)
        }
        let docker = (try? Self.readObject(configPath)) ?? [:]
        if let helper = helper(for: host, in: docker) {
            return try? self.get(host, helper: helper)
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
        if let store = docker["credsStore"] as? String, !store.isEmpty { return try? get(host, helper: store) }
        return nil
    }

    /// Files credentials for `host` as docker does: with its credential helper when `credHelpers` names one
    /// for it or `credsStore` is set, else base64 in `config.json`'s `auths` (the file kept 0600, its other
    /// settings untouched). Returns where they went.
    public func save(_ credentials: RegistryCredentials, for host: String) throws(CredentialError) -> String {
        var config = try Self.readObject(configPath)
        let key = Self.loginKey(for: host)
        if let helper = helper(for: host, in: config) ?? (config["credsStore"] as? String).flatMap({ $0.isEmpty ? nil : $0 }) {
            let request = ["ServerURL": key, "Username": credentials.username, "Secret": credentials.password]
            _ = try runHelper(helper, "store", input: (try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys])) ?? Data())
            return "docker-credential-\(helper)"
        }
        var auths = config["auths"] as? [String: Any] ?? [:]
        auths[key] = ["auth": Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()]
        config["auths"] = auths
        try write(config)
        return configPath
    }

    /// Forgets `host`'s credentials, in its helper and in `config.json`. Returns whether any were filed.
    public func remove(host: String) throws(CredentialError) -> Bool {
        var config = try Self.readObject(configPath)
        let key = Self.loginKey(for: host)
        var found = false
        if let helper = helper(for: host, in: config) ?? (config["credsStore"] as? String).flatMap({ $0.isEmpty ? nil : $0 }) {
            found = (try? runHelper(helper, "erase", input: Data(key.utf8))) != nil
        }
        if var auths = config["auths"] as? [String: Any] {
            for candidate in Self.keys(for: host) where auths[candidate] != nil {
                auths[candidate] = nil
                found = true
            }
            config["auths"] = auths
            try write(config)
        }
        return found
    }

    private func helper(for host: String, in config: [String: Any]) -> String? {
        guard let helpers = config["credHelpers"] as? [String: String] else { return nil }
        return Self.keys(for: host).lazy.compactMap { helpers[$0] }.first { !$0.isEmpty }
    }

    private func get(_ host: String, helper: String) throws(CredentialError) -> RegistryCredentials? {
        let output = try runHelper(helper, "get", input: Data(Self.loginKey(for: host).utf8))
        guard let answer = try? JSONSerialization.jsonObject(with: output) as? [String: Any],
              let user = answer["Username"] as? String, let secret = answer["Secret"] as? String else {
            throw .helperFailed(helper: helper, operation: "get", detail: "its answer is not {\"Username\",\"Secret\"} JSON")
        }
        return RegistryCredentials(username: user, password: secret)
    }

    /// Runs `docker-credential-NAME OPERATION` with `input` on its standard input; its standard output.
    private func runHelper(_ name: String, _ operation: String, input: Data) throws(CredentialError) -> Data {
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
            throw .helperFailed(helper: name, operation: operation, detail: "not a credential helper name")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["docker-credential-" + name, operation]
        process.environment = environment
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do { try process.run() } catch {
            throw .helperFailed(helper: name, operation: operation, detail: "it cannot be started: \(error.localizedDescription)")
        }
        stdin.fileHandleForWriting.write(input)
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let detail = String(decoding: output + errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw .helperFailed(helper: name, operation: operation, detail: detail.isEmpty ? "it exited with status \(process.terminationStatus)" : String(detail.prefix(300)))
        }
        return output
    }

    /// A JSON object file, or an empty object when there is no file.
    static func readObject(_ path: String) throws(CredentialError) -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else { return [:] }
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) { return [:] }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .unreadable(path: path, reason: "it is not a JSON object")
        }
        return object
    }

    /// Replaces `config.json` in one step, readable by its owner only.
    private func write(_ config: [String: Any]) throws(CredentialError) {
        let folder = (configPath as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
            let temporary = folder + "/.config.json.\(getpid())"
            guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
                throw CredentialError.unwritable(path: configPath, reason: String(cString: strerror(errno)))
            }
            guard rename(temporary, configPath) == 0 else {
                let reason = String(cString: strerror(errno))
                unlink(temporary)
                throw CredentialError.unwritable(path: configPath, reason: reason)
            }
        } catch let error as CredentialError {
            throw error
        } catch {
            throw .unwritable(path: configPath, reason: error.localizedDescription)
        }
    }
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
