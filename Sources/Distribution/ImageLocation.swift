import Foundation
import OCI

/// A place images come from or go to, as the command line writes it:
/// `NAME[:VERSION|@DIGEST]` (the local store), `oci:DIR[:TAG|@DIGEST]` (an OCI image layout), or
/// `http(s)://HOST[:PORT]/REPO[:TAG|@DIGEST]` (a registry).
public enum ImageLocation: Sendable, Equatable {
    case store(RepositoryName, ManifestReference?)
    case layout(directory: String, ManifestReference?)
    case registry(base: String, repository: String, ManifestReference?)

    public var reference: ManifestReference? {
        switch self {
        case .store(_, let r), .layout(_, let r), .registry(_, _, let r): return r
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
        let (name, reference) = try ImageLocation.splitReference(text, text: text)
        do { self = .store(try RepositoryName(name), reference) } catch {
            throw DistributionError.invalidLocation(text, reason: "expected NAME:VERSION or NAME@sha256:<hex> (the local store), oci:DIR[:TAG] or http(s)://HOST/REPO[:TAG]; \(error)")
        }
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
