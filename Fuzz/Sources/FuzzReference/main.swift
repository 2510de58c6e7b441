import FuzzSupport
import OCI

/// Image references (`NAME:TAG`, `NAME@sha256:…`), repository names and digests, as command lines,
/// release specs and registry paths give them.
///
/// Invariants: whatever parses prints back to text that parses to the same value; a parsed name
/// satisfies `isValid`, and a digest is `sha256:` and 64 lowercase hex digits.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReference(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = fuzzText(fuzzBytes(data, size))

    if let reference = try? Reference(parsing: text) {
        fuzzCheck(reference.description == text, "'\(text)' parsed to a reference that prints as '\(reference)'")
        let again = try? Reference(parsing: reference.description)
        fuzzCheck(again == reference, "'\(reference)' (from '\(text)') does not parse again to the same reference")
        fuzzCheck(RepositoryName.isValid(reference.name.value), "reference '\(text)' has an invalid name")
        if case .tag(let tag) = reference.target {
            fuzzCheck(!tag.isEmpty && !tag.contains("/") && !tag.contains("@"), "reference '\(text)' has tag '\(tag)'")
        }
    }

    let valid = RepositoryName.isValid(text)
    let name = try? RepositoryName(text)
    fuzzCheck(valid == (name != nil), "RepositoryName.isValid('\(text)') disagrees with its initializer")
    if let name {
        fuzzCheck(name.value == text && name.description == text, "name '\(text)' changed when parsed")
        fuzzCheck(text.utf8.count <= 255, "name of \(text.utf8.count) bytes accepted")
        fuzzCheck(text.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || "._-/".utf8.contains($0) },
                  "name '\(text)' holds a byte outside [a-z0-9._/-]")
    }

    if let digest = try? Digest(parsing: text) {
        fuzzCheck(digest.description == text, "digest '\(text)' prints as '\(digest)'")
        fuzzCheck(digest.hex.utf8.count == 64 && digest.hex.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) },
                  "digest '\(text)' has hex '\(digest.hex)'")
        fuzzCheck(Digest(hex: digest.hex) == digest, "Digest(hex:) disagrees with Digest(parsing:) for '\(text)'")
    }
    if let digest = Digest(hex: text) {
        fuzzCheck((try? Digest(parsing: "sha256:" + text)) == digest, "Digest(hex: '\(text)') disagrees with Digest(parsing:)")
    }
    return 0
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzReference`.
@_cdecl("FuzzReference_main")
public func fuzzReferenceMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzReference)
}
