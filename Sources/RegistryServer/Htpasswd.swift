import Foundation
import HummingbirdBcrypt
import OCI

/// Users from an htpasswd file with bcrypt entries (`htpasswd -B` writes `user:$2y$…`).
struct Htpasswd: Sendable {
    private let hashes: [String: String]
    /// A hash of a random password at the highest cost in the file: an unknown user's password is checked
    /// against it, so that a wrong user takes as long to refuse as a wrong password.
    let decoyHash: String

    /// Why an htpasswd file cannot be used.
    struct InvalidFile: Error, CustomStringConvertible {
        let path: String
        let reason: String
        var description: String { "htpasswd file '\(path)': \(reason)" }
    }

    init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw InvalidFile(path: path, reason: "cannot be read") }
        var hashes: [String: String] = [:]
        var highestCost: UInt8 = 4
        for (number, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw InvalidFile(path: path, reason: "line \(number + 1) has no ':'") }
            let hash = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            guard hash.hasPrefix("$2y$") || hash.hasPrefix("$2b$") || hash.hasPrefix("$2a$"), hash.count == 60,
                  let cost = UInt8(hash.dropFirst(4).prefix(2)), (4...31).contains(cost) else {
                throw InvalidFile(path: path, reason: "line \(number + 1) is not a bcrypt entry: create entries with 'htpasswd -B'")
            }
            highestCost = max(highestCost, cost)
            // HummingbirdBcrypt verifies $2b$; $2y$ and $2a$ entries are the same algorithm.
            hashes[String(line[..<colon])] = "$2b$" + hash.dropFirst(4)
        }
        self.hashes = hashes
        var random = [UInt8](repeating: 0, count: 18)
        for index in random.indices { random[index] = UInt8.random(in: 0...255) }
        decoyHash = Bcrypt.hash(Data(random).base64EncodedString(), cost: highestCost)
        let started = ContinuousClock.now
        _ = Bcrypt.verify("", hash: decoyHash)
        slowestCheck = ContinuousClock.now - started
    }

    /// How long a check at the highest cost in the file takes: every check is made to take at least this
    /// long, so that a user whose entry has a lower cost is not told apart from an unknown one.
    let slowestCheck: Duration

    /// The credentials of a `Basic` Authorization header, or nil when it is not one.
    static func credentials(_ authorization: String) -> (user: String, password: String)? {
        guard authorization.hasPrefix("Basic "), authorization.utf8.count <= 4096,
              let data = Data(base64Encoded: String(authorization.dropFirst(6))) else { return nil }
        let decoded = String(decoding: data, as: UTF8.self)
        guard let colon = decoded.firstIndex(of: ":") else { return nil }
        return (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))
    }

    /// Whether the password is the user's. Runs bcrypt whether or not the user exists.
    func verify(user: String, password: String) -> Bool {
        guard let hash = hashes[user] else {
            _ = Bcrypt.verify(password, hash: decoyHash)
            return false
        }
        return Bcrypt.verify(password, hash: hash)
    }
}

/// Checks write credentials without letting anonymous clients take the server's CPU: bcrypt runs on one
/// thread of its own at the lowest scheduling priority (reads never wait for it), at most `queueLimit`
/// checks wait for it (more are refused at once), and credentials that passed are remembered by their
/// SHA-256, so a client pushing many blobs pays for bcrypt once. Every first check takes as long as one
/// at the file's highest cost, whoever the user is.
final class PasswordVerifier: @unchecked Sendable {
    /// What a request's credentials turned out to be.
    enum Outcome: Equatable {
        case user(String)
        case denied
        /// Too many checks are waiting: try again later (429).
        case busy
    }

    let queueLimit: Int
    private let htpasswd: Htpasswd
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var remembered: [Digest: String] = [:]
    private static let rememberedLimit = 1024

    init(_ htpasswd: Htpasswd, queueLimit: Int = 16) {
        self.htpasswd = htpasswd
        self.queueLimit = queueLimit
        let thread = Thread { [unowned self] in self.work() }
        thread.name = "imgbuild-bcrypt"
        thread.start()
    }

    /// The user an Authorization header proves, `.denied`, or `.busy`.
    func check(_ authorization: String?) async -> Outcome {
        guard let authorization, let (user, password) = Htpasswd.credentials(authorization) else { return .denied }
        let key = Digest.of(Data(authorization.utf8))
        if let known = condition.withLock({ remembered[key] }) { return .user(known) }
        let outcome: (accepted: Bool, took: Duration)? = await withCheckedContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            guard jobs.count < queueLimit else { return continuation.resume(returning: nil) }
            jobs.append { [htpasswd] in
                let started = ContinuousClock.now
                let accepted = htpasswd.verify(user: user, password: password)
                continuation.resume(returning: (accepted, ContinuousClock.now - started))
            }
            condition.signal()
        }
        guard let outcome else { return .busy }
        // Padded (asleep, not on the bcrypt thread) to the slowest check in the file.
        if outcome.took < htpasswd.slowestCheck { try? await Task.sleep(for: htpasswd.slowestCheck - outcome.took) }
        guard outcome.accepted else { return .denied }
        condition.withLock {
            if remembered.count >= Self.rememberedLimit { remembered.removeAll() }
            remembered[key] = user
        }
        return .user(user)
    }

    private func work() {
        // Lowest priority for this thread only (on Linux the nice value of `who == 0` is the calling
        // thread's): bcrypt uses only time that nothing else wants.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
