import ArgumentParser
import Attestations
import BuildPipeline
import Foundation
import Imagefile
import OCI
import Signing
import Store

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Make an ECDSA P-256 key pair: PREFIX.key (private, mode 0600) and PREFIX.pub.")

    @Argument(help: ArgumentHelp("Where to write the keys.", valueName: "PREFIX")) var prefix: String = "imgbuild"

    func run() throws {
        let privatePath = prefix + ".key", publicPath = prefix + ".pub"
        for path in [privatePath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw ValidationError("\(path) exists: keygen never overwrites a key; choose another prefix")
        }
        let key = try SigningKey.generate()
        let fd = open(privatePath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ValidationError("cannot create \(privatePath): \(String(cString: strerror(errno)))") }
        let written = Array(key.privatePEM.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written > 0 else { throw ValidationError("cannot write \(privatePath)") }
        try Data(key.publicPEM.utf8).write(to: URL(fileURLWithPath: publicPath))
        print("wrote \(privatePath) (keep it secret) and \(publicPath)")
    }
}

struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign an image in the store with an ECDSA P-256 key.",
        discussion: "The signature covers a simple-signing payload that binds the manifest digest and the repository name. It is kept as an artifact referring to the image, tagged sha256-<hex>.sig.")

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references) var reference: String
    @Option(name: .long, help: ArgumentHelp("The private key (PEM).", valueName: "KEY")) var key: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let (reference, store, image) = try storeOptions.resolve(self.reference)
        let signingKey = try SigningKey(pem: try readText(key), path: key)
        let lease = try store.acquireWriteLease()
        defer { withExtendedLifetime(lease) {} }
        let signature = try SignatureArtifact.sign(image, repository: reference.name, in: store, with: signingKey)
        print("signed \(reference.name)@\(image.digest): \(signature.digest)")
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check that an image in the store has a signature by the key's owner, over this digest and repository.")

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references) var reference: String
    @Option(name: .long, help: ArgumentHelp("The public key (PEM).", valueName: "PUB")) var key: String
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let (reference, store, image) = try storeOptions.resolve(self.reference)
        let verifyingKey = try VerifyingKey(pem: try readText(key), path: key)
        let verified = try SignatureArtifact.verify(image.digest, repository: reference.name, in: store, with: verifyingKey)
        print("verified \(reference.name)@\(image.digest): signed by \(key) (\(verified.map(\.description).joined(separator: ", ")))")
    }
}

func readText(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
    return String(decoding: data, as: UTF8.self)
}

struct SBOMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sbom",
        abstract: "Make an image's SPDX 2.3 SBOM and keep it as an artifact referring to the image.",
        discussion: "Lists every file with its SHA-1, SHA-256 and layer, and every Debian package (var/lib/dpkg/status.d) with its version, architecture and license. The document depends only on the image, so it is reproducible. It is tagged sha256-<hex>.sbom.")

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references) var reference: String
    @Flag(name: .long, help: "Print the document on standard output (the summary line then goes to standard error).") var print = false
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var platform: PlatformOption

    func run() throws {
        let (reference, store, root) = try storeOptions.resolve(self.reference)
        // A multi-platform image has an SBOM per platform's image, as scanners read them: each has its own packages.
        var images = [root]
        if let platform = try platform.parsed() {
            images = [try store.platformImage(root, platform: platform)]
        } else if case .index(let index) = try store.manifest(root.digest).manifest {
            images = index.platformImages
            guard !images.isEmpty else { throw ValidationError("\(reference) is an index with no image of a platform to describe") }
            if print && images.count != 1 {
                throw ValidationError("\(reference) is a multi-platform image, with an SBOM per platform: pick one to print with --platform (\(index.platforms.map(\.description).joined(separator: ", ")))")
            }
        }
        let lease = try store.acquireWriteLease()
        defer { withExtendedLifetime(lease) {} }
        for image in images {
            let (artifact, document) = try SBOMArtifact.attach(image, repository: reference.name, in: store)
            let summary = "sbom of \(reference.name)@\(image.digest)\(image.platform.map { " (\($0))" } ?? ""): \(artifact.digest)"
            // With --print, standard output carries the document alone (a pipe into jq or a validator), and
            // the summary goes to standard error.
            if print {
                FileHandle.standardOutput.write(document + Data("\n".utf8))
                printError(summary)
            } else {
                Swift.print(summary)
            }
        }
    }
}

struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run an image's tests (the Imagefile's 'tests:', kept in the image) and record a pass as a referrer.",
        discussion: "File and config assertions need nothing; command tests run inside the image with runc (as root). Exits 1 and names each failed assertion with the value found.")

    @Argument(help: "NAME:VERSION or NAME@sha256:<hex>", completion: StoreCompletion.references) var reference: String
    @OptionGroup var storeOptions: StoreOptions

    func run() async throws {
        let (reference, store, image) = try storeOptions.resolve(self.reference)
        let pipeline = BuildPipeline()
        let suite: ImageTestSuite
        do { suite = try BuildPipeline.suite(of: image.digest, reference: "\(reference)", in: store) } catch {
            // Naming something that carries no tests is a usage error, as it always was (exit status 64).
            switch error {
            case .notAnImage, .noTests: throw ValidationError(error.description)
            default: throw error
            }
        }
        let report = try await pipeline.test(suite, image: image.digest, reference: "\(reference)", in: store)
        for result in report.results { print(result.line) }
        guard report.passed else {
            printError("\(reference.name)@\(image.digest) failed \(report.failures.count) of \(report.results.count) tests")
            throw ExitCode.failure
        }
        let record = try pipeline.recordPass(report, of: image, repository: reference.name, in: store)
        let notRun = report.results.count - report.checksRun
        print("passed: \(report.checksRun) tests\(notRun > 0 ? " (\(notRun) left for another platform)" : ""); recorded as \(record.digest)")
    }
}
