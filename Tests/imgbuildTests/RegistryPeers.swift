import CommandLineTesting
import Foundation

/// The CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, with its own storage.
final class DistributionRegistry {
    let port = freePort()
    let directory = makeTemporaryDirectory("registry")
    private var server: BackgroundProcess!

    var url: String { "http://127.0.0.1:\(port)" }

    private var tokenService: BackgroundProcess?

    /// How the registry checks who is asking.
    enum Auth {
        case none
        /// Basic auth against an htpasswd file: user → password.
        case htpasswd([String: String])
        /// The bearer-token flow with fixtures/proxy/token_server.py as the token service.
        case token(user: String, password: String)
    }

    /// `tls`: serve HTTPS with a new self-signed certificate for 127.0.0.1 (its PEM is ``certificate``).
    init(auth: Auth = .none, tls: Bool = false) throws {
        var htpasswd: [String: String]?
        if case .htpasswd(let users) = auth { htpasswd = users }
        var config = """
        version: 0.1
        log:
          level: info
        storage:
          filesystem:
            rootdirectory: \(directory)/data
          delete:
            enabled: false
        http:
          addr: 127.0.0.1:\(port)

        """
        if let htpasswd {
            var lines = ""
            for (user, password) in htpasswd {
                lines += try run("/usr/bin/htpasswd", ["-Bbn", user, password]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "\n"
            }
            write(lines, to: directory + "/htpasswd")
            config += "auth:\n  htpasswd:\n    realm: test-realm\n    path: \(directory)/htpasswd\n"
        }
        if case .token(let user, let password) = auth {
            let tokenPort = freePort()
            try makeCertificate(name: "token", subject: "/CN=imgbuild-test-token")
            tokenService = try BackgroundProcess("/usr/bin/env", ["python3", repositoryRoot + "/fixtures/proxy/token_server.py", String(tokenPort),
                                                                 directory + "/token-key.pem", directory + "/token-cert.pem",
                                                                 user, password, "test-issuer", "test-registry"],
                                                 log: directory + "/token.log")
            try waitForPort(tokenPort)
            config += """
            auth:
              token:
                realm: http://127.0.0.1:\(tokenPort)/token
                service: test-registry
                issuer: test-issuer
                rootcertbundle: \(directory)/token-cert.pem

            """
        }
        if tls {
            try makeCertificate(name: "tls", subject: "/CN=127.0.0.1", extensions: ["-addext", "subjectAltName=IP:127.0.0.1"])
            config = config.replacingOccurrences(of: "  addr: 127.0.0.1:\(port)\n", with: """
              addr: 127.0.0.1:\(port)
              tls:
                certificate: \(directory)/tls-cert.pem
                key: \(directory)/tls-key.pem

            """)
        }
        write(config, to: directory + "/config.yml")
        server = try BackgroundProcess("/usr/bin/docker-registry", ["serve", directory + "/config.yml"], log: directory + "/log")
        try waitForPort(port)
    }

    /// The TLS certificate (PEM) when serving HTTPS.
    var certificate: String { directory + "/tls-cert.pem" }

    private func makeCertificate(name: String, subject: String, extensions: [String] = []) throws {
        let result = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
                                                  "-keyout", directory + "/\(name)-key.pem", "-out", directory + "/\(name)-cert.pem"] + extensions)
        precondition(result.status == 0, result.stderr)
    }

    func stop() {
        server.stop()
        tokenService?.stop()
    }
}

/// fixtures/proxy/registry_proxy.py in front of a registry.
final class RegistryProxy {
    let port = freePort()
    let logPath = makeTemporaryDirectory("proxy") + "/requests.log"
    private var process: BackgroundProcess!

    var url: String { "http://127.0.0.1:\(port)" }

    init(upstream: DistributionRegistry, options: [String] = []) throws {
        process = try BackgroundProcess("/usr/bin/env", ["python3", repositoryRoot + "/fixtures/proxy/registry_proxy.py",
                                                          String(port), String(upstream.port), logPath] + options,
                                        log: logPath + ".stderr")
        try waitForPort(port)
    }

    /// The requests seen: (method, path, body bytes forwarded, status or DROPPED).
    var requests: [(method: String, path: String, bytes: Int, status: String)] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { line in
            let parts = line.split(separator: " ").map(String.init)
            return (parts[0], parts[1], Int(parts[2]) ?? 0, parts[3])
        }
    }

    /// Bytes sent in blob upload bodies (PATCH, and PUT with a body).
    var uploadedBlobBytes: Int {
        requests.filter { ($0.method == "PUT" || $0.method == "PATCH") && $0.path.contains("/blobs/uploads/") }.reduce(0) { $0 + $1.bytes }
    }

    /// The digests of blobs whose upload was completed (`PUT …?digest=`).
    var completedBlobUploads: Set<String> {
        Set(requests.filter { $0.method == "PUT" && $0.path.contains("/blobs/uploads/") && $0.status == "201" }.compactMap { request in
            request.path.components(separatedBy: "digest=").last.map { $0.removingPercentEncoding ?? $0 }
        })
    }

    func stop() { process.stop() }
}
