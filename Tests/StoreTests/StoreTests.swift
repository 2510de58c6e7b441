import Foundation
import OCI
import SemVer
import Store
import Testing
import TestScheduling

@Suite("The local store", .mayBlock)
struct StoreTests {
    func newStore() throws -> Store {
        try Store.open(at: NSTemporaryDirectory() + "store-\(UUID())/s")
    }

    func manifest(in store: Store, _ seed: String) throws -> Descriptor {
        let config = try store.writeBlob(Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"\#(seed)"}"#.utf8))
        let data = try CanonicalJSON.encode(ImageManifest(config: Descriptor(mediaType: MediaType.imageConfig, digest: config, size: 1), layers: []))
        return Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(data), size: Int64(data.count))
    }

    @Test("a version points at one digest for ever; the same digest again is a no-op")
    func immutableTags() throws {
        let store = try newStore()
        let name = try RepositoryName("team/app")
        let version = try Version(parsing: "1.4.0")
        let first = try manifest(in: store, "a"), second = try manifest(in: store, "b")
        #expect(try store.tag(name, version, first) == .created)
        #expect(try store.tag(name, version, first) == .unchanged)
        #expect(throws: StoreError.tagImmutable(repository: "team/app", version: "1.4.0", existing: first.digest, requested: second.digest)) {
            try store.tag(name, version, second)
        }
        #expect(try store.readTag(name, version).digest == first.digest)
        #expect(try store.tags(name).map(\.version.description) == ["1.4.0"])
        #expect(store.repositories().map(\.value) == ["team/app"])
        // The repository folder is an OCI layout whose index lists the version.
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(contentsOf: URL(fileURLWithPath: store.root + "/repositories/team/app/index.json")))
        #expect(index.manifests.map(\.digest) == [first.digest])
        #expect(index.manifests.first?.annotations?[AnnotationKey.refName] == "1.4.0")
    }

    @Test("a blob cut short is written whole again, by bytes or through an upload, not kept because its name exists")
    func blobCutShortIsRewritten() throws {
        let store = try newStore()
        let bytes = Data("a blob of some length\n".utf8)
        let digest = try store.writeBlob(bytes)
        #expect(truncate(store.blobPath(digest), 3) == 0)
        try store.writeBlob(bytes)
        #expect(try store.readBlob(digest) == bytes)

        #expect(truncate(store.blobPath(digest), 0) == 0)
        let upload = try store.beginBlob()
        bytes.withUnsafeBytes { #expect(write(upload.fd, $0.baseAddress, $0.count) == $0.count) }
        try upload.commit(as: digest)
        #expect(try store.readBlob(digest) == bytes)
    }

    @Test("the same tag again repairs a layout index that a process which died after tagging left behind")
    func repairsIndex() throws {
        let store = try newStore()
        let name = try RepositoryName("team/app")
        let first = try manifest(in: store, "a"), second = try manifest(in: store, "b")
        try store.tag(name, try Version(parsing: "1.0.0"), first)
        let folder = store.root + "/repositories/team/app"
        let staleIndex = try Data(contentsOf: URL(fileURLWithPath: folder + "/index.json"))
        try store.tag(name, try Version(parsing: "1.1.0"), second)
        // As if the process died between the tag's link and the index: the old index, older than the tags.
        try FileManager.default.removeItem(atPath: folder + "/index.json")
        try staleIndex.write(to: URL(fileURLWithPath: folder + "/index.json"))
        var info = stat()
        #expect(stat(folder + "/tags", &info) == 0)
        var times = [info.st_mtim, info.st_mtim]
        times[1].tv_sec -= 1
        #expect(utimensat(AT_FDCWD, folder + "/index.json", &times, 0) == 0)
        func listed() throws -> [String] {
            try JSONDecoder().decode(ImageIndex.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/index.json")))
                .manifests.compactMap { $0.annotations?[AnnotationKey.refName] }
        }
        #expect(try listed() == ["1.0.0"])
        #expect(try store.tag(name, try Version(parsing: "1.0.0"), first) == .unchanged)
        #expect(try listed() == ["1.0.0", "1.1.0"])
        // Current now: the same tag again leaves it as it is.
        var before = stat()
        stat(folder + "/index.json", &before)
        #expect(try store.tag(name, try Version(parsing: "1.1.0"), second) == .unchanged)
        var after = stat()
        stat(folder + "/index.json", &after)
        #expect(after.st_ino == before.st_ino && after.st_mtim.tv_nsec == before.st_mtim.tv_nsec)
    }

    @Test("tagging a manifest that is not in the store is refused")
    func missingBlob() throws {
        let store = try newStore()
        let ghost = Descriptor(mediaType: MediaType.imageManifest, digest: Digest.of(Data("ghost".utf8)), size: 5)
        #expect(throws: StoreError.blobMissing(ghost.digest)) { try store.tag(try RepositoryName("a"), try Version(parsing: "1.0.0"), ghost) }
    }

    @Test("blobs are content-addressed, read back verified, and no temporary file is left")
    func blobs() throws {
        let store = try newStore()
        let digest = try store.writeBlob(Data("hello".utf8))
        #expect(digest == Digest.of(Data("hello".utf8)))
        #expect(try store.readBlob(digest) == Data("hello".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.temporaryDirectory).isEmpty)
        // A flipped byte is caught on read.
        let path = store.blobPath(digest)
        chmod(path, 0o644)
        try Data("hellO".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: StoreError.blobCorrupt(expected: digest, actual: Digest.of(Data("hellO".utf8)))) { try store.readBlob(digest) }
    }

    @Test("folders of another kind or format are refused")
    func formats() throws {
        let folder = NSTemporaryDirectory() + "other-\(UUID())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: folder + "/file"))
        #expect(throws: StoreError.notAStore(path: folder)) { try Store.open(at: folder) }
        let store = try newStore()
        try Data(#"{"format":"imgbuild-store","version":99}"#.utf8).write(to: URL(fileURLWithPath: store.root + "/imgbuild-store.json"))
        #expect(throws: StoreError.unsupportedFormat(path: store.root, found: "version 99")) { try Store.open(at: store.root) }
    }

    @Test("a truncated tag file is reported, not trusted")
    func corruptTag() throws {
        let store = try newStore()
        let name = try RepositoryName("app"), version = try Version(parsing: "1.0.0")
        try store.tag(name, version, try manifest(in: store, "x"))
        let path = store.root + "/repositories/app/tags/1.0.0"
        chmod(path, 0o644)
        try Data(#"{"digest":"sha2"#.utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: StoreError.corruptTag(repository: "app", version: "1.0.0", path: path)) { try store.readTag(name, version) }
    }
    @Test("fsck and gc walk an index of indexes thousands deep, and a wide one, without recursion or repeats")
    func deepAndWideIndexes() throws {
        let store = try newStore()
        let name = try RepositoryName("deep/app")
        // 5000 indexes, each the only child of the next: recursion overflowed a cooperative thread's stack.
        func image(_ seed: String) throws -> Descriptor {
            let configData = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"\#(seed)"}"#.utf8)
            let config = Descriptor(mediaType: MediaType.imageConfig, digest: try store.writeBlob(configData), size: Int64(configData.count))
            let data = try CanonicalJSON.encode(ImageManifest(config: config, layers: []))
            return Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(data), size: Int64(data.count))
        }
        var top = try image("leaf")
        for _ in 0..<5000 {
            let data = try CanonicalJSON.encode(ImageIndex(manifests: [top]))
            top = Descriptor(mediaType: MediaType.imageIndex, digest: try store.writeBlob(data), size: Int64(data.count))
        }
        try store.tag(name, try Version(parsing: "1.0.0"), top)
        // Five levels, each listing the level below 30 times: 24 million paths, 6 distinct blobs.
        var wide = try image("wide leaf")
        for _ in 0..<5 {
            let data = try CanonicalJSON.encode(ImageIndex(manifests: Array(repeating: wide, count: 30)))
            wide = Descriptor(mediaType: MediaType.imageIndex, digest: try store.writeBlob(data), size: Int64(data.count))
        }
        try store.tag(name, try Version(parsing: "2.0.0"), wide)
        let report = store.fsck()
        #expect(report.isClean, "\(report.problems.prefix(3))")
        let collected = try store.collectGarbage()
        #expect(collected.removedBlobs == 0 && collected.keptBlobs >= 5000 + 6)
    }
    @Test("gc keeps a blob mistyped as a manifest, with a warning, instead of refusing to run")
    func mistypedManifestNode() throws {
        let store = try newStore()
        let junk = Data("this is not JSON".utf8)
        let junkDigest = try store.writeBlob(junk)
        let configData = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.utf8)
        let config = Descriptor(mediaType: MediaType.imageConfig, digest: try store.writeBlob(configData), size: Int64(configData.count))
        let mistyped = Descriptor(mediaType: MediaType.imageManifest, digest: junkDigest, size: Int64(junk.count))
        let data = try CanonicalJSON.encode(ImageManifest(config: config, layers: [mistyped]))
        let top = Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(data), size: Int64(data.count))
        try store.tag(try RepositoryName("odd/app"), try Version(parsing: "1.0.0"), top)
        let unreachable = try store.writeBlob(Data("nobody refers to me".utf8))
        let report = try store.collectGarbage()
        #expect(report.warnings.count == 1 && report.warnings.first?.contains(junkDigest.description) == true, "\(report.warnings)")
        #expect(store.hasBlob(junkDigest) && !store.hasBlob(unreachable) && report.removedBlobs == 1)
    }

    @Test("forgetting pinned images frees what only they reach, with their referrers and artifact tags; a dry run changes nothing")
    func forgetPinnedImages() throws {
        let store = try newStore()
        let name = try RepositoryName("deployer/hello")
        func blob(_ text: String) throws -> Descriptor {
            Descriptor(mediaType: MediaType.layerGzip, digest: try store.writeBlob(Data(text.utf8)), size: Int64(text.utf8.count))
        }
        let sharedLayer = try blob("a layer both images share"), ownLayer = try blob("a layer only the old image has")
        let shared = sharedLayer.digest, own = ownLayer.digest
        func image(_ seed: String, layers: [Descriptor]) throws -> Descriptor {
            let configData = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"\#(seed)"}"#.utf8)
            let config = Descriptor(mediaType: MediaType.imageConfig, digest: try store.writeBlob(configData), size: Int64(configData.count))
            let data = try CanonicalJSON.encode(ImageManifest(config: config, layers: layers))
            return Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(data), size: Int64(data.count))
        }
        let old = try image("old", layers: [sharedLayer, ownLayer]), new = try image("new", layers: [sharedLayer])
        try store.pin(name, old)
        try store.pin(name, new)
        // A signature-like artifact that refers to the old image, kept by its fallback tag.
        let signatureData = try CanonicalJSON.encode(ImageManifest(config: Descriptor(mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
                                                                                   digest: try store.writeBlob(Data("{}".utf8)), size: 2), layers: []))
        let signature = Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(signatureData), size: Int64(signatureData.count))
        try store.addReferrer(name, subject: old.digest, referrer: signature)
        try store.setArtifactTag(name, "sha256-\(old.digest.hex).sig", signature)
        // Two signatures of the kept image: the fallback tag names only the second; the first is listed as a
        // referrer alone, and must survive too.
        func signatureOf(_ subject: Descriptor, _ seed: String) throws -> Descriptor {
            let data = try CanonicalJSON.encode(ImageManifest(config: Descriptor(mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
                                                                          digest: try store.writeBlob(Data(seed.utf8)), size: Int64(seed.utf8.count)),
                                                        layers: [], subject: subject))
            let descriptor = Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(data), size: Int64(data.count))
            try store.addReferrer(name, subject: subject.digest, referrer: descriptor)
            return descriptor
        }
        let firstOfNew = try signatureOf(new, "alice"), secondOfNew = try signatureOf(new, "bob")
        try store.setArtifactTag(name, "sha256-\(new.digest.hex).sig", secondOfNew)
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs"))

        let dry = try store.collectGarbage(forgetting: [old.digest], dryRun: true)
        #expect(dry.forgottenImages == 1 && dry.removedBlobs == 5, "\(dry)")  // manifest, config, own layer, signature, its config
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs")) == before)
        #expect(try store.pins(name).count == 2 && store.referrers(name, subject: old.digest).count == 1)

        let report = try store.collectGarbage(forgetting: [old.digest])
        #expect(report.forgottenImages == 1 && report.removedBlobs == 5 && report.freedBytes == dry.freedBytes, "\(report)")
        #expect(try store.pins(name).map(\.digest) == [new.digest])
        #expect(try store.referrers(name, subject: old.digest).isEmpty && store.artifactTags(name).map(\.tag) == ["sha256-\(new.digest.hex).sig"])
        #expect(store.hasBlob(shared) && !store.hasBlob(own) && !store.hasBlob(old.digest) && store.hasBlob(new.digest))
        #expect(store.hasBlob(firstOfNew.digest) && store.hasBlob(secondOfNew.digest), "every signature of a kept image stays")
        let fsck = store.fsck()
        #expect(fsck.isClean, "\(fsck.problems)")
        // A version tag keeps an image that is also pinned: forgetting it frees only its signatures
        // (two manifests and their configs), nothing the image reaches.
        try store.tag(name, try Version(parsing: "1.0.0"), new)
        let tagged = try store.collectGarbage(forgetting: [new.digest])
        #expect(tagged.removedBlobs == 4 && store.hasBlob(new.digest) && store.hasBlob(shared), "\(tagged)")
    }

    @Test("forgetting a pinned index forgets what refers to its platforms' images too (their SBOMs), and frees everything only it reaches")
    func forgetPinnedIndex() throws {
        let store = try newStore()
        let name = try RepositoryName("deployer/multi")
        func image(_ architecture: String) throws -> Descriptor {
            let layerData = Data("the \(architecture) layer".utf8)
            let layer = Descriptor(mediaType: MediaType.layerGzip, digest: try store.writeBlob(layerData), size: Int64(layerData.count))
            let configData = Data(#"{"architecture":"\#(architecture)","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.utf8)
            let config = Descriptor(mediaType: MediaType.imageConfig, digest: try store.writeBlob(configData), size: Int64(configData.count))
            let data = try CanonicalJSON.encode(ImageManifest(config: config, layers: [layer]))
            return Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(data), size: Int64(data.count),
                              platform: Platform(os: "linux", architecture: architecture))
        }
        let amd64 = try image("amd64"), arm64 = try image("arm64"), s390x = try image("s390x")
        let indexData = try CanonicalJSON.encode(ImageIndex(manifests: [amd64, arm64]))
        let index = Descriptor(mediaType: MediaType.imageIndex, digest: try store.writeBlob(indexData), size: Int64(indexData.count))
        try store.pin(name, index)
        // Another index, kept, shares the s390x image with a third one that is forgotten: that image's SBOM stays.
        let keptData = try CanonicalJSON.encode(ImageIndex(manifests: [s390x]))
        let kept = Descriptor(mediaType: MediaType.imageIndex, digest: try store.writeBlob(keptData), size: Int64(keptData.count))
        try store.pin(name, kept)
        let sharingData = try CanonicalJSON.encode(ImageIndex(manifests: [s390x], annotations: ["another": "index"]))
        let sharing = Descriptor(mediaType: MediaType.imageIndex, digest: try store.writeBlob(sharingData), size: Int64(sharingData.count))
        try store.pin(name, sharing)
        let keptSBOMData = try CanonicalJSON.encode(ImageManifest(config: Descriptor(mediaType: "application/spdx+json", digest: try store.writeBlob(Data("{}".utf8)), size: 2),
                                                                  layers: [], subject: s390x))
        let keptSBOM = Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(keptSBOMData), size: Int64(keptSBOMData.count))
        try store.addReferrer(name, subject: s390x.digest, referrer: keptSBOM)
        try store.setArtifactTag(name, "sha256-\(s390x.digest.hex).sbom", keptSBOM)
        // An SBOM of the arm64 image, kept by its fallback tag, as `imgbuild sbom` keeps one per platform.
        let sbomData = try CanonicalJSON.encode(ImageManifest(config: Descriptor(mediaType: "application/spdx+json", digest: try store.writeBlob(Data("{}".utf8)), size: 2),
                                                              layers: [], subject: arm64))
        let sbom = Descriptor(mediaType: MediaType.imageManifest, digest: try store.writeBlob(sbomData), size: Int64(sbomData.count))
        try store.addReferrer(name, subject: arm64.digest, referrer: sbom)
        try store.setArtifactTag(name, "sha256-\(arm64.digest.hex).sbom", sbom)

        let report = try store.collectGarbage(forgetting: [index.digest, sharing.digest])
        // The two indexes, two manifests, two configs, two layers and the SBOM (its config, "{}", is the kept SBOM's too).
        #expect(report.removedBlobs == 9, "\(report)")
        #expect(try store.pins(name).map(\.digest) == [kept.digest] && store.referrers(name, subject: arm64.digest).isEmpty)
        #expect(try store.artifactTags(name).map(\.tag) == ["sha256-\(s390x.digest.hex).sbom"] && store.referrers(name, subject: s390x.digest).count == 1)
        #expect(!store.hasBlob(arm64.digest) && !store.hasBlob(sbom.digest) && store.hasBlob(s390x.digest) && store.hasBlob(keptSBOM.digest))
        let fsck = store.fsck()
        #expect(fsck.isClean, "\(fsck.problems)")
    }
}
