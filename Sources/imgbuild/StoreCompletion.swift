import ArgumentParser
import OCI
import Store

/// Shell completion of what the local store holds (`imgbuild --generate-completion-script bash|zsh|fish`):
/// the shell asks `imgbuild` itself, which reads the store named by `--store` on the command line being
/// completed (else `$IMGBUILD_STORE` or the default).
enum StoreCompletion {
    /// `NAME:VERSION` for every version of every repository.
    static let references = CompletionKind.custom { words, index, prefix in complete(words, index, prefix, versions: true) { "\($0):\($1)" } }
    /// Repository names.
    static let names = CompletionKind.custom { words, index, prefix in complete(words, index, prefix, versions: false) { name, _ in name.value } }
    /// `NAME@` for `resolve NAME@RANGE`.
    static let ranges = CompletionKind.custom { words, index, prefix in complete(words, index, prefix, versions: false) { name, _ in name.value + "@" } }

    static func complete(_ words: [String], _ index: Int, _ prefix: String, versions: Bool,
                         _ format: (RepositoryName, String) -> String) -> [String] {
        candidates(words, versions: versions, format).filter { $0.hasPrefix(prefix) }
    }

    static func candidates(_ words: [String], versions: Bool, _ format: (RepositoryName, String) -> String) -> [String] {
        guard let store = try? Store.open(at: storeArgument(words) ?? Store.defaultPath(), create: false) else { return [] }
        var result: [String] = []
        for repository in store.repositories() {
            if !versions {
                result.append(format(repository, ""))
                continue
            }
            for (version, _) in (try? store.tags(repository)) ?? [] { result.append(format(repository, version.description)) }
        }
        return result
    }

    /// The value of `--store DIR` or `--store=DIR` among the words of the command line.
    static func storeArgument(_ words: [String]) -> String? {
        for (index, word) in words.enumerated() {
            if word.hasPrefix("--store="), word.count > "--store=".count { return String(word.dropFirst("--store=".count)) }
            if word == "--store", index + 1 < words.count { return words[index + 1] }
        }
        return nil
    }
}
