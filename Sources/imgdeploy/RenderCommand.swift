import ArgumentParser
import Foundation
import Kubernetes
import ReleaseSpec

struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Write Kubernetes manifests for a release spec, the image pinned by digest.")

    @Flag(name: .long, help: "Render Kubernetes manifests (the only target so far).") var kubernetes = false
    @Argument(help: ArgumentHelp("The release spec (YAML).", valueName: "SPEC")) var spec: String
    @Option(name: .long, help: ArgumentHelp("The registry the cluster pulls from, HOST[:PORT] (default: the spec's registry source).", valueName: "HOST")) var registry: String?
    @Option(name: .long, help: ArgumentHelp("For blue-green: the slot this release goes to; the Service switches to it.", valueName: "blue|green")) var slot: String = "blue"
    @Option(name: [.short, .long], help: ArgumentHelp("Write to this file instead of standard output.", valueName: "FILE")) var output: String?

    func run() throws {
        guard kubernetes else { throw ValidationError("say what to render: --kubernetes") }
        guard let slot = KubernetesManifests.Slot(rawValue: slot) else { throw ValidationError("--slot must be blue or green, not '\(slot)'") }
        let parsed = try ReleaseSpec.load(path: spec)
        let text = try KubernetesManifests(spec: parsed, registry: registry, slot: slot).render()
        if let output {
            try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
        } else {
            print(text, terminator: "")
        }
    }
}
