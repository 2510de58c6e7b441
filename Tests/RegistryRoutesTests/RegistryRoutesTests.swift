import OCI
import Testing
@testable import RegistryRoutes
import TestScheduling

@Suite("Range and Content-Range", .mayBlock)
struct RangeTests {
    @Test("Range: RFC 9110 single ranges, clamped ends, suffixes, and what cannot be satisfied")
    func ranges() {
        #expect(ByteRange.parse("bytes=0-9", size: 100) == .satisfiable(0...9))
        #expect(ByteRange.parse("bytes=90-", size: 100) == .satisfiable(90...99))
        #expect(ByteRange.parse("bytes=-10", size: 100) == .satisfiable(90...99))
        #expect(ByteRange.parse("bytes=-1000", size: 100) == .satisfiable(0...99))
        // A last position past the end means "to the end" (RFC 9110 §14.1.2), as curl's resumes rely on.
        #expect(ByteRange.parse("bytes=50-1000", size: 100) == .satisfiable(50...99))
        #expect(ByteRange.parse("bytes=100-", size: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=100-200", size: 100) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-0", size: 100) == .unsatisfiable)
        // An empty blob has no byte to give.
        #expect(ByteRange.parse("bytes=0-", size: 0) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-5", size: 0) == .unsatisfiable)
        // What is not one plain bytes range is ignored: the whole blob is served.
        for header in ["bytes=0-1,5-6", "items=0-1", "bytes=", "bytes=-", "bytes=5-2", "bytes=+1-2", "bytes= 1-2",
                       "bytes=99999999999999999999-", "bytes=1-99999999999999999999", "bytes=a-b", "bytes=0x1-2"] {
            #expect(ByteRange.parse(header, size: 100) == .ignored, "\(header)")
        }
    }

    @Test("Content-Range of a chunk: both spellings; malformed ones are nil, never a trap")
    func contentRanges() {
        #expect(ContentRange.parse("0-9") == ContentRange(start: 0, end: 9))
        #expect(ContentRange.parse("bytes 10-19/20") == ContentRange(start: 10, end: 19))
        #expect(ContentRange.parse("bytes 10-19/*") == ContentRange(start: 10, end: 19))
        #expect(ContentRange.parse("5-5")?.length == 1)
        for header in ["0-/", "0-", "-", "", "/", "-/", "5-4", "a-b", "1-2/x", "1-2/", "bytes 1-2-3", "-1-2",
                       "99999999999999999999-1", "0-99999999999999999999", "+1-2", " 1-2",
                       // Its length (end - start + 1) would overflow: this crashed the registry (found by FuzzRegistryRoutes).
                       "bytes 0-9223372036854775807/*", "0-9223372036854775807"] {
            #expect(ContentRange.parse(header) == nil, "\(header)")
        }
    }
}

@Suite("Routes", .mayBlock)
struct RouteTests {
    @Test("every endpoint, names with slashes, and what is not an endpoint")
    func routes() throws {
        let name = try RepositoryName("team/app")
        #expect(try Route.parse("/v2/") == .base)
        #expect(try Route.parse("/v2") == .base)
        #expect(try Route.parse("/v2/_catalog") == .catalog)
        #expect(try Route.parse("/v2/team/app/tags/list") == .tags(name))
        #expect(try Route.parse("/v2/team/app/manifests/1.0.0") == .manifest(name, reference: "1.0.0"))
        #expect(try Route.parse("/v2/team/app/blobs/sha256:ab") == .blob(name, digest: "sha256:ab"))
        #expect(try Route.parse("/v2/team/app/blobs/uploads/") == .uploads(name))
        #expect(try Route.parse("/v2/team/app/blobs/uploads/x") == .upload(name, id: "x"))
        #expect(try Route.parse("/v2/team/app/referrers/sha256:ab") == .referrers(name, digest: "sha256:ab"))
        #expect(try Route.parse("/v3/") == nil)
        #expect(try Route.parse("/v2/team/app/manifests/") == nil)
        #expect(try Route.parse("/v2x") == nil)
        #expect(try Route.parse("/v2/" + String(repeating: "a/", count: 600) + "manifests/1.0.0") == nil)
        #expect(throws: Route.Failure.percentEncoded) { try Route.parse("/v2/a%2f..%2fb/manifests/1") }
        #expect(throws: Route.Failure.self) { try Route.parse("/v2/../etc/manifests/1") }
        #expect(throws: Route.Failure.self) { try Route.parse("/v2/Team/manifests/1") }
    }

    @Test("405 answers name the methods an endpoint has")
    func allowed() throws {
        #expect(try Route.parse("/v2/a/blobs/sha256:ab")?.allowedMethods == ["GET", "HEAD"])
        #expect(try Route.parse("/v2/a/blobs/uploads/x")?.allowedMethods == ["GET", "PATCH", "PUT", "DELETE"])
    }
}
