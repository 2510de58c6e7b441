import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

/// The Authorization header in use for a registry, learnt from its first challenge.
actor AuthState {
    let credentials: RegistryCredentials?
    private var current: String?

    init(credentials: RegistryCredentials?) {
        self.credentials = credentials
    }

    func header() -> String? { current }
    func set(_ header: String) { current = header }

    var basic: String? {
        credentials.map { "Basic " + Data("\($0.username):\($0.password)".utf8).base64EncodedString() }
    }
}

extension RegistryClient {
    /// Answers a `WWW-Authenticate` challenge: `Basic` with the credentials, or `Bearer` by asking the
    /// token service at `realm` for a token with `service` and this repository's scope.
    func authenticate(challenge: String) async throws {
        let (scheme, parameters) = RegistryClient.parseChallenge(challenge)
        switch scheme.lowercased() {
        case "basic":
            guard let basic = await auth.basic else {
                throw DistributionError.unauthorized(registry: base, detail: "it requires a user name and password")
            }
            await auth.set(basic)
        case "bearer":
            guard let realm = parameters["realm"], var components = URLComponents(string: realm) else {
                throw DistributionError.unauthorized(registry: base, detail: "its Bearer challenge has no realm")
            }
            let basic = await auth.basic
            let sendsCredentials: Bool
            switch RegistryClient.tokenRealmPolicy(realm, registry: base, hasCredentials: basic != nil, insecure: options.insecure) {
            case .withCredentials: sendsCredentials = true
            case .anonymous: sendsCredentials = false
            case .refused(let reason): throw DistributionError.unauthorized(registry: base, detail: reason)
            }
            var query = components.queryItems ?? []
            if let service = parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
            // A login check names no repository, and asks for no scope (as `docker login` does).
            if !repository.isEmpty { query.append(URLQueryItem(name: "scope", value: "repository:\(repository):\(actions)")) }
            components.queryItems = query
            guard let url = components.string else { throw DistributionError.unauthorized(registry: base, detail: "bad token realm") }
            var request = HTTPClientRequest(url: url)
            if sendsCredentials, let basic { request.headers.add(name: "Authorization", value: basic) }
            let response: HTTPClientResponse
            do { response = try await http.execute(request, timeout: .seconds(60)) } catch {
                throw DistributionError.transport(operation: "token request to \(components.host ?? realm)", reason: RegistryClient.describe(error))
            }
            guard response.status == .ok else {
                let detail = await RegistryClient.errorDetail(response)
                throw DistributionError.unauthorized(registry: base, detail: "the token service answered \(response.status.code) \(detail)")
            }
            struct Token: Decodable { var token: String?; var access_token: String? }
            let body = try await response.body.collect(upTo: 1 << 20)
            guard let token = try? JSONDecoder().decode(Token.self, from: Data(buffer: body)), let value = token.token ?? token.access_token else {
                throw DistributionError.unauthorized(registry: base, detail: "the token service's answer holds no token")
            }
            await auth.set("Bearer " + value)
        default:
            throw DistributionError.unauthorized(registry: base, detail: "unsupported authentication '\(scheme)'")
        }
    }

    /// What may be sent to a token service that a registry's challenge names.
    enum TokenRealmPolicy: Equatable {
        case withCredentials
        case anonymous
        case refused(String)
    }

    /// A registry names its token service, so a hostile or hijacked registry could name any host. The
    /// password goes to a realm only over HTTPS or on this machine; a plain-HTTP realm elsewhere is
    /// refused outright for an HTTPS registry (a downgrade), and without credentials is reached only with
    /// `--insecure`. `--insecure` never lets a password travel in the clear to another machine.
    static func tokenRealmPolicy(_ realm: String, registry: String, hasCredentials: Bool, insecure: Bool) -> TokenRealmPolicy {
        guard let url = URL(string: realm), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = url.host, !host.isEmpty else {
            return .refused("its Bearer challenge names the token service '\(realm)', which is not an http(s) URL")
        }
        if scheme == "https" || isThisMachine(host) { return hasCredentials ? .withCredentials : .anonymous }
        if registry.lowercased().hasPrefix("https:") {
            return .refused("it is HTTPS but sends clients to the plain-HTTP token service \(realm) on \(host): refusing that downgrade")
        }
        if hasCredentials {
            return .refused("it asks for the password to be sent to \(host) (\(realm)) over plain HTTP; credentials go to a token service only over HTTPS or on this machine, --insecure or not")
        }
        return insecure ? .anonymous : .refused("its token service \(realm) is plain HTTP on another machine: pass --insecure to ask it for an anonymous token")
    }

    /// Whether a host names this machine (plain HTTP to it is allowed without --insecure).
    static func isThisMachine(_ host: String) -> Bool {
        ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased())
    }

    /// `Bearer realm="https://auth",service="registry",scope="a,b"` → ("Bearer", [realm: …, …])
    static func parseChallenge(_ header: String) -> (String, [String: String]) {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard let space = trimmed.firstIndex(of: " ") else { return (trimmed, [:]) }
        let scheme = String(trimmed[..<space])
        var parameters: [String: String] = [:]
        var rest = trimmed[trimmed.index(after: space)...]
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let equals = rest.firstIndex(of: "=") else { break }
            let key = rest[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let character = rest.first, character != "\"" {
                    if character == "\\" { rest = rest.dropFirst() }
                    if let next = rest.first { value.append(next); rest = rest.dropFirst() }
                }
                rest = rest.dropFirst()
            } else {
                let end = rest.firstIndex(of: ",") ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            parameters[key] = value
        }
        return (scheme, parameters)
    }
}
