import Attestations
import Builder
import Foundation
import ImageChecks
import Imagefile
import Layers
import OCI
import Store

/// What happens to an image once the builder has written it: its tests run, its version is tagged, and
/// its attestations are written, in that order, so that no version ever names an image that failed its
/// tests. `imgbuild build` runs every step; `imgbuild test` runs an image's tests again and records a pass.
public struct BuildPipeline: Sendable {
    /// Also keep an SPDX SBOM of the image as a referrer.
    public var attachSBOM = false
    /// Also keep an in-toto SLSA provenance statement of the build as a referrer.
    /// Also keep an in-toto SLSA provenance statement of the build as a referrer; the image must have been
    /// built with `BuildOptions.listContextFiles`.
    public var attachProvenance = false
    /// Receives one line per step, for people.
    public var progress: @Sendable (String) -> Void

    public init(progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.progress = progress
    }

    /// What `publish` did.
    public struct Published: Sendable {
        /// `name:version`
        public var reference: String
        public var manifest: Descriptor
        /// Whether the version was newly tagged (false when it already named the same image).
        public var newlyTagged: Bool
    }

    /// Tests the image, tags its version, then writes its attestations; the image's write lease is held
    /// until the tag. An image that fails its tests is left untagged, for `gc` to collect.
    public func publish(_ image: WrittenImage) async throws(PipelineError) -> Published {
        let name = image.imagefile.name
        var testRecord: Data?
        if !image.imagefile.tests.isEmpty {
            progress("testing \(name)@\(image.manifest.digest)")
            let report = try await test(image.imagefile.tests, image: image.manifest.digest, reference: image.reference, in: image.store)
            for result in report.results { progress("  \(result.line)") }
            guard report.passed else { throw .testsFailed(reference: image.reference, details: report.failureText) }
            do { testRecord = try report.document() } catch { throw .testsNotRun(reference: image.reference, cause: error) }
        }
        let outcome: TagOutcome
        do { outcome = try image.store.tag(name, image.version, image.manifest) } catch { throw .store(error) }
        withExtendedLifetime(image.lease) {}
        progress(outcome == .created ? "tagged \(image.reference)" : "\(image.reference) already points at this digest")
        do {
            if let testRecord {
                let record = try TestResultsArtifact.attach(testRecord, to: image.manifest, repository: name, in: image.store)
                progress("test results \(record.digest)")
            }
            if attachSBOM {
                // One SBOM per platform's image, as scanners read them: each platform has its own dependencies.
                for platformImage in image.platformImages.isEmpty ? [image.manifest] : image.platformImages {
                    let sbom = try SBOMArtifact.attach(platformImage, repository: name, in: image.store).artifact
                    progress("sbom \(platformImage.platform.map { "of \($0) " } ?? "")\(sbom.digest)")
                }
            }
            if attachProvenance {
                let attestation = try Self.provenance(of: image).attach(repository: name, in: image.store)
                progress("provenance \(attestation.digest)")
            }
        } catch {
            throw .attestationsNotWritten(reference: image.reference, cause: error)
        }
        return Published(reference: image.reference, manifest: image.manifest, newlyTagged: outcome == .created)
    }

    /// The test suite that an image in the store carries in its config.
    public static func suite(of image: Digest, reference: String, in store: Store) throws(PipelineError) -> ImageTestSuite {
        do {
            var manifest: ImageManifest
            switch try store.manifest(image).manifest {
            case .image(let image):
                manifest = image
            case .index(let index):
                // Every platform's image carries the same suite in its config.
                guard let child = index.platformImages.first,
                      case .image(let image) = try store.manifest(child.digest).manifest else { throw PipelineError.notAnImage(reference: reference) }
                manifest = image
            }
            let labels = try store.imageConfig(manifest.config.digest).config.config?.labels
            guard let suite = try ImageTestSuite.carried(in: labels) else { throw PipelineError.noTests(reference: reference) }
            return suite
        } catch let error as PipelineError {
            throw error
        } catch let error as StoreError {
            throw .store(error)
        } catch {
            throw .testsNotRun(reference: reference, cause: error)
        }
    }

    /// Runs `suite` against an image in the store. A failed check is in the report; an error means the
    /// tests could not be run at all.
    public func test(_ suite: ImageTestSuite, image: Digest, reference: String, in store: Store) async throws(PipelineError) -> TestReport {
        do { return try await ImageTester(store: store).run(suite, image: image) } catch {
            throw .testsNotRun(reference: reference, cause: error)
        }
    }

    /// Records a passing report as a referrer of the image, under the store's write lease.
    public func recordPass(_ report: TestReport, of image: Descriptor, repository: RepositoryName, in store: Store) throws(PipelineError) -> Descriptor {
        precondition(report.passed, "only a passing report is recorded")
        do {
            let lease = try store.acquireWriteLease()
            defer { withExtendedLifetime(lease) {} }
            return try TestResultsArtifact.attach(try report.document(), to: image, repository: repository, in: store)
        } catch let error as StoreError {
            throw .store(error)
        } catch {
            throw .testRecordNotWritten(reference: "\(repository)@\(image.digest)", cause: error)
        }
    }

    /// The provenance statement of a build: the Imagefile, every context file, every dependency and the
    /// base by digest, and the parameters that decide the output.
    static func provenance(of image: WrittenImage) -> ProvenanceStatement {
        guard let contextFiles = image.contextFiles else {
            preconditionFailure("provenance needs the context files the build read: set BuildOptions.listContextFiles")
        }
        let imagefile = image.imagefile
        var materials = [ProvenanceStatement.Material(uri: "file:Imagefile", content: .file(path: imagefile.path))]
        let root = imagefile.contextDirectory.hasSuffix("/") ? imagefile.contextDirectory : imagefile.contextDirectory + "/"
        for file in contextFiles.sorted(by: LayerPath.precedes) {
            let relative = file.hasPrefix(root) ? String(file.dropFirst(root.count)) : file
            materials.append(.init(uri: "file:" + relative, content: .file(path: file)))
        }
        for dependency in imagefile.dependencies {
            let uri = switch dependency.source {
            case .deb(let path): "deb:" + path
            case .archive(let path): "archive:" + path
            case .url(let url): url
            }
            materials.append(.init(uri: uri, content: .digest(dependency.sha256)))
        }
        if let base = image.baseDigest {
            materials.append(.init(uri: "oci:base@\(base)", content: .digest(base)))
        }
        return ProvenanceStatement(
            subjectName: imagefile.name.value, image: image.manifest, buildType: "https://imgbuild.invalid/imagefile/v1",
            externalParameters: [
                "imagefile": .text("Imagefile"),
                "name": .text(imagefile.name.value),
                "version": .text(image.version.description),
                "compression": .text(image.compression.rawValue),
                "sourceDateEpoch": .number(image.epoch),
                "platform": .text(image.platformImages.isEmpty ? image.platform.description
                                                                : image.platformImages.compactMap { $0.platform?.description }.joined(separator: ",")),
            ],
            materials: materials, invocationID: image.reference, epoch: image.epoch)
    }
}

extension TestReport.Result {
    /// `✓ check`, or `✗ check: what was found`.
    public var line: String { "\(notRun ? "–" : passed ? "✓" : "✗") \(check)\(actual.map { ": \($0)" } ?? "")" }
}
