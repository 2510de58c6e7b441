import OCI

/// An image named by its manifest digest only: `NAME@sha256:<64 hex>`.
///
/// This is the only way a deployment names what it runs. There is deliberately no initializer that
/// takes a tag or a version: a tag can be re-pointed, a digest cannot.
public struct PinnedImage: Hashable, Sendable, Codable, CustomStringConvertible {
    public let name: RepositoryName
    public let digest: Digest

    public init(name: RepositoryName, digest: Digest) {
        self.name = name
        self.digest = digest
    }

    /// Why a text is not a pinned image reference.
    public struct NotPinned: Error, Equatable, CustomStringConvertible {
        public let text: String
        public let problem: String

        public var description: String {
            let name = PinnedImage.namePart(of: text)
            return "'\(text)' \(problem). imgdeploy deploys an image by its digest only, so what runs can never change "
                + "under the same name: get the digest with `imgbuild resolve \(name):<version>` (or `imgbuild push`, "
                + "which prints it) and write `image: \(name)@sha256:<64 hex digits>`"
        }
    }

    /// Parses `NAME@sha256:<64 hex>`, refusing tags, versions and short digests.
    public init(parsing text: String) throws(NotPinned) {
        let reference: Reference
        do { reference = try Reference(parsing: text) } catch {
            switch error {
            case .invalidDigest:
                throw NotPinned(text: text, problem: "has no complete digest (a digest is 'sha256:' and 64 lowercase hex digits)")
            case .missingTarget:
                throw NotPinned(text: text, problem: "names no digest")
            case .emptyTag:
                throw NotPinned(text: text, problem: "names no digest")
            case .invalidName(_, let invalid):
                throw NotPinned(text: text, problem: "has an invalid name (\(invalid))")
            }
        }
        switch reference.target {
        case .tag(let tag):
            throw NotPinned(text: text, problem: "names the tag '\(tag)', not a digest")
        case .digest(let digest):
            self.init(name: reference.name, digest: digest)
        }
    }

    public var description: String { "\(name)@\(digest)" }

    static func namePart(of text: String) -> String {
        if let at = text.firstIndex(of: "@") { return String(text[..<at]) }
        let lastSlash = text.lastIndex(of: "/") ?? text.startIndex
        if let colon = text[lastSlash...].lastIndex(of: ":") { return String(text[..<colon]) }
        return text.isEmpty ? "NAME" : text
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
