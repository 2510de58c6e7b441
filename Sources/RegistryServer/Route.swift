import OCI

/// What a `/v2/…` path asks for. Repository names may hold slashes, so the path is read from its end.
enum Route: Equatable {
    case base
    case catalog
    case tags(RepositoryName)
    case manifest(RepositoryName, reference: String)
    case blob(RepositoryName, digest: String)
    case uploads(RepositoryName)
    case upload(RepositoryName, id: String)
    case referrers(RepositoryName, digest: String)

    /// Parses a request path. Percent-encoded paths are refused outright, so encoded slashes and dots
    /// can never smuggle a name past validation.
    static func parse(_ path: String) throws(RegistryError) -> Route? {
        guard !path.contains("%") else { throw RegistryError(.badRequest, .nameInvalid, "percent-encoded paths are not accepted") }
        guard path.hasPrefix("/v2") else { return nil }
        var rest = String(path.dropFirst(3))
        if rest.isEmpty || rest == "/" { return .base }
        guard rest.hasPrefix("/") else { return nil }
        rest.removeFirst()
        if rest == "_catalog" { return .catalog }
        func name(_ text: Substring) throws(RegistryError) -> RepositoryName {
            do { return try RepositoryName(String(text)) } catch {
                throw RegistryError(.badRequest, .nameInvalid, error.description)
            }
        }
        if rest.hasSuffix("/tags/list") { return .tags(try name(rest.dropLast("/tags/list".count))) }
        if rest.hasSuffix("/blobs/uploads/") || rest.hasSuffix("/blobs/uploads") {
            let cut = rest.hasSuffix("/") ? "/blobs/uploads/".count : "/blobs/uploads".count
            return .uploads(try name(rest.dropLast(cut)))
        }
        for (marker, make) in [("/blobs/uploads/", { (n: RepositoryName, v: String) in Route.upload(n, id: v) }),
                               ("/manifests/", { Route.manifest($0, reference: $1) }),
                               ("/blobs/", { Route.blob($0, digest: $1) }),
                               ("/referrers/", { Route.referrers($0, digest: $1) })] {
            if let range = rest.range(of: marker, options: .backwards) {
                let value = String(rest[range.upperBound...])
                guard !value.isEmpty, !value.contains("/") else { continue }
                return make(try name(rest[..<range.lowerBound]), value)
            }
        }
        return nil
    }
}

import Foundation
