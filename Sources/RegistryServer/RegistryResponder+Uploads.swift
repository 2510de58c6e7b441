import Foundation
import HTTPTypes
import Hummingbird
import OCI
import RegistryRoutes
import Store

extension RegistryResponder {
    /// POST /v2/<name>/blobs/uploads/: a mount (`mount=&from=`), a monolithic upload (`digest=` with the
    /// body), or a new session (202 with its Location).
    func startUpload(_ name: RepositoryName, user: String?, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        if let mount = query["mount"].map(String.init) {
            let digest = try digest(mount)
            if store.hasBlob(digest) { return created(name, digest) }
        }
        let digest = try query["digest"].map { text throws(RegistryError) in try self.digest(String(text)) }
        let id = try openSession(name, user: user)
        guard let digest else {
            uploads.release(id)
            return sessionResponse(.accepted, name, id, size: 0)
        }
        defer { uploads.close(id) }
        guard let path = store.uploadPath(id) else { throw unknownUpload(id) }
        _ = try await append(request.body, to: path, expectedLength: contentLength(request))
        try commit(path, digest)
        return created(name, digest)
    }

    /// PATCH a chunk. A `Content-Range` must start where the session stands, else 416.
    func patchUpload(_ name: RepositoryName, _ id: String, user: String?, _ request: Request) async throws -> Response {
        let path = try acquire(name, id, user: user)
        defer { uploads.release(id) }
        let (size, expected) = try checkRange(request, name, id, path: path)
        let written = try await append(request.body, to: path, expectedLength: expected)
        return sessionResponse(.accepted, name, id, size: size + written)
    }

    /// PUT ?digest= closes the session, with an optional last chunk; the bytes are verified first. The
    /// session is held from the first byte appended to the rename into `blobs/`, so no other request
    /// can change the bytes between their hash and their publication.
    func finishUpload(_ name: RepositoryName, _ id: String, user: String?, _ request: Request) async throws -> Response {
        let path = try acquire(name, id, user: user)
        var closed = false
        defer { if !closed { uploads.release(id) } }
        let (_, expected) = try checkRange(request, name, id, path: path)
        guard let text = request.uri.queryParameters["digest"].map(String.init) else {
            throw RegistryError(.badRequest, .digestInvalid, "closing an upload needs ?digest=sha256:<hex>")
        }
        let digest = try digest(text)
        _ = try await append(request.body, to: path, expectedLength: expected)
        closed = true
        defer { uploads.close(id) }
        try commit(path, digest)
        return created(name, digest)
    }

    /// GET an upload's status: where it stands.
    func uploadStatus(_ name: RepositoryName, _ id: String, user: String?) throws -> Response {
        guard uploads.owns(id, name, user: user), let size = store.uploadSize(id) else { throw unknownUpload(id) }
        return sessionResponse(.noContent, name, id, size: size)
    }

    /// DELETE an upload: nothing of it is kept.
    func cancelUpload(_ name: RepositoryName, _ id: String, user: String?) throws -> Response {
        _ = try acquire(name, id, user: user)
        uploads.close(id)
        return Response(status: .noContent)
    }

    private func openSession(_ name: RepositoryName, user: String?) throws -> String {
        do { return try uploads.open(name, user: user) } catch UploadSessions.Refusal.full {
            var headers = HTTPFields()
            headers[.retryAfter] = "60"
            throw RegistryError(.tooManyRequests, .tooManyRequests, "\(uploads.limit) upload sessions are open: finish or cancel one, or wait until idle ones expire", headers: headers)
        }
    }

    private func acquire(_ name: RepositoryName, _ id: String, user: String?) throws(RegistryError) -> String {
        do { return try uploads.acquire(id, name, user: user) } catch {
            switch error {
            case .unknown, .full: throw unknownUpload(id)
            case .busy:
                throw RegistryError(.conflict, .blobUploadInvalid, "another request is writing to upload '\(id)': wait for it to finish, then GET the upload to see where it stands")
            }
        }
    }

    /// The session's size and the length the body must have, after checking that a `Content-Range`
    /// (when given) starts there and agrees with `Content-Length`; 416 with the session's `Range` when it
    /// does not. A chunked body with a `Content-Range` must be as long as the range says.
    private func checkRange(_ request: Request, _ name: RepositoryName, _ id: String, path: String) throws(RegistryError) -> (size: Int64, expected: Int64?) {
        let size = store.uploadSize(id) ?? 0
        guard let header = request.headers[.contentRange] else { return (size, contentLength(request)) }
        guard let range = ContentRange.parse(header) else {
            throw RegistryError(.badRequest, .blobUploadInvalid, "Content-Range '\(header)' is not '<start>-<end>'")
        }
        let length = contentLength(request)
        guard range.start == size, length == nil || length == range.length else {
            var headers = HTTPFields()
            headers[.range] = "0-\(max(size - 1, 0))"
            headers[.location] = "/v2/\(name)/blobs/uploads/\(id)"
            let reason = range.start == size ? "covers \(range.length) bytes but Content-Length says \(length ?? 0)" : "must start at \(size), where the upload stands"
            throw RegistryError(.rangeNotSatisfiable, .blobUploadInvalid, "Content-Range '\(header)' \(reason)", headers: headers)
        }
        return (size, range.length)
    }

    private func contentLength(_ request: Request) -> Int64? {
        request.headers[.contentLength].flatMap { Int64($0) }
    }

    private func commit(_ path: String, _ digest: Digest) throws {
        do {
            try store.commitFile(at: path, as: digest)
        } catch {
            guard case .digestMismatch(_, let actual) = error else { throw error }
            throw RegistryError(.badRequest, .digestInvalid, "the uploaded bytes hash to \(actual), not \(digest): nothing was stored")
        }
    }

    private func created(_ name: RepositoryName, _ digest: Digest) -> Response {
        var headers = HTTPFields()
        headers[.location] = "/v2/\(name)/blobs/\(digest)"
        headers[.dockerContentDigest] = digest.description
        headers[.contentLength] = "0"
        return Response(status: .created, headers: headers)
    }

    private func sessionResponse(_ status: HTTPResponse.Status, _ name: RepositoryName, _ id: String, size: Int64) -> Response {
        var headers = HTTPFields()
        headers[.location] = "/v2/\(name)/blobs/uploads/\(id)"
        headers[.range] = "0-\(max(size - 1, 0))"
        headers[.dockerUploadUUID] = id
        headers[.contentLength] = "0"
        return Response(status: status, headers: headers)
    }
}
