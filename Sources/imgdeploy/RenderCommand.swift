import ArgumentParser
import Foundation
import Kubernetes
import ReleaseSpec
import UnpackedReleases

struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Write Kubernetes manifests for a release spec, the image pinned by digest.",
        discussion: """
        The Pods meet the restricted Pod Security Standard. The image's config is read from the spec's source \
        (its manifest and config only, checked against the digest) for its user, which must be numeric and not \
        root, and its volumes, each an emptyDir over the read-only root. When the source cannot be reached, the \
        manifests are written without them and a warning says so.
        """)

    @Flag(name: .long, help: "Render Kubernetes manifests (the only target so far).") var kubernetes = false
    @Argument(help: ArgumentHelp("The release spec (YAML).", valueName: "SPEC")) var spec: String
    @Option(name: .long, help: ArgumentHelp("The registry the cluster pulls from, HOST[:PORT] (default: the spec's registry source).", valueName: "HOST")) var registry: String?
    @Option(name: .long, help: ArgumentHelp("For blue-green: the slot this release goes to; the Service switches to it.", valueName: "blue|green")) var slot: String = "blue"
    @Option(name: [.short, .long], help: ArgumentHelp("Write to this file instead of standard output.", valueName: "FILE")) var output: String?

    func run() async throws {
        guard kubernetes else { throw ValidationError("say what to render: --kubernetes") }
        guard let slot = KubernetesManifests.Slot(rawValue: slot) else { throw ValidationError("--slot must be blue or green, not '\(slot)'") }
        let parsed = try ReleaseSpec.load(path: spec)
        // What the spec alone decides (the registry, the capabilities) is refused before anything is fetched.
        _ = try KubernetesManifests(spec: parsed, image: nil, registry: registry, slot: slot)
        let image: KubernetesManifests.ImageSettings?
        do {
            let configs = try await ImageConfigReader.configs(of: parsed.image, from: parsed.source, within: .seconds(30))
            image = try KubernetesManifests.ImageSettings(configs: configs, image: "\(parsed.image)")
        } catch ReleaseError.fetchFailed(_, _, let reason) where { if case .registry = parsed.source { true } else { false } }() {
            // Only a registry that cannot be reached is worked around; a local store that lacks the image is a mistake.
            printError("warning: cannot read the config of \(parsed.image) from \(parsed.source) (\(reason)): the manifests are rendered "
                       + "without the image's user (the kubelet will refuse to start it if it is root or not numeric) and without an "
                       + "emptyDir for each volume it declares (only /tmp is writable); render where the source is reachable to check both now")
            image = nil
        }
        let text = try KubernetesManifests(spec: parsed, image: image, registry: registry, slot: slot).render()
        let limit = 1 << 20
        guard text.utf8.count <= limit else {
            throw ValidationError("the manifests would be \(text.utf8.count) bytes, more than the \(limit) a Kubernetes API server takes in one object")
        }
        if let output {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } else {
            print(text, terminator: "")
        }
    }
}
