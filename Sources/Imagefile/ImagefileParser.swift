import Foundation
import OCI
import SemVer
import Yams

extension Imagefile {
    /// The keys an Imagefile may have at its top level.
    public static let topLevelKeys = ["name", "version", "base", "platform", "sourceDateEpoch", "dependencies", "runtime", "code", "config"]

    /// Reads and validates the Imagefile at `path`.
    public static func load(path: String) throws(ImagefileError) -> Imagefile {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ImagefileError(file: path, location: nil, message: "cannot read the Imagefile: \((error as NSError).localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ImagefileError(file: path, location: nil, message: "the Imagefile is not UTF-8 text")
        }
        let directory = (URL(fileURLWithPath: path).deletingLastPathComponent().path as NSString).standardizingPath
        return try parse(text, path: path, contextDirectory: directory)
    }

    /// Parses Imagefile text. `path` is used in messages; `contextDirectory` is the build context.
    public static func parse(_ text: String, path: String, contextDirectory: String) throws(ImagefileError) -> Imagefile {
        let reader = NodeReader(file: path)
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw ImagefileError(file: path, location: nil, message: "the Imagefile is empty: it needs at least 'name' and 'version'")
            }
            root = node
        } catch let error as ImagefileError {
            throw error
        } catch let error as YamlError {
            throw reader.yamlError(error)
        } catch {
            throw ImagefileError(file: path, location: nil, message: "not valid YAML: \(error)")
        }
        return try reader.imagefile(root, contextDirectory: contextDirectory)
    }
}

/// Walks the YAML node tree, checking keys and types and remembering where each value stood.
struct NodeReader {
    let file: String

    func location(_ node: Node) -> SourceLocation? {
        node.mark.map { SourceLocation(file: file, line: $0.line, column: $0.column) }
    }

    func error(_ node: Node, _ message: String) -> ImagefileError {
        ImagefileError(file: file, location: location(node), message: message)
    }

    func yamlError(_ error: YamlError) -> ImagefileError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let where_ = SourceLocation(file: file, line: mark.line, column: mark.column)
            return ImagefileError(file: file, location: where_, message: "not valid YAML: \(context.map { "\($0) " } ?? "")\(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return ImagefileError(file: file, location: nil, message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) (\(context)): each key may appear once")
        default:
            return ImagefileError(file: file, location: nil, message: "not valid YAML: \(error)")
        }
    }

    // MARK: Typed accessors

    /// A mapping's entries by key, refusing keys not in `allowed` and duplicate keys.
    func mapping(_ node: Node, allowed: [String], what: String) throws(ImagefileError) -> [String: (key: Node, value: Node)] {
        guard case .mapping(let mapping) = node else { throw error(node, "\(what) must be a mapping of keys to values") }
        var result: [String: (Node, Node)] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw error(key, "keys of \(what) must be plain strings") }
            guard allowed.contains(name) else {
                throw error(key, "unknown key '\(name)' in \(what); expected one of: \(allowed.joined(separator: ", "))")
            }
            guard result[name] == nil else { throw error(key, "duplicate key '\(name)' in \(what)") }
            result[name] = (key, value)
        }
        return result
    }

    func string(_ node: Node, what: String) throws(ImagefileError) -> String {
        guard case .scalar(let scalar) = node else { throw error(node, "\(what) must be a single value (a string), not a list or mapping") }
        return scalar.string
    }

    func nonEmptyString(_ node: Node, what: String) throws(ImagefileError) -> String {
        let value = try string(node, what: what)
        guard !value.isEmpty else { throw error(node, "\(what) must not be empty") }
        return value
    }

    func integer(_ node: Node, what: String, range: ClosedRange<Int64>) throws(ImagefileError) -> Int64 {
        let text = try string(node, what: what)
        guard let value = Int64(text), range.contains(value) else {
            throw error(node, "\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(text)'")
        }
        return value
    }

    func sequence(_ node: Node, what: String) throws(ImagefileError) -> [Node] {
        guard case .sequence(let sequence) = node else { throw error(node, "\(what) must be a list (one '- ' item per line, or [a, b])") }
        return Array(sequence)
    }

    func stringList(_ node: Node, what: String) throws(ImagefileError) -> [String] {
        if case .scalar = node {
            throw error(node, "\(what) must be a list of strings, e.g. [\"/app/hello\", \"--flag\"]")
        }
        var result: [String] = []
        for item in try sequence(node, what: what) { result.append(try string(item, what: "an item of \(what)")) }
        return result
    }

    func stringMap(_ node: Node, what: String) throws(ImagefileError) -> [(key: String, value: String)] {
        guard case .mapping(let mapping) = node else { throw error(node, "\(what) must be a mapping of names to values") }
        var result: [(String, String)] = []
        var seen = Set<String>()
        for (key, value) in mapping {
            let name = try nonEmptyString(key, what: "a key of \(what)")
            guard seen.insert(name).inserted else { throw error(key, "duplicate key '\(name)' in \(what)") }
            result.append((name, try string(value, what: "the value of '\(name)' in \(what)")))
        }
        return result
    }

    /// An absolute path inside the image, normalised to `/a/b` form.
    func imagePath(_ node: Node, what: String) throws(ImagefileError) -> String {
        let text = try nonEmptyString(node, what: what)
        guard text.hasPrefix("/") else { throw error(node, "\(what) must be an absolute path in the image (starting with '/'), not '\(text)'") }
        guard !text.split(separator: "/").contains("..") else { throw error(node, "\(what) must not contain '..'") }
        return text
    }

    /// A path in the build context: relative, and not climbing out of it.
    func contextPath(_ node: Node, what: String) throws(ImagefileError) -> String {
        let text = try nonEmptyString(node, what: what)
        guard !text.hasPrefix("/") else {
            throw error(node, "\(what) '\(text)' must be relative to the Imagefile's folder (the build context), not absolute")
        }
        var depth = 0
        for component in text.split(separator: "/") {
            if component == ".." { depth -= 1 } else if component != "." { depth += 1 }
            if depth < 0 {
                throw error(node, "\(what) '\(text)' lies outside the build context: only files in the Imagefile's folder can be copied (declare outside artefacts as dependencies pinned by sha256)")
            }
        }
        return text
    }
}
