import DebianArchive
import Foundation

/// Where a `repositories` entry's archive is: its `url` as written, with `${VARIABLE}`s taken from the
/// environment, or `system`: the machine's own apt sources for the suite.
public struct RepositoryAddress: Sendable, Equatable {
    /// The archive's root, without a trailing `/` (`http://deb.debian.org/debian`).
    public var root: String
    /// Keyrings the machine's apt source names (`Signed-By`), for `system`.
    public var keyrings: [String]

    public init(root: String, keyrings: [String]) {
        self.root = root
        self.keyrings = keyrings
    }

    /// Why the address cannot be known.
    public struct UnknownAddress: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// `sourcesDirectory`: apt's configuration folder (`/etc/apt`), for `system`.
    public static func resolve(_ url: String, suite: String, environment: [String: String],
                               aptDirectory: String = "/etc/apt") throws(UnknownAddress) -> RepositoryAddress {
        if url == "system" { return try system(suite: suite, aptDirectory: aptDirectory) }
        var result = ""
        for piece in pieces(of: url) {
            switch piece {
            case .text(let text):
                result += text
            case .variable(let name):
                guard let value = environment[name], !value.isEmpty else {
                    throw UnknownAddress(description: "the repository url '\(url)' needs the environment variable \(name), which is not set: set it to the archive's address (e.g. \(name)=http://deb.debian.org/debian)")
                }
                result += value
            }
        }
        while result.hasSuffix("/") { result.removeLast() }
        guard result.hasPrefix("http://") || result.hasPrefix("https://"), result.count > 8,
              !result.contains(where: { $0.isWhitespace || $0 == "?" || $0 == "#" }) else {
            throw UnknownAddress(description: "the repository url '\(url)' is '\(result)', which is not an http:// or https:// address of an archive's root")
        }
        return RepositoryAddress(root: result, keyrings: [])
    }

    /// The names of the `${VARIABLE}`s in a `url` as written, in order.
    public static func variableNames(in url: String) -> [String] {
        pieces(of: url).compactMap { piece in
            if case .variable(let name) = piece { return name }
            return nil
        }
    }

    /// A url as written: text as it is, and `${NAME}`s (a `${` without its `}` is text).
    private enum Piece {
        case text(Substring)
        case variable(String)
    }

    private static func pieces(of url: String) -> [Piece] {
        var pieces: [Piece] = []
        var rest = Substring(url)
        while let start = rest.range(of: "${"), let end = rest[start.upperBound...].firstIndex(of: "}") {
            pieces.append(.text(rest[..<start.lowerBound]))
            pieces.append(.variable(String(rest[start.upperBound..<end])))
            rest = rest[rest.index(after: end)...]
        }
        pieces.append(.text(rest))
        return pieces
    }

    /// The first `deb` source of the machine's apt configuration that carries `suite` (one-line `.list`
    /// files and deb822 `.sources` files, in apt's order: sources.list, then sources.list.d by name).
    static func system(suite: String, aptDirectory: String) throws(UnknownAddress) -> RepositoryAddress {
        var files = [aptDirectory + "/sources.list"]
        let listed = (try? FileManager.default.contentsOfDirectory(atPath: aptDirectory + "/sources.list.d")) ?? []
        files += listed.filter { $0.hasSuffix(".list") || $0.hasSuffix(".sources") }.sorted().map { aptDirectory + "/sources.list.d/" + $0 }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file), data.count < 1 << 20 else { continue }
            let text = String(decoding: data, as: UTF8.self)
            let sources = file.hasSuffix(".sources") ? deb822Sources(text) : oneLineSources(text)
            for source in sources where source.suites.contains(suite) {
                let root = source.uri.hasSuffix("/") ? String(source.uri.dropLast()) : source.uri
                guard root.hasPrefix("http://") || root.hasPrefix("https://") else { continue }
                // A Signed-By of key files names them; an inline key or fingerprints give none here (and no
                // fallback to every trusted key): the Imagefile's 'keyring' must say.
                return RepositoryAddress(root: root, keyrings: source.signedBy.map(Self.keyFiles) ?? systemKeyrings(aptDirectory))
            }
        }
        throw UnknownAddress(description: "the machine's apt sources (\(aptDirectory)) have no http(s) 'deb' source for the suite \(suite): add one, or write the archive's address as the repository's url")
    }

    private struct Source {
        var uri: String
        var suites: [String]
        var signedBy: String?
    }

    /// The key files of a `Signed-By` value: absolute paths, separated by commas or spaces; nothing when it
    /// holds anything else.
    private static func keyFiles(_ value: String) -> [String] {
        let parts = value.split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
        return parts.allSatisfy({ $0.hasPrefix("/") }) ? parts : []
    }

    private static func deb822Sources(_ text: String) -> [Source] {
        let names = ["Types", "URIs", "Suites", "Signed-By", "Enabled"]
        return ControlParagraphs(Array(text.utf8), fields: names).compactMap { paragraph in
            let values = paragraph.values
            guard let types = values[0], types.split(separator: " ").contains("deb"), let uris = values[1], let suites = values[2],
                  values[4]?.lowercased() != "no" else { return nil }
            let signedBy = values[3]
            return uris.split(whereSeparator: \.isWhitespace).first.map { Source(uri: String($0), suites: suites.split(whereSeparator: \.isWhitespace).map(String.init), signedBy: signedBy) }
        }
    }

    private static func oneLineSources(_ text: String) -> [Source] {
        text.split(separator: "\n").compactMap { line in
            var words = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard words.first == "deb" else { return nil }
            words.removeFirst()
            var signedBy: String?
            if let open = words.first, open.hasPrefix("[") {
                while let option = words.first {
                    words.removeFirst()
                    let trimmed = option.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                    if trimmed.hasPrefix("signed-by=") { signedBy = String(trimmed.dropFirst("signed-by=".count)) }
                    if option.hasSuffix("]") { break }
                }
            }
            guard words.count >= 2 else { return nil }
            return Source(uri: words[0], suites: [words[1]], signedBy: signedBy)
        }
    }

    private static func systemKeyrings(_ aptDirectory: String) -> [String] {
        let folder = aptDirectory + "/trusted.gpg.d"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".gpg") }.sorted()
        return names.map { folder + "/" + $0 } + (FileManager.default.fileExists(atPath: aptDirectory + "/trusted.gpg") ? [aptDirectory + "/trusted.gpg"] : [])
    }
}
