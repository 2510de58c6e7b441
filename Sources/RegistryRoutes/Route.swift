import OCI

/// What a `/v2/…` path asks for. Repository names may hold slashes, so the path is read from its end.
public enum Route: Equatable, Sendable {
    case base
    case catalog
    case tags(RepositoryName)
    case manifest(RepositoryName, reference: String)
    case blob(RepositoryName, digest: String)
    case uploads(RepositoryName)
    case upload(RepositoryName, id: String)
    case referrers(RepositoryName, digest: String)

    /// Why a path under `/v2/` cannot be routed.
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The path holds `%`: encoded slashes and dots could smuggle a name past validation.
        case percentEncoded
        /// The repository part of the path is not an OCI repository name.
        case invalidName(RepositoryName.InvalidName)

        public var description: String {
            switch self {
            case .percentEncoded: return "percent-encoded paths are not accepted"
            case .invalidName(let error): return error.description
            }
        }
    }

    /// The largest path accepted: a 255-character name, a marker, and a reference of at most 128
    /// characters fit with room to spare; anything longer is refused before it is split.
    public static let maximumPathLength = 1024

    /// Parses a request path; nil when it names no endpoint.
    public static func parse(_ path: String) throws(Failure) -> Route? {
        guard !path.contains("%") else { throw .percentEncoded }
        guard path.utf8.count <= maximumPathLength, path.hasPrefix("/v2") else { return nil }
        var rest = String(path.dropFirst(3))
        if rest.isEmpty || rest == "/" { return .base }
        guard rest.hasPrefix("/") else { return nil }
        rest.removeFirst()
        if rest == "_catalog" { return .catalog }
        func name(_ text: Substring) throws(Failure) -> RepositoryName {
            do { return try RepositoryName(String(text)) } catch { throw .invalidName(error) }
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

    /// The repository the endpoint is about, if any.
    public var repository: RepositoryName? {
        switch self {
        case .base, .catalog: return nil
        case .tags(let name), .manifest(let name, _), .blob(let name, _), .uploads(let name), .upload(let name, _), .referrers(let name, _):
            return name
        }
    }

    /// The methods an endpoint answers, for the `Allow` header of a 405.
    public var allowedMethods: [String] {
        switch self {
        case .base, .catalog, .tags, .referrers: return ["GET", "HEAD"]
        case .manifest: return ["GET", "HEAD", "PUT"]
        case .blob: return ["GET", "HEAD"]
        case .uploads: return ["POST"]
        case .upload: return ["GET", "PATCH", "PUT", "DELETE"]
        }
    }
}
