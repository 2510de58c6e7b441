import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import OCI

/// Who to be at a registry.
public struct RegistryCredentials: Sendable {
    public var username: String
    public var password: String
    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// How to reach registries: TLS trust, plain HTTP permission, credentials, retries.
public struct RegistryOptions: Sendable {
    /// Extra trusted CA certificates (PEM) besides the system's.
    public var caFile: String?
    /// Allow plain HTTP to hosts other than this machine.
    public var insecure = false
    /// Explicit credentials; otherwise ~/.docker/config.json is consulted per registry.
    public var credentials: RegistryCredentials?
    /// Attempts for each request that may be retried (GET, HEAD, a blob upload).
    public var attempts = 4
    /// How long a connection may take to open; a registry that is down is retried until then, each attempt.
    public var connectTimeout: TimeAmount = .seconds(10)
    /// Blobs larger than this are uploaded in chunks of this size (PATCH with Content-Range).
    public var chunkSize: Int64 = 16 << 20
    /// Whether credentials (given, or filed for the registry) may be sent: false for plain HTTP to another
    /// machine reached by falling back from HTTPS.
    public var sendCredentials = true
    /// The environment, for DOCKER_CONFIG and HOME.
    public var environment: [String: String] = ProcessInfo.processInfo.environment

    public init() {}
}

/// A client of one repository on a registry that speaks the OCI distribution spec v1.1.
///
/// Its methods are split by API area: blobs (`RegistryClient+Blobs.swift`), manifests
/// (`RegistryClient+Manifests.swift`) and auth (`RegistryClient+Auth.swift`).
public final class RegistryClient: @unchecked Sendable {
    /// `http://host:port` or `https://host`
    public let base: String
    public let repository: String
    let options: RegistryOptions
    let http: HTTPClient
    /// `pull` or `pull,push`: the scope asked of a token service.
    let actions: String
    let auth: AuthState

    public init(base: String, repository: String, push: Bool, options: RegistryOptions) throws {
        guard let url = URL(string: base), let scheme = url.scheme, ["http", "https"].contains(scheme), let host = url.host else {
            throw DistributionError.invalidLocation(base, reason: "expected http://HOST[:PORT] or https://HOST[:PORT]")
        }
        if scheme == "http" && !options.insecure && !RegistryClient.isThisMachine(host) {
            throw DistributionError.insecureRefused(base)
        }
        self.base = base
        self.repository = repository
        self.options = options
        self.actions = push ? "pull,push" : "pull"
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: options.connectTimeout, read: .seconds(120))
        configuration.redirectConfiguration = .follow(max: 5, allowCycles: false)
        if let caFile = options.caFile {
            var tls = TLSConfiguration.makeClientConfiguration()
            let certificates = try NIOSSLCertificate.fromPEMFile(caFile)
            tls.additionalTrustRoots = [.certificates(certificates)]
            configuration.tlsConfiguration = tls
        }
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        // Filed as docker files it: lowercase, an IPv6 address in brackets.
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let hostKey = (url.port.map { "\(bracketed):\($0)" } ?? bracketed).lowercased()
        self.auth = AuthState(credentials: options.sendCredentials
            ? try options.credentials ?? CredentialStore(environment: options.environment).credentials(for: hostKey) : nil)
    }

    /// A client of `base` (`https://HOST[:PORT]`) as docker reaches a registry written without a scheme:
    /// HTTPS, unless the host is this machine (or `insecure` is set) and it does not speak TLS at all, in
    /// which case plain HTTP. A registry that speaks TLS with a certificate that is not trusted stays on
    /// HTTPS, so the error says so instead of falling back.
    ///
    /// Only an answer that proves the server speaks plain HTTP (a TLS record it cannot have sent) makes
    /// it fall back; a registry that is down, slow, or fails on its certificate stays on HTTPS, so the
    /// error says what is wrong. Credentials are never sent over a fallback to another machine.
    public static func negotiating(base: String, repository: String, push: Bool, options: RegistryOptions) async throws -> RegistryClient {
        let secure = try RegistryClient(base: base, repository: repository, push: push, options: options)
        guard let url = URL(string: base), let host = url.host, options.insecure || isThisMachine(host) else { return secure }
        guard await secure.answersInPlainHTTP() else { return secure }
        var plainOptions = options
        if !isThisMachine(host) { plainOptions.sendCredentials = false }
        let plain = try RegistryClient(base: "http://" + base.dropFirst("https://".count), repository: repository, push: push, options: plainOptions)
        await secure.shutdown()
        return plain
    }

    /// Whether the client will answer a challenge with credentials.
    public var sendsCredentials: Bool { options.sendCredentials }

    /// Checks that the registry accepts the client's credentials (`GET /v2/` answered 200 once any
    /// challenge is met), as `docker login` does; throws ``DistributionError/unauthorized(registry:detail:)`` if not.
    public func checkLogin() async throws {
        _ = try await send("log in", retryable: true, expecting: [200]) {
            var request = HTTPClientRequest(url: base + "/v2/")
            request.method = .GET
            return request
        }
    }

    /// Whether a TLS handshake with the registry failed because it answered with something that is not
    /// TLS at all (BoringSSL's WRONG_VERSION_NUMBER: plain HTTP, most likely).
    func answersInPlainHTTP() async -> Bool {
        var request = HTTPClientRequest(url: base + "/v2/")
        request.method = .GET
        do {
            let response = try await http.execute(request, timeout: .seconds(10))
            _ = try? await response.body.collect(upTo: 1 << 16)
            return false
        } catch {
            return "\(error)".contains("WRONG_VERSION_NUMBER")
        }
    }

    deinit { try? http.syncShutdown() }

    /// Releases the client's connections.
    public func shutdown() async {
        try? await http.shutdown()
    }

    var repositoryURL: String { "\(base)/v2/\(repository)" }

    /// Sends a request built by `make`, answering auth challenges and, when `retryable`, retrying
    /// connection failures, 429 and 5xx with exponential backoff.
    func send(_ operation: String, retryable: Bool, expecting: Set<UInt>,
              make: () throws -> HTTPClientRequest) async throws -> HTTPClientResponse {
        var lastFailure = ""
        var authenticated = false
        var attempt = 0
        while attempt < (retryable ? options.attempts : 1) {
            var request = try make()
            if let header = await auth.header() { request.headers.replaceOrAdd(name: "Authorization", value: header) }
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .seconds(600))
            } catch let error as NIOSSLError {
                // A certificate that fails verification will fail again: no retry.
                throw DistributionError.untrustedCertificate(registry: base, detail: RegistryClient.describe(error))
            } catch {
                lastFailure = RegistryClient.describe(error)
                attempt += 1
                if retryable && attempt < options.attempts { try await backoff(attempt) }
                continue
            }
            let status = response.status.code
            if status == 401 && !authenticated {
                authenticated = true
                let challenge = response.headers.first(name: "WWW-Authenticate") ?? ""
                _ = try? await response.body.collect(upTo: 1 << 16)
                try await authenticate(challenge: challenge)
                continue
            }
            if expecting.contains(status) { return response }
            let detail = await RegistryClient.errorDetail(response)
            if status == 401 || status == 403 {
                throw DistributionError.unauthorized(registry: base, detail: "\(status) \(detail)")
            }
            if retryable && (status == 429 || status >= 500) {
                lastFailure = "\(status) \(detail)"
                attempt += 1
                if attempt < options.attempts { try await backoff(attempt, retryAfter: response.headers.first(name: "Retry-After")) }
                continue
            }
            throw DistributionError.registry(operation: operation, status: Int(status), detail: detail)
        }
        throw DistributionError.transport(operation: operation, reason: lastFailure)
    }

    func backoff(_ attempt: Int, retryAfter: String? = nil) async throws {
        let seconds = retryAfter.flatMap(Double.init).map { min($0, 10) } ?? min(0.2 * pow(2, Double(attempt - 1)), 5)
        try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
    }

    /// The registry's `{"errors":[{"code","message","detail"}]}` as one line.
    static func errorDetail(_ response: HTTPClientResponse) async -> String {
        guard let body = try? await response.body.collect(upTo: 1 << 20) else { return response.status.reasonPhrase }
        struct Errors: Decodable {
            struct Entry: Decodable { var code: String?; var message: String? }
            var errors: [Entry]
        }
        if let parsed = try? JSONDecoder().decode(Errors.self, from: Data(buffer: body)), !parsed.errors.isEmpty {
            return parsed.errors.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") }.joined(separator: "; ")
        }
        let text = String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? response.status.reasonPhrase : String(text.prefix(200))
    }

    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        // BoringSSL's messages carry a source path; keep the reason only.
        if let range = text.range(of: "OPENSSL_internal:") {
            return String(text[range.upperBound...].prefix { $0 != " " && $0 != "]" })
        }
        return text
    }

    /// A location from a `Location` header, made absolute.
    func absolute(_ location: String) -> String {
        if location.hasPrefix("http://") || location.hasPrefix("https://") { return location }
        return base + (location.hasPrefix("/") ? "" : "/") + location
    }
}
