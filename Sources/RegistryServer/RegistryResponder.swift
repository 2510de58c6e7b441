import Foundation
import HTTPTypes
import Hummingbird
import OCI
import RegistryRoutes
import SemVer
import Store
import NIOConcurrencyHelpers

/// Answers the OCI distribution spec v1.1 over a ``Store``: reads are anonymous; writes need htpasswd
/// credentials when a file is given, and are refused when read-only. Versions never move.
struct RegistryResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let store: Store
    let passwords: PasswordVerifier?
    let readOnly: Bool
    let log: RequestLog
    /// Requests whose responses are not yet fully written, for a shutdown that finishes them.
    let inFlight: InFlight
    let uploads: UploadSessions
    /// Manifest bodies being received at once.
    let manifestBodies = Admission(limit: 32)

    static let manifestLimit = ManifestLimit.maxBytes

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        guard let ticket = inFlight.begin() else {
            var headers = HTTPFields()
            headers[.connection] = "close"
            return RegistryError(.serviceUnavailable, .unsupported, "the registry is shutting down", headers: headers).response
        }
        var response: Response
        do {
            response = try await route(request)
        } catch let error as RegistryError {
            response = error.response
        } catch let error as StoreError {
            response = RegistryError(.internalServerError, .unsupported, error.description).response
        } catch {
            response = RegistryError(.internalServerError, .unsupported, "\(error)").response
        }
        log.record(request, response, since: started)
        // The response counts as in flight until its body has been written to the connection, or until
        // the server drops it unwritten (a connection closed first): the ticket ends when the body is
        // released, whichever way.
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            try await body.write(writer)
            withExtendedLifetime(ticket) {}
        }
        return response
    }

    private func route(_ request: Request) async throws -> Response {
        let route: Route
        do {
            guard let parsed = try Route.parse(request.uri.path) else {
                throw RegistryError(.notFound, .unsupported, "no such endpoint: the API is under /v2/")
            }
            route = parsed
        } catch let failure as Route.Failure {
            throw RegistryError(.badRequest, .nameInvalid, failure.description)
        }
        let method = request.method
        var user: String?
        if [.post, .put, .patch, .delete].contains(method) {
            if readOnly { throw RegistryError(.methodNotAllowed, .unsupported, "this registry is read-only", headers: allow(["GET", "HEAD"])) }
            // Only chunked framing is understood: a body in another transfer coding would be stored as it
            // travelled (still compressed), not as the client meant it.
            if let coding = request.headers[.transferEncoding], coding.lowercased().split(separator: ",").contains(where: {
                $0.trimmingCharacters(in: .whitespaces) != "chunked" }) {
                throw RegistryError(.notImplemented, .unsupported, "Transfer-Encoding '\(coding)' is not supported: send the body as it is, chunked or with a Content-Length")
            }
            if let name = route.repository, let component = Store.reservedComponent(of: name) {
                throw RegistryError(.badRequest, .nameInvalid, StoreError.reservedRepositoryName(name.value, component: component).description)
            }
            user = try await authenticate(request)
        } else if case .upload = route, passwords != nil {
            // An upload session is its opener's: reading where it stands needs the same user.
            user = try await authenticate(request)
        }
        switch (route, method) {
        case (.base, .get), (.base, .head):
            var headers = HTTPFields()
            headers[.dockerDistributionAPIVersion] = "registry/2.0"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: "{}")))
        case (.catalog, .get): return try catalog(request)
        case (.tags(let name), .get): return try tags(name, request)
        case (.manifest(let name, let reference), .get): return try getManifest(name, reference, head: false)
        case (.manifest(let name, let reference), .head): return try getManifest(name, reference, head: true)
        case (.manifest(let name, let reference), .put): return try await putManifest(name, reference, request)
        case (.blob(_, let digest), .get): return try getBlob(digest, request, head: false)
        case (.blob(_, let digest), .head): return try getBlob(digest, request, head: true)
        case (.uploads(let name), .post): return try await startUpload(name, user: user, request)
        case (.upload(let name, let id), .patch): return try await patchUpload(name, id, user: user, request)
        case (.upload(let name, let id), .put): return try await finishUpload(name, id, user: user, request)
        case (.upload(let name, let id), .get): return try uploadStatus(name, id, user: user)
        case (.upload(let name, let id), .delete): return try cancelUpload(name, id, user: user)
        case (.referrers(let name, let digest), .get): return try referrers(name, digest, request)
        case (.manifest, .delete), (.blob, .delete):
            throw RegistryError(.methodNotAllowed, .unsupported, "deleting is not supported: the store is append-only and versions are immutable; 'imgbuild gc' removes what no tag reaches",
                                headers: allow(route.allowedMethods))
        default:
            throw RegistryError(.methodNotAllowed, .unsupported, "\(method) is not supported on \(request.uri.path)", headers: allow(route.allowedMethods))
        }
    }

    /// The user whose credentials a write carries (nil without a user file), or a 401 or 429.
    private func authenticate(_ request: Request) async throws -> String? {
        guard let passwords else { return nil }
        switch await passwords.check(request.headers[.authorization]) {
        case .user(let user): return user
        case .busy:
            var headers = HTTPFields()
            headers[.retryAfter] = "1"
            throw RegistryError(.tooManyRequests, .tooManyRequests, "too many password checks are waiting: try again shortly", headers: headers)
        case .denied:
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Basic realm=\"imgbuild\""
            throw RegistryError(.unauthorized, .unauthorized, "writing needs a user name and password", headers: headers)
        }
    }

    private func allow(_ methods: [String]) -> HTTPFields {
        var headers = HTTPFields()
        headers[.allow] = methods.joined(separator: ", ")
        return headers
    }

    // MARK: Helpers shared by the handlers

    /// A digest from a path or a query. A well-formed digest of another algorithm (`sha512:…`) names
    /// nothing this sha256-only store can hold, so it answers `missing` (a 404) when given; anything
    /// else that is not a sha256 digest is a 400.
    func digest(_ text: String, missing: RegistryError? = nil) throws(RegistryError) -> Digest {
        do { return try Digest(parsing: text) } catch {
            if let missing, case .unsupportedAlgorithm = error, Self.isWellFormedDigest(text) { throw missing }
            throw RegistryError(.badRequest, .digestInvalid, error.description)
        }
    }

    /// The OCI image spec's digest grammar: `algorithm ":" encoded`, algorithm components of
    /// `[a-z0-9]` joined by `+._-`, encoded `[a-zA-Z0-9=_-]+`.
    static func isWellFormedDigest(_ text: String) -> Bool {
        guard text.utf8.count <= 256, let colon = text.firstIndex(of: ":") else { return false }
        let algorithm = text[..<colon].utf8, encoded = text[text.index(after: colon)...].utf8
        func isLowerAlnum(_ b: UInt8) -> Bool { (0x61...0x7a).contains(b) || (0x30...0x39).contains(b) }
        let separators: Set<UInt8> = [0x2b, 0x2e, 0x5f, 0x2d]
        guard let first = algorithm.first, let last = algorithm.last, isLowerAlnum(first), isLowerAlnum(last),
              algorithm.allSatisfy({ isLowerAlnum($0) || separators.contains($0) }),
              !encoded.isEmpty else { return false }
        return encoded.allSatisfy { isLowerAlnum($0) || (0x41...0x5a).contains($0) || $0 == 0x3d || $0 == 0x5f || $0 == 0x2d }
    }

    func unknownUpload(_ id: String) -> RegistryError {
        RegistryError(.notFound, .blobUploadUnknown, "no upload session '\(id)' for this repository and user: start one with POST /v2/<name>/blobs/uploads/")
    }

    func requireRepository(_ name: RepositoryName) throws(RegistryError) {
        guard store.hasRepository(name) else { throw RegistryError(.notFound, .nameUnknown, "repository '\(name)' is not known") }
    }

    /// Appends a request body to a session's file, returning the bytes written; checks Content-Length
    /// when given. A body that ends early or has another length leaves the file as it was. Only the
    /// request that holds the session calls this.
    func append(_ body: RequestBody, to path: String, expectedLength: Int64?) async throws -> Int64 {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw RegistryError(.notFound, .blobUploadUnknown, "the upload session is gone") }
        defer { try? handle.close() }
        let start = try handle.seekToEnd()
        var written: Int64 = 0
        do {
            for try await buffer in body {
                written += Int64(buffer.readableBytes)
                if let expectedLength, written > expectedLength { break }
                try handle.write(contentsOf: buffer.readableBytesView)
            }
        } catch {
            try? handle.truncate(atOffset: start)
            throw RegistryError(.badRequest, .blobUploadInvalid, "the request body ended early: \(error)")
        }
        if let expectedLength, expectedLength != written {
            try? handle.truncate(atOffset: start)
            throw RegistryError(.badRequest, .sizeInvalid, "the body has \(written) bytes but Content-Length says \(expectedLength)")
        }
        return written
    }
}

/// A count of things in progress with a limit: `enter` says no once `limit` are in.
final class Admission: Sendable {
    let limit: Int
    private let count = NIOLockedValueBox(0)

    init(limit: Int) { self.limit = limit }

    func enter() -> Bool {
        count.withLockedValue { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { count.withLockedValue { $0 -= 1 } }
}

/// Counts requests in flight; once draining starts, refuses new ones and reports when none is left.
final class InFlight: Sendable {
    /// One request in flight: it ends when the ticket is released, however the request ends.
    final class Ticket: Sendable {
        let owner: InFlight
        init(_ owner: InFlight) { self.owner = owner }
        deinit { owner.end() }
    }

    private struct State {
        var count = 0
        var draining = false
    }

    private let state = NIOLockedValueBox(State())

    /// Registers a request; nil once draining has started.
    func begin() -> Ticket? {
        let admitted = state.withLockedValue { state -> Bool in
            guard !state.draining else { return false }
            state.count += 1
            return true
        }
        return admitted ? Ticket(self) : nil
    }

    /// Requests in flight now.
    var current: Int { state.withLockedValue { $0.count } }

    private func end() { state.withLockedValue { $0.count -= 1 } }

    /// Refuses new requests and returns once every request in flight has been answered in full, or
    /// when `patience` has passed, whichever comes first: no client can hold a shutdown for ever.
    /// Returns the number of requests still in flight.
    @discardableResult
    func drain(within patience: Duration) async -> Int {
        state.withLockedValue { $0.draining = true }
        let deadline = ContinuousClock.now + patience
        while ContinuousClock.now < deadline {
            if current == 0 { return 0 }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return current
    }
}

/// One structured line per request on standard error.
struct RequestLog: Sendable {
    let enabled: Bool

    func record(_ request: Request, _ response: Response, since started: ContinuousClock.Instant) {
        guard enabled else { return }
        let elapsed = ContinuousClock.now - started
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        let line = "time=\(ISO8601DateFormatter().string(from: Date())) method=\(request.method) path=\(request.uri.path) "
            + "status=\(response.status.code) length=\(response.headers[.contentLength] ?? "-") duration_ms=\(String(format: "%.1f", milliseconds))\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
