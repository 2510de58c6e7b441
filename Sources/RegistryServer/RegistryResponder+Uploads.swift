import Foundation
import HTTPTypes
import Hummingbird
import OCI
import Store

extension RegistryResponder {
    /// POST /v2/<name>/blobs/uploads/: a mount (`mount=&from=`), a monolithic upload (`digest=` with the
    /// body), or a new session (202 with its Location).
    func startUpload(_ name: RepositoryName, _ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        if let mount = query["mount"].map(String.init) {
            let digest = try digest(mount)
            if store.hasBlob(digest) { return created(name, digest) }
        }
        let id = try store.newUploadSession()
        if let text = query["digest"].map(String.init) {
            let digest = try digest(text)
            guard let path = store.uploadPath(id) else { throw unknownUpload(id) }
            do {
                _ = try await append(request.body, to: path, expectedLength: request.headers[.contentLength].flatMap(Int.init))
                try commit(path, digest)
            } catch {
                store.cancelUpload(id)
                throw error
            }
            return created(name, digest)
        }
        return sessionResponse(.accepted, name, id, size: 0)
    }

    /// PATCH a chunk. A `Content-Range` must start where the session stands, else 416.
    func patchUpload(_ name: RepositoryName, _ id: String, _ request: Request) async throws -> Response {
        guard let path = store.uploadPath(id), let size = store.uploadSize(id) else { throw unknownUpload(id) }
        if let range = request.headers[.contentRange] {
            let parts = range.replacingOccurrences(of: "bytes ", with: "").split(separator: "-")
            guard parts.count == 2, let start = Int64(parts[0]), let end = Int64(parts[1].split(separator: "/")[0]), start == size, end >= start else {
                var headers = HTTPFields()
                headers[.range] = "0-\(max(size - 1, 0))"
                headers[.location] = "/v2/\(name)/blobs/uploads/\(id)"
                throw RegistryError(.rangeNotSatisfiable, .blobUploadInvalid, "Content-Range '\(range)' must start at \(size), where the upload stands", headers: headers)
            }
        }
        let written = try await append(request.body, to: path, expectedLength: request.headers[.contentLength].flatMap(Int.init))
        return sessionResponse(.accepted, name, id, size: size + written)
    }

    /// PUT ?digest= closes the session, with an optional last chunk; the bytes are verified first.
    func finishUpload(_ name: RepositoryName, _ id: String, _ request: Request) async throws -> Response {
        guard let path = store.uploadPath(id) else { throw unknownUpload(id) }
        guard let text = request.uri.queryParameters["digest"].map(String.init) else {
            throw RegistryError(.badRequest, .digestInvalid, "closing an upload needs ?digest=sha256:<hex>")
        }
        let digest = try digest(text)
        _ = try await append(request.body, to: path, expectedLength: request.headers[.contentLength].flatMap(Int.init))
        try commit(path, digest)
        return created(name, digest)
    }

    func uploadStatus(_ name: RepositoryName, _ id: String) throws -> Response {
        guard let size = store.uploadSize(id) else { throw unknownUpload(id) }
        return sessionResponse(.noContent, name, id, size: size)
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
