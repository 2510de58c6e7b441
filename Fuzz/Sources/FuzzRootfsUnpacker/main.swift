#if canImport(Glibc)
import Glibc
#endif
import FuzzSupport
import Layers

/// Image layers unpacked into a release's root file system (`imgdeploy`), the most exposed reader:
/// layers come from any registry. The input is up to four layers (tar, optionally gzip or zstd),
/// separated by the line `==LAYER==`, applied in order onto an empty folder.
///
/// Invariants, whether the unpack succeeds or is refused: nothing appears beside the root (a bait
/// folder next to it stays empty) or at the file system's top. And when it succeeds (a refused root is
/// removed by its caller, so what a refusal leaves half-made is not checked): no device node or socket
/// was made; no setuid or setgid file unless the policy allows it; no more bytes than the policy allows;
/// and no symlink in the root, followed as the host follows it, leads above the root (an absolute
/// target is taken from the root, as in the container). Run with -rss_limit_mb to catch unbounded
/// allocation.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRootfsUnpacker(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    defer { Scratch.clear() }
    let topBefore = topLevelNames

    var layers: [(path: String, label: String)] = []
    for (index, part) in split(bytes, on: Array("\n==LAYER==\n".utf8)).prefix(4).enumerated() {
        let path = part.withUnsafeBufferPointer { Scratch.write($0, to: "layer\(index)") }
        layers.append((path, "layer \(index)"))
    }
    let root = Scratch.makeFolder("root")
    let bait = Scratch.makeFolder("outside")
    let expected = (layers.indices.map { "layer\($0)" } + ["outside", "root"]).sorted()

    let policy = UnpackPolicy(allowSetuid: size % 2 == 1, maxBytes: 8 << 20, maxEntries: 2000, applyOwners: geteuid() == 0)
    let outcome: String
    var unpacked = false
    do {
        let summary = try RootfsUnpacker(policy: policy).unpack(layers: layers, into: root)
        fuzzCheck(summary.bytes <= policy.maxBytes, "unpacked \(summary.bytes) bytes, over the limit \(policy.maxBytes)")
        fuzzCheck(summary.entries <= policy.maxEntries, "unpacked \(summary.entries) entries, over the limit \(policy.maxEntries)")
        outcome = "unpacked"
        unpacked = true
    } catch {
        outcome = "refused (\(error))"
    }

    fuzzCheck(Scratch.names(in: Scratch.folder) == expected,
              "after the unpack was \(outcome), the folder holding the root has \(Scratch.names(in: Scratch.folder) ?? []), not \(expected)")
    fuzzCheck(Scratch.names(in: bait) == [], "after the unpack was \(outcome), the bait folder beside the root holds \(Scratch.names(in: bait) ?? [])")
    let topAfter = topLevelNames
    fuzzCheck(topAfter.isSubset(of: topBefore), "after the unpack was \(outcome), '/' gained \(topAfter.subtracting(topBefore).sorted())")
    guard unpacked else { return 0 }

    var total: Int64 = 0
    walk(root, []) { components, info in
        let path = components.joined(separator: "/")
        switch info.st_mode & S_IFMT {
        case S_IFCHR, S_IFBLK:
            fuzzCheck(false, "the unpack (\(outcome)) made the device node '\(path)'")
        case S_IFSOCK:
            fuzzCheck(false, "the unpack (\(outcome)) made the socket '\(path)'")
        case S_IFREG:
            total += Int64(info.st_size)
            fuzzCheck(policy.allowSetuid || info.st_mode & (S_ISUID | S_ISGID) == 0,
                      "the unpack (\(outcome)) made '\(path)' setuid/setgid (mode \(String(info.st_mode, radix: 8)))")
        case S_IFLNK:
            let target = readLink(root + "/" + path) ?? ""
            fuzzCheck(!escapes(root: root, linkDirectory: Array(components.dropLast()), target: target, depth: 0),
                      "after the unpack (\(outcome)), the symlink '\(path)' -> '\(target)' leads above the root when followed")
        default:
            break
        }
    }
    fuzzCheck(total <= policy.maxBytes, "the root holds \(total) bytes, over the limit \(policy.maxBytes)")
    return 0
}

/// The names at the top of the file system.
var topLevelNames: Set<String> { Set(Scratch.names(in: "/") ?? []) }

/// `bytes` cut at each occurrence of `separator`.
func split(_ bytes: UnsafeBufferPointer<UInt8>, on separator: [UInt8]) -> [[UInt8]] {
    var parts: [[UInt8]] = []
    var start = 0, i = 0
    while i + separator.count <= bytes.count {
        if bytes[i] == separator[0] && bytes[i..<(i + separator.count)].elementsEqual(separator) {
            parts.append(Array(bytes[start..<i]))
            i += separator.count
            start = i
        } else {
            i += 1
        }
    }
    parts.append(Array(bytes[start...]))
    return parts
}

/// Calls `body` with every entry below `folder` (relative components, `lstat` data), never following a symlink.
func walk(_ folder: String, _ components: [String], _ body: ([String], stat) -> Void) {
    let here = components.isEmpty ? folder : folder + "/" + components.joined(separator: "/")
    for name in Scratch.names(in: here) ?? [] {
        var info = stat()
        guard lstat(here + "/" + name, &info) == 0 else { continue }
        body(components + [name], info)
        if (info.st_mode & S_IFMT) == S_IFDIR { walk(folder, components + [name], body) }
    }
}

func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4097)
    let n = readlink(path, &buffer, 4096)
    guard n >= 0 else { return nil }
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Whether following `target` from the folder `linkDirectory` (components below `root`) climbs above
/// `root`, resolving symlinks met on the way as the kernel would: `..` after a symlink is taken from
/// where the symlink led. Absolute targets start at `root`. Loops count as not escaping (ELOOP).
func escapes(root: String, linkDirectory: [String], target: String, depth: Int) -> Bool {
    resolve(root: root, from: linkDirectory, target: target, depth: depth) == nil
}

/// The components below `root` that `target` leads to; nil when it climbs above the root.
func resolve(root: String, from directory: [String], target: String, depth: Int) -> [String]? {
    var stack = target.hasPrefix("/") ? [] : directory
    for component in target.split(separator: "/", omittingEmptySubsequences: true) {
        if component == "." { continue }
        if component == ".." {
            if stack.isEmpty { return nil }
            stack.removeLast()
            continue
        }
        stack.append(String(component))
        var info = stat()
        guard depth < 40, lstat(root + "/" + stack.joined(separator: "/"), &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK,
              let next = readLink(root + "/" + stack.joined(separator: "/")) else { continue }
        guard let resolved = resolve(root: root, from: Array(stack.dropLast()), target: next, depth: depth + 1) else { return nil }
        stack = resolved
    }
    return stack
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzRootfsUnpacker`.
@_cdecl("FuzzRootfsUnpacker_main")
public func fuzzRootfsUnpackerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzRootfsUnpacker)
}
