/// What a layer entry named as a whiteout does (OCI image-spec, "Whiteouts"): `.wh..wh..opq` hides
/// everything earlier layers put in its folder; `.wh.NAME` hides NAME and everything below it.
public enum Whiteout: Equatable, Sendable {
    /// The folder (nil: the root) whose earlier contents are hidden.
    case opaque(folder: String?)
    /// The path hidden.
    case hides(String)
    /// `.wh.` with no name, `.wh..` or `.wh...`: names nothing, and is refused or skipped by the reader.
    case namesNothing

    /// The whiteout a normalised layer path is, or nil for an ordinary entry.
    public static func of(path: String) -> Whiteout? {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard name.hasPrefix(".wh.") else { return nil }
        let parent = LayerPath.parent(of: path)
        if name == ".wh..wh..opq" { return .opaque(folder: parent) }
        let hidden = String(name.dropFirst(4))
        guard !hidden.isEmpty, hidden != ".", hidden != ".." else { return .namesNothing }
        return .hides(LayerPath.join(parent ?? "", hidden))
    }
}

/// The paths an image's layers leave, as an unpack would: layers applied in order, whiteouts and
/// opaque folders hiding what earlier layers put, and an entry replacing what was at its path (a folder
/// replaces a file there; anything else replaces a folder there with everything below it). Each path
/// carries a caller's value (a file's hashes, an owner…). The one record of these rules for every reader
/// of layers that does not write a root folder (``RootfsUnpacker`` applies the same ``Whiteout``s on disk).
struct MergedLayerPaths<Value> {
    private(set) var values: [String: (value: Value, layer: Int)] = [:]
    /// Every folder a layer has named or implied so far.
    private var folders = Set<String>()

    subscript(path: String) -> Value? { values[path]?.value }

    /// Applies `whiteout`, found in layer number `layer`.
    mutating func apply(_ whiteout: Whiteout, layer: Int) {
        switch whiteout {
        case .opaque(let folder):
            let prefix = (folder ?? "") + "/"
            for key in Array(values.keys) where (folder == nil || key.hasPrefix(prefix)) && values[key]!.layer < layer { values[key] = nil }
        case .hides(let hidden):
            let below = hidden + "/"
            for key in Array(values.keys) where key == hidden || key.hasPrefix(below) { values[key] = nil }
        case .namesNothing:
            break
        }
    }

    /// An entry at `path` arrives: what it replaces is gone (its own value is set with ``set(_:_:layer:)``,
    /// if it has one).
    mutating func replace(_ path: String, isFolder: Bool) {
        if isFolder {
            values[path] = nil
            folders.insert(path)
        } else {
            values[path] = nil
            if folders.contains(path) {
                // Rare (a layer replacing a folder by a file or link): the one whole scan it costs.
                let below = path + "/"
                for key in Array(values.keys) where key.hasPrefix(below) { values[key] = nil }
                folders = folders.filter { $0 != path && !$0.hasPrefix(below) }
            }
        }
        var ancestor = LayerPath.parent(of: path)
        while let folder = ancestor, folders.insert(folder).inserted { ancestor = LayerPath.parent(of: folder) }
    }

    mutating func set(_ path: String, _ value: Value, layer: Int) {
        values[path] = (value, layer)
    }
}
