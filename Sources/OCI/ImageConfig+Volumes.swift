extension ImageConfig.Execution {
    /// What is wrong with the config's `Volumes`.
    public struct BadVolume: Error, Equatable {
        /// The entry (or the count, when there are too many), with unprintable characters escaped.
        public let path: String
        public let reason: String
    }

    /// The most volumes an image may declare: far more than any image uses, few enough that manifests
    /// and mount tables stay small.
    public static let maxVolumes = 256

    /// The folders an instance may write to when its root is read-only: `/tmp` and each of the config's
    /// `Volumes`, as clean absolute paths (trailing `/` removed), without repeats, sorted by their bytes.
    /// Throws for an entry that is relative, `/`, holds `.`, `..` or an empty component, lies in `/proc`,
    /// `/sys` or `/dev` (which the runtime owns), holds a control or direction-changing character, or is
    /// longer than 4096 bytes; and for more than ``maxVolumes`` entries.
    public func writableFolders() throws(BadVolume) -> [String] {
        let declared = (volumes ?? [:]).keys
        guard declared.count <= Self.maxVolumes else {
            throw BadVolume(path: "\(declared.count) volumes", reason: "an image may declare at most \(Self.maxVolumes)")
        }
        var paths: Set<String> = ["/tmp"]
        for volume in declared {
            var path = volume
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard !path.unicodeScalars.contains(where: Self.isUnprintable) else {
                throw BadVolume(path: Self.escaped(volume), reason: "it holds a control or direction-changing character")
            }
            guard path.hasPrefix("/"), path != "/", !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }), path.utf8.count <= 4096 else {
                throw BadVolume(path: Self.escaped(volume), reason: "a volume must be an absolute path other than '/', at most 4096 bytes, without '.', '..' or empty parts")
            }
            guard !["proc", "sys", "dev"].contains(parts.first.map(String.init) ?? "") else {
                throw BadVolume(path: volume, reason: "/proc, /sys and /dev belong to the container runtime")
            }
            paths.insert(path)
        }
        return paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// C0 and C1 controls, DEL, and the characters that reorder text on a terminal (bidi marks and overrides).
    public static func isUnprintable(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        return value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x200E || value == 0x200F
            || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value)
    }

    /// `text` with every unprintable character written as `\u{XX}`, safe to print on a terminal.
    public static func escaped(_ text: String) -> String {
        text.unicodeScalars.map { isUnprintable($0) ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
    }
}
