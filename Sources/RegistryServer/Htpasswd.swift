import Foundation
import HummingbirdBcrypt

/// Users from an htpasswd file with bcrypt entries (`htpasswd -B` writes `user:$2y$…`).
struct Htpasswd: Sendable {
    private let hashes: [String: String]

    /// Why an htpasswd file cannot be used.
    struct InvalidFile: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "htpasswd file '\(path)': \(reason)" }
    }

    init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw InvalidFile(path: path, reason: "cannot be read") }
        var hashes: [String: String] = [:]
        for (number, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw InvalidFile(path: path, reason: "line \(number + 1) has no ':'") }
            let hash = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            guard hash.hasPrefix("$2y$") || hash.hasPrefix("$2b$") || hash.hasPrefix("$2a$") else {
                throw InvalidFile(path: path, reason: "line \(number + 1) is not a bcrypt entry: create entries with 'htpasswd -B'")
            }
            hashes[String(line[..<colon])] = hash
        }
        self.hashes = hashes
    }

    /// Whether a `Basic` Authorization header names a user with the right password.
    func accepts(authorization: String?) -> Bool {
        guard let authorization, authorization.hasPrefix("Basic "),
              let decoded = Data(base64Encoded: String(authorization.dropFirst(6))).map({ String(decoding: $0, as: UTF8.self) }),
              let colon = decoded.firstIndex(of: ":"), let hash = hashes[String(decoded[..<colon])] else { return false }
        // HummingbirdBcrypt verifies $2b$; $2y$ entries are the same algorithm.
        let normalised = "$2b$" + hash.dropFirst(4)
        return Bcrypt.verify(String(decoded[decoded.index(after: colon)...]), hash: normalised)
    }
}
