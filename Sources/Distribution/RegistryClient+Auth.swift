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
            var query = components.queryItems ?? []
            if let service = parameters["service"] { query.append(URLQueryItem(name: "service", value: service)) }
            query.append(URLQueryItem(name: "scope", value: "repository:\(repository):\(actions)"))
            components.queryItems = query
            guard let url = components.string else { throw DistributionError.unauthorized(registry: base, detail: "bad token realm") }
            var request = HTTPClientRequest(url: url)
            if let basic = await auth.basic { request.headers.add(name: "Authorization", value: basic) }
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

/// Credentials from Docker's configuration (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
/// `auths` entries with a base64 `user:password` in `auth`).
enum DockerConfig {
    static func credentials(for host: String, environment: [String: String]) -> RegistryCredentials? {
        if let user = environment["IMGBUILD_USERNAME"], let password = environment["IMGBUILD_PASSWORD"], !user.isEmpty {
            return RegistryCredentials(username: user, password: password)
        }
        let directory = environment["DOCKER_CONFIG"] ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.docker")
        guard let data = FileManager.default.contents(atPath: directory + "/config.json") else { return nil }
        struct Config: Decodable {
            struct Entry: Decodable { var auth: String?; var username: String?; var password: String? }
            var auths: [String: Entry]?
        }
        guard let config = try? JSONDecoder().decode(Config.self, from: data), let auths = config.auths else { return nil }
        for key in [host, "https://\(host)", "http://\(host)", "https://\(host)/v2/", "http://\(host)/v2/"] {
            guard let entry = auths[key] else { continue }
            if let auth = entry.auth, let decoded = Data(base64Encoded: auth).map({ String(decoding: $0, as: UTF8.self) }),
               let colon = decoded.firstIndex(of: ":") {
                return RegistryCredentials(username: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
            }
            if let user = entry.username, let password = entry.password { return RegistryCredentials(username: user, password: password) }
        }
        return nil
    }
}
