extension ImageConfig.Execution {
    /// What is wrong with a `Volumes` entry.
    public struct BadVolume: Error, Equatable {
        public let path: String
    }

    /// The folders an instance may write to when its root is read-only: `/tmp` and each of the config's
    /// `Volumes`, as clean absolute paths (trailing `/` removed), without repeats, sorted by their bytes.
    /// Throws for an entry that is relative, `/`, holds `.`, `..` or an empty component, a control
    /// character, or is longer than 4096 bytes.
    public func writableFolders() throws(BadVolume) -> [String] {
        var paths: Set<String> = ["/tmp"]
        for volume in (volumes ?? [:]).keys {
            var path = volume
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard path.hasPrefix("/"), path != "/", !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
                  path.utf8.count <= 4096, !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
                throw BadVolume(path: volume)
            }
            paths.insert(path)
        }
        return paths.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }
}
