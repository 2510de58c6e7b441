import Foundation
import OCI
import Store
import NIOConcurrencyHelpers

/// The blob upload sessions of one running server.
///
/// Each session belongs to the repository and the user that opened it, and is written by one request at
/// a time: a `PATCH` still streaming and a `PUT` that hashes and commits can never overlap, so bytes
/// are hashed and published only when no handle can change them. Sessions are bounded in number; those
/// idle longer than `idleLimit` are removed, with their bytes, whenever a session is opened. Sessions
/// live as long as the server; files an earlier run left in `uploads/` are not touched (another server
/// may share the store) and `imgbuild gc`, which runs alone, removes them.
final class UploadSessions: Sendable {
    /// Why a request cannot use a session.
    enum Refusal: Error, Equatable {
        case unknown
        /// Another request is writing to it.
        case busy
        /// Every session is in use and none is idle long enough to be reclaimed.
        case full
    }

    private struct Session {
        let repository: RepositoryName
        let user: String?
        var busy = false
        var lastUsed = ContinuousClock.now
    }

    let store: Store
    let limit: Int
    let idleLimit: Duration
    private let sessions = NIOLockedValueBox<[String: Session]>([:])

    init(store: Store, limit: Int = 256, idleLimit: Duration = .seconds(15 * 60)) {
        self.store = store
        self.limit = limit
        self.idleLimit = idleLimit
    }

    /// Opens a session for `repository` and `user`, held by the caller until ``release(_:)``.
    func open(_ repository: RepositoryName, user: String?) throws -> String {
        let now = ContinuousClock.now
        let stale: [String] = sessions.withLockedValue { sessions in
            let idle = sessions.filter { !$0.value.busy && now - $0.value.lastUsed > idleLimit }.map(\.key)
            for id in idle { sessions[id] = nil }
            return idle
        }
        for id in stale { store.cancelUpload(id) }
        let id = try store.newUploadSession()
        let admitted = sessions.withLockedValue { sessions in
            guard sessions.count < limit else { return false }
            sessions[id] = Session(repository: repository, user: user, busy: true)
            return true
        }
        guard admitted else {
            store.cancelUpload(id)
            throw Refusal.full
        }
        return id
    }

    /// Takes the session for one request; the same repository and user that opened it only.
    func acquire(_ id: String, _ repository: RepositoryName, user: String?) throws(Refusal) -> String {
        try sessions.withLockedValue { sessions -> Result<String, Refusal> in
            guard var session = sessions[id], session.repository == repository, session.user == user,
                  let path = store.uploadPath(id) else { return .failure(.unknown) }
            guard !session.busy else { return .failure(.busy) }
            session.busy = true
            sessions[id] = session
            return .success(path)
        }.get()
    }

    /// Whether the session exists for this repository and user.
    func owns(_ id: String, _ repository: RepositoryName, user: String?) -> Bool {
        sessions.withLockedValue { $0[id].map { $0.repository == repository && $0.user == user } ?? false }
    }

    /// Gives a session back after a request, for the next one.
    func release(_ id: String) {
        sessions.withLockedValue { sessions in
            sessions[id]?.busy = false
            sessions[id]?.lastUsed = .now
        }
    }

    /// Ends a session held by the caller; its file is gone or was committed.
    func close(_ id: String) {
        sessions.withLockedValue { $0[id] = nil }
        store.cancelUpload(id)
    }
}
