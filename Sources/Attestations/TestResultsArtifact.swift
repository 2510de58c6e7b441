import Foundation
import OCI
import Store

/// The record that an image passed its Imagefile tests: an artifact referring to the image, tagged
/// `sha256-<hex>.tests`. Its document is `{"image": "sha256:…", "passed": true, "results": [...]}`.
public enum TestResultsArtifact {
    public static let artifactType = "application/vnd.imgbuild.test-results.v1+json"

    /// Keeps `document` (the test report, JSON) as a referrer of `image`.
    public static func attach(_ document: Data, to image: Descriptor, repository: RepositoryName, in store: Store) throws -> Descriptor {
        try ReferrerArtifact.store(document, mediaType: artifactType, artifactType: artifactType, subject: image,
                                   repository: repository, in: store, tag: ReferrerTag.tag(subject: image.digest, suffix: ReferrerTag.tests))
    }

    /// Why an image has no passing test record.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case missing(String)
        case rejected(String, [String])
        public var description: String {
            switch self {
            case .missing(let image): return "\(image) has no test results: build it from an Imagefile with 'tests:', or run `imgbuild test \(image)`"
            case let .rejected(image, reasons): return "no passing test results for \(image): " + reasons.joined(separator: "; ")
            }
        }
    }

    /// Checks that a test record refers to `image`, names its digest, and says it passed; with
    /// `platform`, also that none of its tests was left unrun on that platform (a multi-platform image runs
    /// its command tests on the tester's platform only). Returns the digest of the passing record found.
    @discardableResult
    public static func check(_ image: Digest, repository: RepositoryName, in store: Store, ranOn platform: Platform? = nil) throws(Failure) -> Digest {
        let candidates = ReferrerArtifact.referring(to: image, artifactType: artifactType, repository: repository, in: store)
        guard !candidates.isEmpty else { throw .missing("\(repository)@\(image)") }
        var reasons: [String] = []
        for (digest, loaded) in candidates {
            guard case .success(let artifact) = loaded,
                  let document = (try? JSONSerialization.jsonObject(with: artifact.payload)) as? [String: Any] else {
                reasons.append("\(digest): not a test record of this image")
                continue
            }
            guard document["image"] as? String == image.description else { reasons.append("\(digest): it records another image"); continue }
            guard document["passed"] as? Bool == true else { reasons.append("\(digest): the tests failed"); continue }
            if let platform {
                let results = document["results"] as? [[String: Any]] ?? []
                let notRun = results.filter { $0["notRun"] as? Bool == true && ($0["platform"] as? String).flatMap(Platform.init(parsing:))?.matches(platform) == true }
                guard notRun.isEmpty else {
                    reasons.append("\(digest): \(notRun.count) command test(s) were not run on \(platform) (run `imgbuild test` on a \(platform) machine)")
                    continue
                }
            }
            return digest
        }
        throw .rejected("\(repository)@\(image)", reasons)
    }
}
