import Foundation
import HTTPTypes
import Hummingbird
import OCI
import SemVer
import Store

extension RegistryResponder {
    /// A reference's manifest descriptor — a SemVer tag (with `_` for `+`), an artifact tag, or a digest —
    /// and, when finding it meant reading the manifest already, its verified bytes.
    func resolve(_ name: RepositoryName, _ reference: String) throws -> (descriptor: Descriptor, data: Data?) {
        try requireRepository(name)
        if reference.hasPrefix("sha256:") || reference.contains(":") {
            let unknown = RegistryError(.notFound, .manifestUnknown, "manifest \(reference) is not known")
            let digest = try digest(reference, missing: unknown)
            guard store.hasBlob(digest) else { throw unknown }
            let (manifest, data) = try store.manifest(digest)
            return (Descriptor(mediaType: manifest.mediaType, digest: digest, size: Int64(data.count)), data)
        }
        if let version = try? Version(parsing: reference.replacingOccurrences(of: "_", with: "+")) {
            do {
                return (try store.readTag(name, version), nil)
            } catch {
                guard case .unknownTag = error else { throw error }
            }
        } else if let artifact = try store.artifactTags(name).first(where: { $0.tag == reference }) {
            return (artifact.descriptor, nil)
        }
        throw RegistryError(.notFound, .manifestUnknown, "\(name):\(reference) is not known")
    }

    func getManifest(_ name: RepositoryName, _ reference: String, head: Bool) throws -> Response {
        let (descriptor, known) = try resolve(name, reference)
        var headers = HTTPFields()
        headers[.contentType] = descriptor.mediaType
        headers[.dockerContentDigest] = descriptor.digest.description
        headers[.contentLength] = String(descriptor.size)
        if head { return Response(status: .ok, headers: headers) }
        let data = try known ?? store.readBlob(descriptor.digest)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// PUT a manifest or index. Everything it references must be present; a SemVer tag is created once
    /// and never moves; any other tag is accepted only for an artifact that refers to a subject.
    func putManifest(_ name: RepositoryName, _ reference: String, _ request: Request) async throws -> Response {
        // Manifests are read whole, up to 4 MiB each: only so many at once, or a crowd of slow senders
        // would hold gigabytes.
        guard manifestBodies.enter() else {
            var headers = HTTPFields()
            headers[.retryAfter] = "1"
            throw RegistryError(.tooManyRequests, .tooManyRequests, "\(manifestBodies.limit) manifests are being received: try again shortly", headers: headers)
        }
        defer { manifestBodies.leave() }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: Self.manifestLimit) } catch {
            throw RegistryError(.contentTooLarge, .sizeInvalid, "a manifest may have at most 4 MiB")
        }
        let data = Data(buffer: body)
        let digest = Digest.of(data)
        let manifest: AnyManifest
        do { manifest = try AnyManifest(decoding: data) } catch {
            throw RegistryError(.badRequest, .manifestInvalid, error.description)
        }
        let mediaType = request.headers[.contentType]?.split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? manifest.mediaType
        guard mediaType == manifest.mediaType else {
            throw RegistryError(.badRequest, .manifestInvalid, "Content-Type '\(mediaType)' does not match the manifest's mediaType '\(manifest.mediaType)'")
        }
        // Each distinct blob is checked once, however often the manifest lists it (a 4 MiB index listing
        // one 4 MiB child 25,000 times would otherwise hash 100 GB). The subject need not be here yet.
        var checked = Set<Digest>()
        for referenced in manifest.contents where checked.insert(referenced.digest).inserted {
            try checkReference(referenced)
        }
        let descriptor = Descriptor(mediaType: mediaType, digest: digest, size: Int64(data.count))
        var extra = HTTPFields()
        if reference.hasPrefix("sha256:") || reference.contains(":") {
            guard try self.digest(reference) == digest else {
                throw RegistryError(.badRequest, .digestInvalid, "the manifest's bytes hash to \(digest), not \(reference)")
            }
            try store.writeBlob(data)
            try store.pin(name, descriptor)
        } else if let version = try? Version(parsing: reference.replacingOccurrences(of: "_", with: "+")) {
            try store.writeBlob(data)
            do {
                try store.tag(name, version, descriptor)
            } catch {
                guard case .tagImmutable(_, _, let existing, _) = error else { throw error }
                throw RegistryError(.conflict, .tagInvalid, "\(name):\(reference) already points at \(existing); versions are immutable, so it cannot point at \(digest): push a new version")
            }
        } else if let subject = subject(of: manifest), Store.isValidArtifactTag(reference),
                  reference.hasPrefix(ReferrerTag.prefix(subject: subject.digest)) {
            // A tag that moves is only the tag scheme of referrers (cosign's sha256-<subject hex>.sig):
            // it must name its subject, so no runnable image gets a moving tag such as 'latest'.
            try store.writeBlob(data)
            try store.setArtifactTag(name, reference, descriptor)
        } else {
            throw RegistryError(.badRequest, .tagInvalid, "'\(reference)' is not a version: tags are immutable SemVer versions (write '+' as '_'); other tags are accepted only for artifacts with a subject, named after it (sha256-<subject hex>.<kind>)")
        }
        if let subject = subject(of: manifest) {
            var referrer = descriptor
            referrer.artifactType = artifactType(of: manifest)
            referrer.annotations = annotations(of: manifest)
            try store.addReferrer(name, subject: subject.digest, referrer: referrer)
            if !reference.contains(":") { try store.pin(name, descriptor) }
            extra[.ociSubject] = subject.digest.description
        }
        extra[.location] = "/v2/\(name)/manifests/\(digest)"
        extra[.dockerContentDigest] = digest.description
        extra[.contentLength] = "0"
        return Response(status: .created, headers: extra)
    }

    /// A blob a pushed manifest references must be present, have the size its descriptor says, and be
    /// what its media type says when that is a manifest or an index: a manifest typed as one thing and
    /// pointing at another would mislead every reader after it (gc among them).
    private func checkReference(_ referenced: Descriptor) throws {
        guard store.hasBlob(referenced.digest) else {
            throw RegistryError(.badRequest, .manifestBlobUnknown, "the manifest references \(referenced.digest), which is not in the registry: push blobs before the manifest")
        }
        let size = try store.blobSize(referenced.digest)
        guard size == referenced.size else {
            throw RegistryError(.badRequest, .manifestInvalid, "the manifest says \(referenced.digest) has \(referenced.size) bytes, but it has \(size)")
        }
        if [MediaType.imageConfig, MediaType.dockerConfig].contains(referenced.mediaType) {
            do {
                guard size <= Self.manifestLimit else { throw RegistryError(.badRequest, .manifestInvalid, "it has more than 4 MiB") }
                _ = try store.imageConfig(referenced.digest)
            } catch {
                throw RegistryError(.badRequest, .manifestInvalid, "the manifest's config \(referenced.digest) is typed \(referenced.mediaType) but is not an image config: \(error)")
            }
            return
        }
        guard MediaType.isManifest(referenced.mediaType) else { return }
        let isIndex = { (type: String) in type == MediaType.imageIndex || type == MediaType.dockerManifestList }
        let child: AnyManifest
        do {
            guard size <= Self.manifestLimit else { throw RegistryError(.badRequest, .manifestInvalid, "it has more than 4 MiB") }
            child = try store.manifest(referenced.digest).manifest
        } catch {
            throw RegistryError(.badRequest, .manifestInvalid, "the manifest references \(referenced.digest) as \(referenced.mediaType), but that blob is not a manifest: \(error)")
        }
        guard isIndex(child.mediaType) == isIndex(referenced.mediaType) else {
            throw RegistryError(.badRequest, .manifestInvalid, "the manifest references \(referenced.digest) as \(referenced.mediaType), but that blob is a \(child.mediaType)")
        }
    }

    func subject(of manifest: AnyManifest) -> Descriptor? {
        switch manifest {
        case .image(let image): return image.subject
        case .index(let index): return index.subject
        }
    }

    func artifactType(of manifest: AnyManifest) -> String? {
        switch manifest {
        case .image(let image): return image.artifactType ?? image.config.mediaType
        case .index(let index): return index.artifactType
        }
    }

    func annotations(of manifest: AnyManifest) -> [String: String]? {
        switch manifest {
        case .image(let image): return image.annotations
        case .index(let index): return index.annotations
        }
    }
}
