/// Cosign's convention for finding artifacts about an image on registries without the referrers API:
/// the artifact (its latest one of a kind) is tagged `sha256-<hex>.<suffix>` after its subject's digest.
/// imgbuild writes and reads `sig` (signatures), `sbom`, `att` (attestations such as provenance) and
/// `tests` (its test records).
public enum ReferrerTag {
    public static let signature = "sig"
    public static let sbom = "sbom"
    public static let attestation = "att"
    public static let tests = "tests"
    /// Every suffix imgbuild knows, in the order a search tries them.
    public static let suffixes = [signature, sbom, attestation, tests]

    /// `sha256-<hex>.<suffix>`.
    public static func tag(subject: Digest, suffix: String) -> String { prefix(subject: subject) + suffix }

    /// `sha256-<hex>.`: what every such tag of `subject` starts with.
    public static func prefix(subject: Digest) -> String { "sha256-\(subject.hex)." }

    /// The tag for an artifact of `artifactType` about `subject`.
    public static func tag(subject: Digest, artifactType: String?) -> String {
        let suffix: String
        switch artifactType ?? "" {
        case let type where type.contains("cosign.artifact.sig"): suffix = signature
        case let type where type.contains("spdx") || type.contains("cyclonedx"): suffix = sbom
        case let type where type.contains("test-results"): suffix = tests
        default: suffix = attestation
        }
        return tag(subject: subject, suffix: suffix)
    }
}

/// The most bytes a manifest (or index) may have: what the distribution spec lets registries refuse
/// beyond, and what imgbuild reads, sends, stores and serves.
public enum ManifestLimit {
    public static let maxBytes = 4 << 20
}
