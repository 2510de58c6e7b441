import Foundation
import HTTPTypes
import Hummingbird
import OCI
import Store

extension RegistryResponder {
    /// GET /v2/<name>/tags/list?n=&last= — versions (with `_` for `+`) and artifact tags, in lexical
    /// order, paginated with a `Link` header.
    func tags(_ name: RepositoryName, _ request: Request) throws -> Response {
        try requireRepository(name)
        let versions = try store.tags(name).map { $0.version.description.replacingOccurrences(of: "+", with: "_") }
        let all = (versions + (try store.artifactTags(name).map(\.tag))).sorted()
        struct Body: Encodable { var name: String; var tags: [String] }
        return try page(all, request, path: "/v2/\(name)/tags/list") { Body(name: name.value, tags: $0) }
    }

    /// GET /v2/_catalog?n=&last=
    func catalog(_ request: Request) throws -> Response {
        struct Body: Encodable { var repositories: [String] }
        return try page(store.repositories().map(\.value), request, path: "/v2/_catalog") { Body(repositories: $0) }
    }

    private func page<Body: Encodable>(_ all: [String], _ request: Request, path: String, _ make: ([String]) -> Body) throws -> Response {
        let query = request.uri.queryParameters
        var items = all
        if let last = query["last"].map(String.init) { items = items.filter { $0 > last } }
        var headers = HTTPFields()
        if let text = query["n"].map(String.init) {
            guard let n = Int(text), n >= 0 else { throw RegistryError(.badRequest, .unsupported, "n must be a whole number, not '\(text)'") }
            if items.count > n {
                items = Array(items.prefix(n))
                if let last = items.last { headers[.linkHeader] = "<\(path)?n=\(n)&last=\(last)>; rel=\"next\"" }
            }
        }
        let data = try CanonicalJSON.encode(make(items))
        headers[.contentType] = "application/json"
        headers[.contentLength] = String(data.count)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// GET /v2/<name>/referrers/<digest>?artifactType= — an image index of the manifests that refer to it.
    func referrers(_ name: RepositoryName, _ text: String, _ request: Request) throws -> Response {
        let subject = try digest(text)
        var manifests = store.referrers(name, subject: subject)
        var headers = HTTPFields()
        if let filter = request.uri.queryParameters["artifactType"].map(String.init) {
            manifests = manifests.filter { $0.artifactType == filter }
            headers[.ociFiltersApplied] = "artifactType"
        }
        let data = try CanonicalJSON.encode(ImageIndex(manifests: manifests))
        headers[.contentType] = MediaType.imageIndex
        headers[.contentLength] = String(data.count)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
