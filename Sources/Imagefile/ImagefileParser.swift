import Foundation
import OCI
import SemVer
import Yams
import DocumentReader

extension Imagefile {
    /// The keys an Imagefile may have at its top level.
    public static let topLevelKeys = ["name", "version", "base", "platform", "platforms", "sourceDateEpoch", "dependencies", "repositories", "packages", "runtime", "code", "config", "tests"]

    /// Reads and validates the Imagefile at `path`.
    public static func load(path: String) throws(ImagefileError) -> Imagefile {
        let text = try NodeReader.readText(path: path, what: "the Imagefile")
        let directory = (URL(fileURLWithPath: path).deletingLastPathComponent().path as NSString).standardizingPath
        return try parse(text, path: path, contextDirectory: directory)
    }

    /// Parses Imagefile text. `path` is used in messages; `contextDirectory` is the build context.
    public static func parse(_ text: String, path: String, contextDirectory: String) throws(ImagefileError) -> Imagefile {
        let reader = NodeReader(file: path)
        let root = try reader.compose(text, whenEmpty: "the Imagefile is empty: it needs at least 'name' and 'version'")
        return try reader.imagefile(root, contextDirectory: contextDirectory)
    }
}

extension NodeReader {
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
