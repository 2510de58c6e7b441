import FuzzSupport
import Layers

/// Archives and Debian packages read into a layer (`archive:` and `deb:` dependencies of an Imagefile):
/// every compression and format libarchive reads.
///
/// Invariants: every entry the importer keeps has a normalised path below the prefix it was imported
/// under (no leading '/', no '.' or '..', no empty component), hard links point into the layer, and a
/// layer that finalizes has each entry's parents as folders. Run with -rss_limit_mb to catch unbounded
/// allocation.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArchiveImporter(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    defer { Scratch.clear() }
    let path = Scratch.write(bytes, to: "input")
    let importer = ArchiveImporter(label: "input")

    for (prefix, debian) in [("opt/tool", false), ("", true)] {
        let spool: Spool
        do { spool = try Spool(directory: Scratch.folder) } catch { fatalError("no spool: \(error)") }
        var tree = LayerTree(spool: spool)
        do {
            if debian {
                try importer.importDebianPackage(at: path, into: &tree)
            } else {
                try importer.importArchive(at: path, under: prefix, into: &tree)
            }
        } catch {
            _ = error.description
            continue
        }
        guard let entries = try? tree.finalizedEntries() else { continue }
        var seen = Set<String>()
        let paths = Set(entries.map(\.path))
        for entry in entries {
            fuzzCheck(isNormalised(entry.path), "entry path '\(entry.path)' is not normalised")
            fuzzCheck(prefix.isEmpty || entry.path == prefix || entry.path.hasPrefix(prefix + "/") || isAncestor(entry.path, of: prefix),
                      "entry '\(entry.path)' lies outside the prefix '\(prefix)'")
            fuzzCheck(entry.mode <= 0o7777, "entry '\(entry.path)' has mode \(String(entry.mode, radix: 8))")
            fuzzCheck(seen.insert(entry.path).inserted, "entry '\(entry.path)' appears twice")
            switch entry.kind {
            case .hardlink(let target):
                fuzzCheck(isNormalised(target) && paths.contains(target), "hard link '\(entry.path)' points at '\(target)', which the layer lacks")
            case .symlink(let target):
                fuzzCheck(!target.isEmpty, "symlink '\(entry.path)' has an empty target")
            case .regularFile(let content):
                fuzzCheck(content.size >= 0, "file '\(entry.path)' has size \(content.size)")
            case .directory:
                break
            }
        }
    }
    return 0
}

/// `a/b/c`: no leading or trailing '/', no empty, '.' or '..' component.
func isNormalised(_ path: String) -> Bool {
    !path.isEmpty && path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
}

/// Whether `path` is a folder above `prefix` (finalizing adds those as parents).
func isAncestor(_ path: String, of prefix: String) -> Bool { prefix.hasPrefix(path + "/") }

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzArchiveImporter`.
@_cdecl("FuzzArchiveImporter_main")
public func fuzzArchiveImporterMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzArchiveImporter)
}
