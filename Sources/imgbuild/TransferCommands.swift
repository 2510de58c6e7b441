import ArgumentParser
import Distribution
import Foundation
import Store

/// Registry access options shared by push, pull, copy and export.
struct TransferOptions: ParsableArguments {
    @Option(help: "User name for the registry (or IMGBUILD_USERNAME, or ~/.docker/config.json).")
    var username: String?

    @Flag(name: .customLong("password-stdin"), help: "Read the password from standard input (or IMGBUILD_PASSWORD).")
    var passwordStdin = false

    @Option(name: .customLong("ca-file"), help: "PEM file of CA certificates to trust besides the system's.")
    var caFile: String?

    @Flag(help: "Allow plain HTTP to registries on other machines (never disables certificate checks).")
    var insecure = false

    @Flag(name: .shortAndLong, help: "Print no progress.")
    var quiet = false

    @Flag(name: .customLong("no-referrers"), help: "Copy the image only, not the signatures, SBOMs and attestations that refer to it.")
    var noReferrers = false

    @OptionGroup var platform: PlatformOption

    @Option(name: .customLong("chunk-size"), help: ArgumentHelp("Upload blobs larger than this many bytes in chunks of this size.", visibility: .hidden))
    var chunkSize: Int64?

    func registryOptions() throws -> RegistryOptions {
        var options = RegistryOptions()
        if let chunkSize {
            guard chunkSize >= 1024 else { throw ValidationError("--chunk-size must be at least 1024 bytes") }
            options.chunkSize = chunkSize
        }
        options.caFile = caFile
        options.insecure = insecure
        let environment = ProcessInfo.processInfo.environment
        if let username = username ?? environment["IMGBUILD_USERNAME"] {
            var password = environment["IMGBUILD_PASSWORD"] ?? ""
            if passwordStdin {
                password = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                    .trimmingCharacters(in: .newlines)
            }
            options.credentials = RegistryCredentials(username: username, password: password)
        } else if passwordStdin {
            throw ValidationError("--password-stdin needs --username")
        }
        return options
    }

    func run(from: ImageLocation, to: ImageLocation, store: StoreOptions, output: FormatOptions) async throws {
        let display = ProgressDisplay(enabled: !quiet && !output.json)
        let json = output.json
        var transfer = Transfer(storePath: store.store ?? Store.defaultPath(), options: try registryOptions(),
                                progress: { line in
                                    // Notes are never dropped: with JSON on stdout they go to stderr alone.
                                    if json { if line.hasPrefix("note:") { printError(line) } } else { display.line(line) }
                                })
        transfer.onBytes = { digest, done, total in display.bytes(digest.description, done: done, total: total) }
        transfer.carryReferrers = !noReferrers
        transfer.platform = try platform.parsed()
        defer { display.finish() }
        let result = try await transfer.run(from: from, to: to)
        if output.json {
            return try printJSONDocument(JSONOutput.Copied(
                source: from.description, destination: to.description, digest: result.descriptor.digest, mediaType: result.descriptor.mediaType, size: result.descriptor.size,
                tag: destinationTag(result.tag, to), blobs: .init(sent: result.blobsSent, bytesSent: result.bytesSent, skipped: result.blobsSkipped),
                referrers: result.referrersCopied))
        }
        print(result.descriptor.digest)
    }
}

/// The tag as the destination holds it: a registry's in its wire form ('+' as '_').
func destinationTag(_ tag: String?, _ destination: ImageLocation) -> String? {
    guard let tag else { return nil }
    if case .registry = destination { return WireTag.encode(tag) }
    return tag
}

struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Copy an image from the store to an OCI layout or a registry.",
        discussion: "DEST is HOST[:PORT]/REPO[:TAG] or docker://… (HTTPS; plain HTTP to this machine, or elsewhere with --insecure, when the registry does not speak TLS), http(s)://HOST[:PORT]/REPO, or oci:DIR. A version is pushed as the remote tag ('+' becomes '_'); a tag that exists remotely with another digest is refused."
    )
    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references) var reference: String
    @Argument(help: "HOST[:PORT]/REPO[:TAG], docker://HOST/REPO, http(s)://HOST[:PORT]/REPO or oci:DIR") var destination: String
    @OptionGroup var transfer: TransferOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        // The source is the store's, whatever its name looks like; the destination is never the store.
        let source = try ImageLocation(parsing: reference.hasPrefix("store:") ? reference : "store:" + reference)
        let target = try ImageLocation(parsing: destination)
        if case .store = target {
            throw ValidationError("'\(destination)' is not a registry or a layout: write HOST[:PORT]/REPO (e.g. 127.0.0.1:5000/team/hello), "
                + "docker://HOST/REPO, http(s)://HOST[:PORT]/REPO or oci:DIR; to copy within the store, use copy")
        }
        try await transfer.run(from: source, to: target.asRegistry, store: storeOptions, output: output)
    }
}

struct PullCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Bring an image from a registry or an OCI layout into the store, verifying every byte.",
        discussion: "By version it is tagged locally ('_' becomes '+'); by digest it is pinned (kept without a version)."
    )
    @Argument(help: "HOST[:PORT]/REPO:TAG or …@sha256:<hex> (also docker://… or http(s)://…), oci:DIR:TAG or oci:DIR@sha256:<hex>") var source: String
    @Option(name: .customLong("as"), help: "The local repository name (default: the remote repository's).") var name: String?
    @OptionGroup var transfer: TransferOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        // The source is never the store: a name written HOST/PATH is a registry's, whatever the store holds.
        let location = try ImageLocation(parsing: source).asRegistry
        let local: String
        switch location {
        case .registry(let base, let repository, _, _):
            // Docker Hub's official images are named without their library/ namespace, as docker names them.
            local = name ?? (base.hasSuffix("registry-1.docker.io") && repository.hasPrefix("library/") ? String(repository.dropFirst(8)) : repository)
        case .layout: guard let name else { throw ValidationError("an OCI layout has no repository name: give one with --as NAME") }; local = name
        case .store: throw ValidationError("'\(source)' is already in the store: pull takes HOST[:PORT]/REPO:TAG, docker://…, http(s)://… or oci:…")
        }
        // The local name is the store's, even when it looks like a registry (example.com/app).
        try await transfer.run(from: location, to: try ImageLocation(parsing: "store:" + local), store: storeOptions, output: output)
    }
}

struct CopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy an image between any two of: the store, OCI layouts, registries — without a local detour.",
        discussion: "Registry to registry streams blobs from one to the other; on one registry blobs are mounted across repositories."
    )
    @Argument(help: "The source.") var source: String
    @Argument(help: "The destination.") var destination: String
    @OptionGroup var transfer: TransferOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        try await transfer.run(from: try ImageLocation(parsing: source), to: try ImageLocation(parsing: destination), store: storeOptions, output: output)
    }
}
