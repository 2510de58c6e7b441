import DebianArchive
import Foundation
import Layers
import OCI
import Store

/// An SPDX 2.3 JSON SBOM of an image: every file with its SHA-1, SHA-256 and layer, and every Debian
/// package recorded in `var/lib/dpkg/status.d` (name, version, architecture, and the license its
/// copyright file names). Kept as an OCI artifact whose `subject` is the image manifest, tagged
/// `sha256-<hex>.sbom`. The document depends only on the image, so it is reproducible like the image.
public enum SBOMArtifact {
    public static let artifactType = "application/spdx+json"

    /// The SBOM document of `image` (a manifest of `repository` in `store`).
    public static func document(_ image: Descriptor, repository: RepositoryName, in store: Store) throws -> Data {
        guard case .image(let manifest) = try store.manifest(image.digest).manifest else {
            throw SBOMError.notAnImage("\(repository)@\(image.digest)")
        }
        let config = try store.imageConfig(manifest.config.digest).config
        let layers = manifest.layers.map { (path: store.blobPath($0.digest), digest: $0.digest) }
        let packageFolder = ArchiveImporter.packageRecordFolder + "/"
        let (files, kept) = try LayerInventory.read(layers: layers) { path in
            path.hasPrefix(packageFolder) || (path.hasPrefix("usr/share/doc/") && path.hasSuffix("/copyright"))
        }
        var packages: [[String: Any]] = [[
            "SPDXID": "SPDXRef-Image",
            "name": repository.value,
            "versionInfo": manifest.annotations?[AnnotationKey.version] ?? config.config?.labels?[AnnotationKey.version] ?? image.digest.description,
            "downloadLocation": "NOASSERTION",
            // Every file of the image is listed and CONTAINED by this package, so its files were analyzed,
            // and SPDX then wants the verification code over them.
            "filesAnalyzed": true,
            "packageVerificationCode": ["packageVerificationCodeValue": LayerInventory.verificationCode(of: files)],
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [["algorithm": "SHA256", "checksumValue": image.digest.hex]],
            "externalRefs": [["referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": "pkg:oci/\(repository.value.split(separator: "/").last ?? "")@sha256%3A\(image.digest.hex)"]],
        ]]
        var relationships: [[String: Any]] = [
            ["spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"],
        ]
        for path in kept.keys.sorted() where path.hasPrefix(packageFolder) {
            let control = DebianControl(String(decoding: kept[path]!, as: UTF8.self))
            guard let name = control.field("Package"), let version = control.field("Version") else { continue }
            let architecture = control.field("Architecture") ?? "NOASSERTION"
            let copyright = kept["usr/share/doc/\(name)/copyright"].map { String(decoding: $0, as: UTF8.self) }
            let id = "SPDXRef-Package-deb-" + spdxID(name)
            packages.append([
                "SPDXID": id,
                "name": name,
                "versionInfo": version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "licenseDeclared": copyright.flatMap(DebianLicense.expression) ?? "NOASSERTION",
                "externalRefs": [["referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": "pkg:deb/debian/\(name)@\(version.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: ".+-~_"))) ?? version)?arch=\(architecture)"]],
                "comment": "architecture \(architecture)",
            ])
            relationships.append(["spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id])
        }
        var fileEntries: [[String: Any]] = []
        for (index, file) in files.enumerated() {
            let id = "SPDXRef-File-\(index + 1)"
            fileEntries.append([
                "SPDXID": id,
                "fileName": "./" + file.path,
                "checksums": [["algorithm": "SHA1", "checksumValue": file.sha1], ["algorithm": "SHA256", "checksumValue": file.sha256]],
                "comment": "layer \(file.layer), \(file.size) bytes",
            ])
            relationships.append(["spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id])
        }
        let document: [String: Any] = [
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "\(repository)@\(image.digest)",
            "documentNamespace": "https://imgbuild.invalid/spdx/\(repository)/sha256-\(image.digest.hex)",
            "creationInfo": ["created": config.created ?? "1970-01-01T00:00:00Z", "creators": ["Tool: imgbuild-0.1.0"]],
            "packages": packages,
            "files": fileEntries,
            "relationships": relationships,
        ]
        return try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Generates the SBOM of `image` and keeps it as a referrer; returns the artifact's descriptor and the document.
    public static func attach(_ image: Descriptor, repository: RepositoryName, in store: Store) throws -> (artifact: Descriptor, document: Data) {
        let document = try document(image, repository: repository, in: store)
        let artifact = try ReferrerArtifact.store(document, mediaType: artifactType, artifactType: artifactType, subject: image,
                                                  repository: repository, in: store, tag: ReferrerTag.tag(subject: image.digest, suffix: ReferrerTag.sbom))
        return (artifact, document)
    }

    /// Checks that an SBOM refers to `image` and describes exactly that digest; throws why not.
    /// Returns the digest of the SBOM found.
    @discardableResult
    public static func check(_ image: Digest, repository: RepositoryName, in store: Store) throws(SBOMError) -> Digest {
        let candidates = ReferrerArtifact.referring(to: image, artifactType: artifactType, repository: repository, in: store)
        guard !candidates.isEmpty else { throw .missing("\(repository)@\(image)") }
        var reasons: [String] = []
        for (digest, loaded) in candidates {
            let artifact: ReferrerArtifact.Loaded
            switch loaded {
            case .success(let value): artifact = value
            case .failure(let problem): reasons.append("\(digest): \(problem.reason)"); continue
            }
            guard let document = (try? JSONSerialization.jsonObject(with: artifact.payload)) as? [String: Any],
                  document["spdxVersion"] as? String == "SPDX-2.3" else {
                reasons.append("\(digest): not an SPDX 2.3 JSON document")
                continue
            }
            let described = (document["packages"] as? [[String: Any]])?.first { $0["SPDXID"] as? String == "SPDXRef-Image" }
            let checksum = (described?["checksums"] as? [[String: Any]])?.first { $0["algorithm"] as? String == "SHA256" }?["checksumValue"] as? String
            guard checksum == image.hex else {
                reasons.append("\(digest): it describes another image (sha256:\(checksum ?? "none"))")
                continue
            }
            return digest
        }
        throw .rejected("\(repository)@\(image)", reasons)
    }

    static func spdxID(_ text: String) -> String {
        String(text.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "-" })
    }
}

/// Why an image has no usable SBOM.
public enum SBOMError: Error, Equatable, CustomStringConvertible {
    case notAnImage(String)
    case missing(String)
    case rejected(String, [String])

    public var description: String {
        switch self {
        case .notAnImage(let image): return "\(image) is not an image manifest"
        case .missing(let image): return "\(image) has no SBOM: make one with `imgbuild sbom \(image)`, or pull the image with its referrers"
        case let .rejected(image, reasons): return "no SBOM of \(image) is usable: " + reasons.joined(separator: "; ")
        }
    }
}

/// The license a Debian copyright file names: DEP-5 `License:` fields, else the common-licenses file it points at.
enum DebianLicense {
    static let commonLicenses = ["GPL-2": "GPL-2.0-only", "GPL-3": "GPL-3.0-only", "LGPL-2": "LGPL-2.0-only", "LGPL-2.1": "LGPL-2.1-only",
                                 "LGPL-3": "LGPL-3.0-only", "Apache-2.0": "Apache-2.0", "MPL-2.0": "MPL-2.0", "Artistic": "Artistic-1.0-Perl",
                                 "BSD": "BSD-3-Clause", "GFDL-1.3": "GFDL-1.3-only", "CC0-1.0": "CC0-1.0"]

    static func expression(_ copyright: String) -> String? {
        var declared: [String] = []
        for line in copyright.split(separator: "\n") where line.hasPrefix("License:") {
            let value = line.dropFirst("License:".count).trimmingCharacters(in: .whitespaces)
            if let id = value.split(separator: " ").first.map(String.init), !id.isEmpty, !declared.contains(id) { declared.append(id) }
        }
        if !declared.isEmpty {
            let mapped = declared.map { commonLicenses[$0] ?? "LicenseRef-\(SBOMArtifact.spdxID($0))" }
            return mapped.count == 1 ? mapped[0] : "(" + mapped.joined(separator: " AND ") + ")"
        }
        for (name, id) in commonLicenses.sorted(by: { $0.key.count > $1.key.count }) where copyright.contains("/usr/share/common-licenses/\(name)") {
            return id
        }
        return nil
    }
}
