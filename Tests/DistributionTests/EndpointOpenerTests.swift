@testable import Distribution
import Foundation
import OCI
import Store
import Testing
import TestScheduling

@Suite("Endpoints are opened in one place and closed by whoever opened them", .mayBlock)
struct EndpointOpenerTests {
    struct Deliberate: Error {}

    func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "endpoint-opener-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Whether this process could take the store's gc lock exclusively now (a write lease holds it shared).
    func gcCouldRun(_ storePath: String) -> Bool {
        let fd = open(storePath + "/gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return false }
        flock(fd, LOCK_UN)
        return true
    }

    @Test("a store destination holds the write lease while open and lets it go when closed, also after a failure")
    func storeLease() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let storePath = root + "/store"
        let opener = EndpointOpener(storePath: storePath, options: RegistryOptions())
        let name = try RepositoryName("app")
        await #expect(throws: Deliberate.self) {
            try await opener.withDestination(.store(name, nil)) { _ in
                #expect(!gcCouldRun(storePath), "gc must wait while a destination is open")
                throw Deliberate()
            }
        }
        #expect(gcCouldRun(storePath))
    }

    @Test("a layout destination removes its scratch folder when closed, also after a failure")
    func layoutScratch() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = root + "/layout"
        let opener = EndpointOpener(storePath: root + "/unused", options: RegistryOptions())
        let blob = Data("{}".utf8)
        await #expect(throws: Deliberate.self) {
            try await opener.withDestination(.layout(directory: layout, nil)) { destination in
                _ = try await destination.putBlob(Descriptor(mediaType: MediaType.emptyJSON, digest: Digest.of(blob), size: 2)) { _ in
                    BlobStream { continuation in
                        continuation.yield(.init(bytes: blob))
                        continuation.finish()
                    }
                }
                #expect(FileManager.default.fileExists(atPath: layout + "/.imgbuild-tmp"))
                throw Deliberate()
            }
        }
        #expect(FileManager.default.fileExists(atPath: layout + "/blobs/sha256/" + Digest.of(blob).hex))
        #expect(!FileManager.default.fileExists(atPath: layout + "/.imgbuild-tmp"))
    }

    @Test("a store source needs the store to exist, and the error names it")
    func missingStore() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let opener = EndpointOpener(storePath: root + "/absent", options: RegistryOptions())
        let error = await #expect(throws: (any Error).self) {
            try await opener.withSource(.store(try RepositoryName("app"), .tag("1.0.0"))) { _ in }
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains(root + "/absent"))
        #expect(!FileManager.default.fileExists(atPath: root + "/absent"), "reading never creates a store")
    }

    @Test("closing one endpoint of a layout leaves what another is still writing there")
    func sharedLayout() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = root + "/layout"
        let writer = LayoutEndpoint(directory: layout)
        try writer.prepare()
        #expect(FileManager.default.fileExists(atPath: writer.temporaryDirectory))
        // A reader of the same layout, and another writer (another copy, another process), are done first.
        await LayoutEndpoint(directory: layout).close()
        let other = LayoutEndpoint(directory: layout)
        try other.prepare()
        await other.close()
        #expect(FileManager.default.fileExists(atPath: writer.temporaryDirectory), "the writer's scratch folder is its own")
        await writer.close()
        #expect(!FileManager.default.fileExists(atPath: layout + "/.imgbuild-tmp"))
    }

    @Test("a blob file that cannot be read (a folder in its place) fails the stream with the reason, not the process")
    func unreadableBlob() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let stream = try FileStreams.stream(path: root)
        let error = await #expect(throws: DistributionError.self) {
            for try await _ in stream {}
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("directory"))
    }

    @Test("writers tagging one layout at once keep every tag (index.json is rewritten under the layout's lock)")
    func concurrentTags() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = root + "/layout"
        let manifest = try CanonicalJSON.encode(ImageManifest(config: Descriptor(mediaType: MediaType.emptyJSON, digest: Digest.of(Data("{}".utf8)), size: 2), layers: []))
        let descriptor = Descriptor(mediaType: MediaType.imageManifest, digest: Digest.of(manifest), size: Int64(manifest.count))
        let tags = (0..<24).map { "1.0.\($0)" }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for tag in tags {
                group.addTask {
                    let endpoint = LayoutEndpoint(directory: layout)
                    try await endpoint.tag(tag, descriptor: descriptor, data: manifest)
                    await endpoint.close()
                }
            }
            try await group.waitForAll()
        }
        let index = try JSONDecoder().decode(ImageIndex.self, from: Data(contentsOf: URL(fileURLWithPath: layout + "/index.json")))
        #expect(Set(index.manifests.compactMap { $0.annotations?[AnnotationKey.refName] }) == Set(tags))
        #expect(!FileManager.default.fileExists(atPath: layout + "/.imgbuild-tmp"))
    }

    @Test("the scratch folder of a writer that died is removed by the next writer; one a live writer holds is kept")
    func deadWritersScratch() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = root + "/layout"
        let dead = layout + "/.imgbuild-tmp/4242-left-by-a-killed-copy"
        let alive = layout + "/.imgbuild-tmp/1-held-by-a-writer-in-another-pid-namespace"
        for folder in [dead, alive] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data("partial".utf8).write(to: URL(fileURLWithPath: folder + "/blob-partial"))
        }
        // A live writer holds its folder locked (whatever its process id looks like from here).
        let held = open(alive, O_RDONLY | O_DIRECTORY)
        #expect(flock(held, LOCK_EX) == 0)
        defer { close(held) }
        let writer = LayoutEndpoint(directory: layout)
        try writer.prepare()
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: alive + "/blob-partial"))
        #expect(FileManager.default.fileExists(atPath: layout + "/oci-layout"), "a folder holding only scratch is still a new layout")
        await writer.close()
    }

    @Test("a folder that holds only writers' scratch reads as an empty layout, not as something else")
    func scratchOnlyFolder() async throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let layout = root + "/layout"
        try FileManager.default.createDirectory(atPath: layout + "/.imgbuild-tmp/1-another-writer", withIntermediateDirectories: true)
        #expect(try LayoutEndpoint(directory: layout).readIndex().manifests.isEmpty)
    }
}
