import Foundation
import HTTPTypes
import Hummingbird
import OCI
import SemVer
import Store

/// Answers the OCI distribution spec v1.1 over a ``Store``: reads are anonymous; writes need htpasswd
/// credentials when a file is given, and are refused when read-only. Versions never move.
struct RegistryResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let store: Store
    let htpasswd: Htpasswd?
    let readOnly: Bool
    let log: RequestLog
    /// Requests whose responses are not yet fully written, for a shutdown that finishes them.
    let inFlight: InFlight

    static let manifestLimit = 4 << 20

    func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        guard inFlight.begin() else {
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
        // The response counts as in flight until its body has been written to the connection.
        let body = response.body
        let inFlight = self.inFlight
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            do {
                try await body.write(writer)
                inFlight.end()
            } catch {
                inFlight.end()
                throw error
            }
        }
        return response
    }

    private func route(_ request: Request) async throws -> Response {
        guard let route = try Route.parse(request.uri.path) else {
            throw RegistryError(.notFound, .unsupported, "no such endpoint: the API is under /v2/")
        }
        let method = request.method
        let writes = [.post, .put, .patch, .delete].contains(method)
        if writes {
            if readOnly { throw RegistryError(.methodNotAllowed, .unsupported, "this registry is read-only") }
            if let htpasswd, !htpasswd.accepts(authorization: request.headers[.authorization]) {
                var headers = HTTPFields()
                headers[.wwwAuthenticate] = "Basic realm=\"imgbuild\""
                throw RegistryError(.unauthorized, .unauthorized, "writing needs a user name and password", headers: headers)
            }
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
        case (.uploads(let name), .post): return try await startUpload(name, request)
        case (.upload(let name, let id), .patch): return try await patchUpload(name, id, request)
        case (.upload(let name, let id), .put): return try await finishUpload(name, id, request)
        case (.upload(let name, let id), .get): return try uploadStatus(name, id)
        case (.upload(_, let id), .delete):
            guard store.uploadPath(id) != nil else { throw unknownUpload(id) }
            store.cancelUpload(id)
            return Response(status: .noContent)
        case (.referrers(let name, let digest), .get): return try referrers(name, digest, request)
        case (.manifest, .delete), (.blob, .delete):
            throw RegistryError(.methodNotAllowed, .unsupported, "deleting is not supported: the store is append-only and versions are immutable; 'imgbuild gc' removes what no tag reaches")
        default:
            throw RegistryError(.methodNotAllowed, .unsupported, "\(method) is not supported on \(request.uri.path)")
        }
    }

    // MARK: Helpers shared by the handlers

    func digest(_ text: String) throws(RegistryError) -> Digest {
        do { return try Digest(parsing: text) } catch { throw RegistryError(.badRequest, .digestInvalid, error.description) }
    }

    func unknownUpload(_ id: String) -> RegistryError {
        RegistryError(.notFound, .blobUploadUnknown, "no upload session '\(id)': start one with POST /v2/<name>/blobs/uploads/")
    }

    func requireRepository(_ name: RepositoryName) throws(RegistryError) {
        guard store.hasRepository(name) else { throw RegistryError(.notFound, .nameUnknown, "repository '\(name)' is not known") }
    }

    /// Appends a request body to a file, returning the bytes written; checks Content-Length when given.
    func append(_ body: RequestBody, to path: String, expectedLength: Int?) async throws -> Int64 {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw RegistryError(.notFound, .blobUploadUnknown, "the upload session is gone") }
        defer { try? handle.close() }
        let start = try handle.seekToEnd()
        var written: Int64 = 0
        do {
            for try await buffer in body {
                try handle.write(contentsOf: Data(buffer.readableBytesView))
                written += Int64(buffer.readableBytes)
            }
        } catch {
            try? handle.truncate(atOffset: start)
            throw RegistryError(.badRequest, .blobUploadInvalid, "the request body ended early: \(error)")
        }
        if let expectedLength, Int64(expectedLength) != written {
            try? handle.truncate(atOffset: start)
            throw RegistryError(.badRequest, .sizeInvalid, "the body has \(written) bytes but Content-Length says \(expectedLength)")
        }
        return written
    }
}

/// Counts requests in flight; once draining starts, refuses new ones and reports when none is left.
final class InFlight: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    private var draining = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Registers a request; false once draining has started.
    func begin() -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard !draining else { return false }
        count += 1
        return true
    }

    func end() {
        lock.lock()
        count -= 1
        let ready = draining && count == 0 ? waiters : []
        if !ready.isEmpty { waiters = [] }
        lock.unlock()
        ready.forEach { $0.resume() }
    }

    /// Refuses new requests and returns once every request in flight has been answered in full.
    func drain() async {
        await withCheckedContinuation { continuation in
            lock.lock()
            draining = true
            if count == 0 {
                lock.unlock()
                continuation.resume()
            } else {
                waiters.append(continuation)
                lock.unlock()
            }
        }
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
