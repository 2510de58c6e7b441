import Builder
import Store

/// Why an image was not tested, tagged or attested. Every case says what to do next.
public enum PipelineError: Error, CustomStringConvertible {
    /// Writing the image failed.
    case build(BuildError)
    /// The reference names an index or an artifact, which carry no tests.
    case notAnImage(reference: String)
    /// The image carries no test suite.
    case noTests(reference: String)
    /// The tests could not be run at all (which is not their failing).
    case testsNotRun(reference: String, cause: any Error)
    /// The image failed its tests, so its version was not tagged.
    case testsFailed(reference: String, details: String)
    /// The store refused or failed.
    case store(StoreError)
    /// The image is built and tagged, but its attestations (test results, SBOM, provenance) are not all written.
    case attestationsNotWritten(reference: String, cause: any Error)
    /// The image passed its tests, but the record of the pass could not be written.
    case testRecordNotWritten(reference: String, cause: any Error)

    public var description: String {
        switch self {
        case .build(let error):
            error.description
        case .notAnImage(let reference):
            "\(reference) is not an image manifest"
        case .noTests(let reference):
            "\(reference) carries no tests: add a 'tests:' section to its Imagefile and build a new version"
        case let .testsNotRun(reference, cause):
            "cannot test \(reference): \(cause)"
        case let .testsFailed(reference, details):
            "\(reference) failed its tests, so the version was not tagged:\n\(details)"
        case .store(let error):
            error.description
        case let .attestationsNotWritten(reference, cause):
            "\(reference) was built and tagged, but its attestations could not be written: \(cause)"
        case let .testRecordNotWritten(reference, cause):
            "\(reference) passed its tests, but the record of the pass could not be written: \(cause)"
        }
    }
}
