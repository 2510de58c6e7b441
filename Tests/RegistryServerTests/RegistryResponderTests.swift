import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OCI
@testable import RegistryServer
import Store
import Testing
import TestScheduling

/// The registry's routes answered in process, through HummingbirdTesting's live framework (a server on
/// a free loopback port, and its client), so each rule of the distribution spec is checked alone (hostile clients on real sockets are
/// `imgbuildTests.HostileRegistryTests`).
@Suite("The registry's responder, in process", .mayBlock)
struct RegistryResponderTests {
    func withRegistry(readOnly: Bool = false, _ body: @escaping @Sendable (any TestClientProtocol, Store) async throws -> Void) async throws {
        let root = NSTemporaryDirectory() + "responder-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try Store.open(at: root, create: true)
        let responder = RegistryResponder(store: store, passwords: nil, readOnly: readOnly, log: RequestLog(enabled: false),
                                          inFlight: InFlight(), uploads: UploadSessions(store: store))
        // A live server on a free loopback port: the router framework's testing channels are never
        // finished, which LeakSanitizer reports.
        let app = Application(responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await body(client, store) }
    }

    func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// Uploads `data` in one request; returns the status.
    func upload(_ client: any TestClientProtocol, _ data: Data, as digest: Digest? = nil, repository: String = "app") async throws -> HTTPResponse.Status {
        try await client.execute(uri: "/v2/\(repository)/blobs/uploads/?digest=\((digest ?? Digest.of(data)).description)", method: .post,
                                 headers: [.contentType: "application/octet-stream"], body: ByteBuffer(bytes: data)) { $0.status }
    }

    @Test("GET /v2/ answers 200 and says it speaks registry/2.0")
    func base() async throws {
        try await withRegistry { client, _ in
            try await client.execute(uri: "/v2/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[HTTPField.Name("Docker-Distribution-API-Version")!] == "registry/2.0")
            }
        }
    }

    @Test("a blob uploaded in one request is served whole and by range; a range outside it is 416 with the size")
    func blobRanges() async throws {
        try await withRegistry { client, _ in
            let data = Data("0123456789".utf8)
            let digest = Digest.of(data)
            #expect(try await upload(client, data) == .created)
            try await client.execute(uri: "/v2/app/blobs/\(digest)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(Data(buffer: response.body) == data)
                #expect(response.headers[.init("Docker-Content-Digest")!] == digest.description)
            }
            try await client.execute(uri: "/v2/app/blobs/\(digest)", method: .get, headers: [.range: "bytes=2-5"]) { response in
                #expect(response.status == .partialContent)
                #expect(response.headers[.contentRange] == "bytes 2-5/10")
                #expect(String(buffer: response.body) == "2345")
            }
            try await client.execute(uri: "/v2/app/blobs/\(digest)", method: .get, headers: [.range: "bytes=20-30"]) { response in
                #expect(response.status == .rangeNotSatisfiable)
                #expect(response.headers[.contentRange] == "bytes */10")
            }
        }
    }

    @Test("bytes that do not hash to the digest they are sent as are refused, and the blob stays unknown")
    func wrongDigest() async throws {
        try await withRegistry { client, store in
            let claimed = Digest.of(Data("what was promised".utf8))
            #expect(try await upload(client, Data("something else".utf8), as: claimed) == .badRequest)
            try await client.execute(uri: "/v2/app/blobs/\(claimed)", method: .head) { #expect($0.status == .notFound) }
            #expect(!store.hasBlob(claimed))
        }
    }

    @Test("a version never moves: another manifest under it is 409; a tag that is not a version is 400")
    func immutableVersions() async throws {
        try await withRegistry { client, _ in
            func manifest(_ seed: String) async throws -> Data {
                let config = Data(#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"seed":"\#(seed)"}"#.utf8)
                #expect(try await upload(client, config) == .created)
                let descriptor = Descriptor(mediaType: MediaType.imageConfig, digest: Digest.of(config), size: Int64(config.count))
                return try CanonicalJSON.encode(ImageManifest(config: descriptor, layers: []))
            }
            func put(_ data: Data, as reference: String) async throws -> HTTPResponse.Status {
                try await client.execute(uri: "/v2/app/manifests/\(reference)", method: .put,
                                         headers: [.contentType: MediaType.imageManifest], body: ByteBuffer(bytes: data)) { $0.status }
            }
            let first = try await manifest("first"), second = try await manifest("second")
            #expect(try await put(first, as: "1.0.0") == .created)
            #expect(try await put(first, as: "1.0.0") == .created, "the same manifest again is no move")
            #expect(try await put(second, as: "1.0.0") == .conflict)
            #expect(try await put(second, as: "latest") == .badRequest)
            try await client.execute(uri: "/v2/app/manifests/1.0.0", method: .get, headers: [.accept: MediaType.imageManifest]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.init("Docker-Content-Digest")!] == Digest.of(first).description)
            }
        }
    }

    @Test("a read-only registry refuses every write with 405 and says what it allows")
    func readOnly() async throws {
        try await withRegistry(readOnly: true) { client, _ in
            #expect(try await upload(client, Data("x".utf8)) == .methodNotAllowed)
            try await client.execute(uri: "/v2/app/manifests/1.0.0", method: .put, body: bytes("{}")) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow]?.contains("GET") == true)
            }
        }
    }

    @Test("paths outside the API are 404; a repository name the spec does not allow is 400 NAME_INVALID")
    func routes() async throws {
        try await withRegistry { client, _ in
            try await client.execute(uri: "/v3/", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v2/App/tags/list", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("NAME_INVALID"))
            }
        }
    }
}
