import ArgumentParser
import OCI
import SemVer
import Store

struct TagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag",
        abstract: "Point NAME:VERSION at a manifest in the store, once and for ever.",
        discussion: "A version that exists with another digest is refused; the same digest again is a no-op. No command moves or deletes a tag."
    )

    @Argument(help: "The repository name.", completion: StoreCompletion.names) var name: String
    @Argument(help: "A SemVer 2.0.0 version, e.g. 1.4.0.") var version: String
    @Argument(help: "The manifest digest, sha256:<hex>.") var digest: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let repository = try RepositoryName(name)
        let version: Version
        do { version = try Version(parsing: self.version) } catch {
            let mutable = !self.version.contains(".") && !self.version.hasPrefix("v")
            throw ValidationError(mutable
                ? "'\(self.version)' is not a version: tags are immutable SemVer versions (e.g. 1.4.0); mutable names such as 'latest' do not exist"
                : error.description)
        }
        let digest = try Digest(parsing: self.digest)
        let store = try storeOptions.openExisting()
        let manifest = try store.manifest(digest)
        let descriptor = Descriptor(mediaType: manifest.manifest.mediaType, digest: digest, size: Int64(manifest.data.count))
        switch try store.tag(repository, version, descriptor) {
        case .created: print("tagged \(repository):\(version) \(digest)")
        case .unchanged: print("\(repository):\(version) already points at \(digest)")
        }
    }
}

struct TagsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tags", abstract: "List a repository's versions in precedence order: VERSION DIGEST.")

    @Argument(help: "The repository name.", completion: StoreCompletion.names) var name: String
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() throws {
        let repository = try RepositoryName(name)
        let tags = try storeOptions.openExisting().tags(repository)
        if output.json {
            return try printJSONDocument(JSONOutput.Tags(repository: repository.value, tags: tags.map {
                JSONOutput.Tag(version: $0.version.description, digest: $0.descriptor.digest, mediaType: $0.descriptor.mediaType, size: $0.descriptor.size)
            }))
        }
        for (version, descriptor) in tags {
            print("\(version) \(descriptor.digest)")
        }
    }
}

struct ResolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Print the digest of the highest version in a range: NAME@RANGE.",
        discussion: "Ranges as npm writes them: 1.4.0, ^1.2.0, ~1.2.3, 1.x, '>=1.2.0 <2.0.0', 'A || B'. Pre-releases match only if the range names one, or with --include-prerelease."
    )

    @Argument(help: "NAME@RANGE, e.g. 'hello@^1.2.0'.", completion: StoreCompletion.ranges) var reference: String
    @Flag(name: .customLong("include-prerelease"), help: "Let pre-release versions match.") var includePrerelease = false
    @Flag(name: .shortAndLong, help: "Also print the version on standard error.") var verbose = false
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() throws {
        guard let at = reference.firstIndex(of: "@") else {
            throw ValidationError("'\(reference)' has no range: write NAME@RANGE, e.g. 'hello@^1.2.0'")
        }
        let repository = try RepositoryName(String(reference[..<at]))
        let range = try VersionRange(parsing: String(reference[reference.index(after: at)...]))
        let match = try storeOptions.openExisting().resolve(repository, range: range, includePrerelease: includePrerelease)
        if verbose { printError("\(repository):\(match.version)") }
        if output.json {
            return try printJSONDocument(JSONOutput.Resolved(repository: repository.value, range: String(reference[reference.index(after: at)...]),
                                                             version: match.version.description, digest: match.descriptor.digest))
        }
        print(match.descriptor.digest)
    }
}

struct ImagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "images", abstract: "List the store's repositories with their number of versions and the highest one.")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() throws {
        let store = try storeOptions.openExisting()
        var repositories: [JSONOutput.Images.Repository] = []
        for repository in store.repositories() {
            let tags = try store.tags(repository)
            if output.json {
                repositories.append(.init(name: repository.value, versions: tags.count, latest: tags.last.map {
                    JSONOutput.Tag(version: $0.version.description, digest: $0.descriptor.digest, mediaType: $0.descriptor.mediaType, size: $0.descriptor.size)
                }))
            } else {
                print("\(repository) \(tags.count) \(tags.last.map { "\($0.version) \($0.descriptor.digest)" } ?? "-")")
            }
        }
        if output.json { try printJSONDocument(JSONOutput.Images(repositories: repositories)) }
    }
}
