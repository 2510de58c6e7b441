import Foundation
import OCI

/// A place images come from or go to, as the command line writes it:
/// `NAME[:VERSION|@DIGEST]` or `store:NAME…` (the local store), `oci:DIR[:TAG|@DIGEST]` (an OCI image
/// layout), and a registry written as docker, skopeo and crane write it — `HOST[:PORT]/PATH[:TAG|@DIGEST]`
/// (a first component with a `.` or a `:`, or `localhost`, is a registry, as the distribution reference
/// grammar says) or `docker://…` — or as a URL, `http(s)://HOST[:PORT]/PATH[:TAG|@DIGEST]`.
public enum ImageLocation: Sendable, Equatable {
    case store(RepositoryName, ManifestReference?)
    case layout(directory: String, ManifestReference?)
    /// `base` is `https://HOST[:PORT]` or `http://…`; `style` says how it was written, which decides
    /// whether plain HTTP may be tried (see ``RegistryStyle``).
    case registry(base: String, repository: String, ManifestReference?, style: RegistryStyle = .url)

    /// How a registry location was written.
    public enum RegistryStyle: Sendable, Equatable {
        /// `http(s)://…`: the scheme is the one written.
        case url
        /// `docker://…`: HTTPS, or plain HTTP to this machine (or with --insecure) when it does not speak TLS.
        case docker
        /// `HOST[:PORT]/PATH`, as docker writes it: as `docker://`, but a store repository of the same
        /// name makes it ambiguous.
        case bare
    }

    public var reference: ManifestReference? {
        switch self {
        case .store(_, let r), .layout(_, let r), .registry(_, _, let r, _): return r
        }
    }

    public init(parsing text: String) throws {
        if text.hasPrefix("oci:") {
            let rest = String(text.dropFirst(4))
            let (path, reference) = try ImageLocation.splitReference(rest, text: text)
            guard !path.isEmpty else { throw DistributionError.invalidLocation(text, reason: "oci: needs a folder, e.g. oci:/tmp/layout:1.0.0") }
            self = .layout(directory: path, reference)
            return
        }
        if text.hasPrefix("http://") || text.hasPrefix("https://") {
            guard let schemeEnd = text.range(of: "://"), let slash = text[schemeEnd.upperBound...].firstIndex(of: "/") else {
                throw DistributionError.invalidLocation(text, reason: "a registry location is http(s)://HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]")
            }
            let base = String(text[..<slash])
            let (repository, reference) = try ImageLocation.splitReference(String(text[text.index(after: slash)...]), text: text)
            guard RepositoryName.isValid(repository) else {
                throw DistributionError.invalidLocation(text, reason: "'\(repository)' is not a valid repository name")
            }
            self = .registry(base: base, repository: repository, reference)
            return
        }
        if text.hasPrefix("docker://") {
            self = try ImageLocation.dockerStyle(String(text.dropFirst("docker://".count)), text: text, style: .docker)
            return
        }
        if text.hasPrefix("store:") {
            self = try ImageLocation.store(String(text.dropFirst("store:".count)), text: text)
            return
        }
        if let slash = text.firstIndex(of: "/"), ImageLocation.namesRegistry(text[..<slash]) {
            self = try ImageLocation.dockerStyle(text, text: text, style: .bare)
            return
        }
        self = try ImageLocation.store(text, text: text)
    }

    /// Whether the first component of a reference names a registry host (the distribution reference
    /// grammar's rule): it has a `.` or a `:` (a port), or is `localhost`.
    static func namesRegistry(_ component: Substring) -> Bool {
        component.contains(".") || component.contains(":") || component == "localhost"
    }

    private static func store(_ name: String, text: String) throws -> ImageLocation {
        let (name, reference) = try splitReference(name, text: text)
        do { return .store(try RepositoryName(name), reference) } catch {
            throw DistributionError.invalidLocation(text, reason: "expected NAME:VERSION or NAME@sha256:<hex> (the local store), oci:DIR[:TAG], "
                + "HOST[:PORT]/REPO[:TAG] or docker://HOST/REPO[:TAG] (a registry); \(error)")
        }
    }

    /// `HOST[:PORT]/PATH[:TAG|@DIGEST]`, or (after `docker://` only) `PATH` alone on Docker Hub.
    private static func dockerStyle(_ rest: String, text: String, style: RegistryStyle) throws -> ImageLocation {
        var host = "docker.io"
        var path = rest
        if let slash = rest.firstIndex(of: "/"), namesRegistry(rest[..<slash]) {
            host = String(rest[..<slash])
            path = String(rest[rest.index(after: slash)...])
        }
        guard isValidHost(host) else {
            throw DistributionError.invalidLocation(text, reason: "'\(host)' is not a registry host: HOST or HOST:PORT (a port from 1 to 65535), e.g. 127.0.0.1:5000")
        }
        var (repository, reference) = try splitReference(path, text: text)
        // Docker Hub's API host, and its official images' namespace, as docker and skopeo resolve them.
        if host == "docker.io" || host == "index.docker.io" {
            host = "registry-1.docker.io"
            if !repository.contains("/") { repository = "library/" + repository }
        }
        guard RepositoryName.isValid(repository) else {
            throw DistributionError.invalidLocation(text, reason: "'\(repository)' is not a valid repository name (lowercase letters, digits and . _ - between slashes)")
        }
        return .registry(base: "https://" + host, repository: repository, reference, style: style)
    }

    /// `name`, `name:port`, `[v6]` or `[v6]:port`, with a port from 1 to 65535.
    static func isValidHost(_ host: String) -> Bool {
        var name = Substring(host)
        var port: Substring?
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            let after = name[name.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return false }
                port = after.dropFirst()
            }
            name = name[name.index(after: name.startIndex)..<close]
            guard !name.isEmpty, name.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
        } else {
            if let colon = name.firstIndex(of: ":") {
                port = name[name.index(after: colon)...]
                name = name[..<colon]
            }
            guard !name.isEmpty, name.utf8.count <= 253, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }),
                  !name.hasPrefix("."), !name.hasPrefix("-") else { return false }
        }
        if let port { return port.allSatisfy(\.isASCII) && Int(port).map { (1...65535).contains($0) } == true && port.first != "+" }
        return true
    }

    /// `x@sha256:…` or `x:tag` (the tag after the last `/`), or `x` alone.
    static func splitReference(_ text: String, text whole: String) throws -> (String, ManifestReference?) {
        if let at = text.lastIndex(of: "@") {
            let digest: Digest
            do { digest = try Digest(parsing: String(text[text.index(after: at)...])) } catch {
                throw DistributionError.invalidLocation(whole, reason: error.description)
            }
            return (String(text[..<at]), .digest(digest))
        }
        let lastSlash = text.lastIndex(of: "/") ?? text.startIndex
        if let colon = text[lastSlash...].lastIndex(of: ":") {
            let tag = String(text[text.index(after: colon)...])
            guard !tag.isEmpty else { throw DistributionError.invalidLocation(whole, reason: "the tag after ':' is empty") }
            return (String(text[..<colon]), .tag(tag))
        }
        return (text, nil)
    }
}
