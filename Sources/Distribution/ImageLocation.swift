import Foundation
import OCI
import Store

/// A place images come from or go to, as the command line writes it:
/// `NAME[:VERSION|@DIGEST]` or `store:NAME…` (the local store), `oci:DIR[:TAG|@DIGEST]` (an OCI image
/// layout), and a registry written as docker, skopeo and crane write it — `HOST[:PORT]/PATH[:TAG|@DIGEST]`
/// (a first component with a `.` or a `:`, or `localhost`, is a registry, as the distribution reference
/// grammar says) or `docker://…` — or as a URL, `http(s)://HOST[:PORT]/PATH[:TAG|@DIGEST]`.
public enum ImageLocation: Sendable, Equatable, CustomStringConvertible {
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

    /// The location as the command line would write it (for messages).
    public var description: String {
        let suffix = reference.map { reference -> String in
            switch reference {
            case .tag(let tag): return ":" + tag
            case .digest(let digest): return "@" + digest.description
            }
        } ?? ""
        switch self {
        case .store(let name, _): return name.value + suffix
        case .layout(let directory, _): return "oci:" + directory + suffix
        case .registry(let base, let repository, _, .url): return base + "/" + repository + suffix
        case .registry(let base, let repository, _, _): return "docker://" + base.dropFirst("https://".count) + "/" + repository + suffix
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
        component.contains(".") || component.contains(":") || component.lowercased() == "localhost"
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
            // Host names are not case-sensitive.
            host = rest[..<slash].lowercased()
            path = String(rest[rest.index(after: slash)...])
        }
        guard isValidHost(host) else {
            throw DistributionError.invalidLocation(text, reason: "'\(host)' is not a registry host: HOST or HOST:PORT (a port from 1 to 65535), e.g. 127.0.0.1:5000; "
                + "a store repository whose name starts so is written store:NAME")
        }
        var (repository, reference) = try splitReference(path, text: text)
        if case .tag(let tag) = reference, !Store.isValidArtifactTag(tag.replacingOccurrences(of: "+", with: "_")) {
            throw DistributionError.invalidLocation(text, reason: "'\(tag)' is not a tag: letters, digits, '_', '.', '-' (and '+', sent as '_'), at most 128, not starting with '.' or '-'")
        }
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

    /// A registry as `login` and `logout` name it: `HOST[:PORT]` (HTTPS first, negotiated like a
    /// docker-style reference) or `http(s)://HOST[:PORT]`. Docker Hub is `docker.io`. Returns the host
    /// (the key its credentials are filed under), the base URL, and whether the scheme is to be negotiated.
    public static func registryHost(_ text: String) throws -> (host: String, base: String, negotiate: Bool) {
        var host = text.hasSuffix("/") ? String(text.dropLast()) : text
        var scheme = "https://"
        var negotiate = true
        for prefix in ["https://", "http://"] where host.hasPrefix(prefix) {
            scheme = prefix
            negotiate = false
            host = String(host.dropFirst(prefix.count))
        }
        guard !host.contains("/"), isValidHost(host) else {
            throw DistributionError.invalidLocation(text, reason: "a registry is HOST[:PORT] (e.g. 127.0.0.1:5000 or registry.example), or http(s)://HOST[:PORT]")
        }
        host = host.lowercased()
        let api = ["docker.io", "index.docker.io"].contains(host) ? "registry-1.docker.io" : host
        return (host, scheme + api, negotiate)
    }

    /// The same location written as a registry reached docker's way (HTTPS first), for a command whose
    /// end can only be a registry (`pull`'s source, `push`'s destination): no store name competes.
    public var asRegistry: ImageLocation {
        if case .registry(let base, let repository, let reference, .bare) = self { return .registry(base: base, repository: repository, reference, style: .docker) }
        return self
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
            var name = String(text[..<at])
            // `name:tag@digest`, as docker writes it: the digest decides, the tag is only a reminder.
            let slash = name.lastIndex(of: "/") ?? name.startIndex
            if let colon = name[slash...].lastIndex(of: ":"), !name[slash...].hasPrefix("[") { name = String(name[..<colon]) }
            return (name, .digest(digest))
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
