import Foundation
import Yams

/// Walks the YAML node tree, checking keys and types and remembering where each value stood.
public struct NodeReader: Sendable {
    /// The document's path, as messages name it.
    public let file: String

    public init(file: String) { self.file = file }

    public func location(_ node: Node) -> SourceLocation? {
        node.mark.map { SourceLocation(file: file, line: $0.line, column: $0.column) }
    }

    public func error(_ node: Node, _ message: String) -> DocumentError {
        DocumentError(file: file, location: location(node), message: message)
    }

    public func yamlError(_ error: YamlError) -> DocumentError {
        switch error {
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _), let .composer(context, problem, mark, _):
            let where_ = SourceLocation(file: file, line: mark.line, column: mark.column)
            return DocumentError(file: file, location: where_, message: "not valid YAML: \(context.map { "\($0) " } ?? "")\(problem)")
        case let .duplicatedKeysInMapping(duplicates, context):
            return DocumentError(file: file, location: nil, message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) (\(context)): each key may appear once")
        default:
            return DocumentError(file: file, location: nil, message: "not valid YAML: \(error)")
        }
    }

    /// The UTF-8 text of the document at `path`; `what` names it in messages ("the Imagefile").
    public static func readText(path: String, what: String) throws(DocumentError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "it is not readable" : "no such file"
            throw DocumentError(file: path, location: nil, message: "cannot read \(what): \(reason)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw DocumentError(file: path, location: nil, message: "\(what) is not UTF-8 text")
        }
        return text
    }

    /// Parses YAML `text` into its node tree; an empty document is an error saying `whenEmpty`.
    ///
    /// Every scalar is read as its text (the accessors below parse numbers themselves), so the tags YAML
    /// would resolve are not needed: Yams's basic resolver leaves them unresolved, and never compiles the
    /// default resolver's regular expressions (ICU's, a few milliseconds of every start).
    public func compose(_ text: String, whenEmpty: String) throws(DocumentError) -> Node {
        do {
            guard let node = try Yams.compose(yaml: text, .basic) else {
                throw DocumentError(file: file, location: nil, message: whenEmpty)
            }
            return node
        } catch let error as DocumentError {
            throw error
        } catch let error as YamlError {
            throw yamlError(error)
        } catch {
            throw DocumentError(file: file, location: nil, message: "not valid YAML: \(error)")
        }
    }

    // MARK: Typed accessors

    /// A mapping's entries by key, refusing keys not in `allowed` and duplicate keys.
    public func mapping(_ node: Node, allowed: [String], what: String) throws(DocumentError) -> [String: (key: Node, value: Node)] {
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

    public func string(_ node: Node, what: String) throws(DocumentError) -> String {
        guard case .scalar(let scalar) = node else { throw error(node, "\(what) must be a single value (a string), not a list or mapping") }
        return scalar.string
    }

    public func nonEmptyString(_ node: Node, what: String) throws(DocumentError) -> String {
        let value = try string(node, what: what)
        guard !value.isEmpty else { throw error(node, "\(what) must not be empty") }
        return value
    }

    public func integer(_ node: Node, what: String, range: ClosedRange<Int64>) throws(DocumentError) -> Int64 {
        let text = try string(node, what: what)
        guard let value = Int64(text), range.contains(value) else {
            throw error(node, "\(what) must be a whole number from \(range.lowerBound) to \(range.upperBound), not '\(text)'")
        }
        return value
    }

    public func sequence(_ node: Node, what: String) throws(DocumentError) -> [Node] {
        guard case .sequence(let sequence) = node else { throw error(node, "\(what) must be a list (one '- ' item per line, or [a, b])") }
        return Array(sequence)
    }

    public func stringList(_ node: Node, what: String) throws(DocumentError) -> [String] {
        if case .scalar = node {
            throw error(node, "\(what) must be a list of strings, e.g. [\"/app/hello\", \"--flag\"]")
        }
        var result: [String] = []
        for item in try sequence(node, what: what) { result.append(try string(item, what: "an item of \(what)")) }
        return result
    }

    public func stringMap(_ node: Node, what: String) throws(DocumentError) -> [(key: String, value: String)] {
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
}
