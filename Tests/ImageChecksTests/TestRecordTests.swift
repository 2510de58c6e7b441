import Attestations
import Foundation
import ImageChecks
import OCI
import Store
import Testing
import TestScheduling

/// A multi-platform image's test record says which command tests were left for another platform, and a
/// deployer of that platform does not take it for a pass.
@Test("a record whose command tests were not run on a platform is no pass for that platform", .mayBlock)
func recordNotRunOnPlatform() throws {
    let store = try Store.open(at: NSTemporaryDirectory() + "record-\(UUID().uuidString.prefix(8))/store")
    let name = try RepositoryName("team/multi")
    let indexData = Data(#"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#.utf8)
    let index = Descriptor(mediaType: MediaType.imageIndex, digest: try store.writeBlob(indexData), size: Int64(indexData.count))
    let report = TestReport(image: index.digest, results: [
        .init(check: "linux/amd64: command [\"true\"]", passed: true, platform: "linux/amd64"),
        .init(check: "linux/arm64: command [\"true\"] not run: commands run on linux/amd64 only", passed: true, platform: "linux/arm64", notRun: true),
    ])
    #expect(report.passed && report.checksRun == 1)
    _ = try TestResultsArtifact.attach(try report.document(), to: index, repository: name, in: store)

    _ = try TestResultsArtifact.check(index.digest, repository: name, in: store)
    _ = try TestResultsArtifact.check(index.digest, repository: name, in: store, ranOn: Platform(os: "linux", architecture: "amd64"))
    #expect(throws: TestResultsArtifact.Failure.self) {
        try TestResultsArtifact.check(index.digest, repository: name, in: store, ranOn: Platform(os: "linux", architecture: "arm64", variant: "v8"))
    }
}
