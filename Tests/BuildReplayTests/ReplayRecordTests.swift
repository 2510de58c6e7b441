@testable import Builder
@testable import BuildReplay
import Foundation
import Layers
import OCI
import PackageLock
import Testing
import TestScheduling

@Suite("Replay records", .mayBlock)
struct ReplayRecordTests {
    static func sample() -> ReplayRecord {
        let stamp = FileStamp(device: 2049, inode: 77, mode: 0o100644, size: 120,
                              modified: timespec(tv_sec: 1_700_000_000, tv_nsec: 5), changed: timespec(tv_sec: 1_700_000_001, tv_nsec: 6))
        var record = ReplayRecord(command: .init(workingDirectory: "/work", arguments: ["build", "app", "--store", "/s", "-q"]),
                                  cacheDirectory: "/cache", reader: "0:0 groups [] CapEff:\t000001ffffffffff uids 0 0 4294967295",
                                  tagPath: "/s/repositories/app/tags/1.0.0", tag: Array(#"{"digest":"sha256:00"}"#.utf8))
        record.environment = [.init(name: "HOME", value: "/root"), .init(name: "SOURCE_DATE_EPOCH", value: nil), .init(name: "EMPTY", value: "")]
        record.files = [.init(path: "/work/app/Imagefile", stamp: stamp)]
        record.resolved = [.init(path: "app/Imagefile", target: "/work/app/Imagefile"), .init(path: "app", target: "/work/app")]
        record.leaseFile = "/s/gc.lock"
        record.snapshots = [ContextSnapshotUse(key: Digest.of(Data("k".utf8)), contents: Digest.of(Data("c".utf8)))]
        record.existing = ["/s/blobs/sha256/aa", "/s/blobs/sha256/bb"]
        record.standardOutput = Array("sha256:00\n".utf8)
        record.standardError = Array("building app:1.0.0 from app/Imagefile\n".utf8)
        return record
    }

    @Test("a record reads back as it was written, an unset variable apart from an empty one")
    func roundTrip() {
        let record = Self.sample()
        #expect(ReplayRecord(decoding: record.encoded()) == record)
    }

    @Test("every cut, every flipped byte and every appended byte is refused or read as some record, never a trap")
    func damagedRecords() {
        let bytes = Self.sample().encoded()
        for length in 0..<bytes.count {
            #expect(ReplayRecord(decoding: Array(bytes[..<length])) == nil, "a record cut to \(length) of \(bytes.count) bytes was accepted")
        }
        #expect(ReplayRecord(decoding: bytes + [0]) == nil, "a record with a byte after its end was accepted")
        for index in bytes.indices {
            for flip: UInt8 in [0x01, 0x80, 0xff] {
                var damaged = bytes
                damaged[index] ^= flip
                _ = ReplayRecord(decoding: damaged)
            }
        }
    }

    @Test("records are named by the command: arguments and working folder, with no two lists of arguments sharing a text")
    func recordNames() {
        func path(_ directory: String, _ arguments: [String]) -> String {
            BuildReplay.recordPath(.init(workingDirectory: directory, arguments: arguments), cacheDirectory: "/c")
        }
        #expect(path("/w", ["build", "a"]) == path("/w", ["build", "a"]))
        #expect(path("/w", ["build", "a"]) != path("/v", ["build", "a"]))
        #expect(path("/w", ["build", "a b"]) != path("/w", ["build", "a", "b"]))
        #expect(path("/w", ["build", "ab"]) != path("/w", ["build", "a", "b"]))
        #expect(path("/w", ["build"]).hasPrefix("/c/replays/") && path("/w", ["build"]).count == "/c/replays/".count + 16)
    }

    @Test("who reads is told as it always was (a new form would make every cached snapshot a miss), from /proc")
    func readerIdentity() throws {
        // The form the identity had before it was made without generic paths, built here the plain way.
        func text(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }
        let squeeze = { (map: String) in map.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        var groups = [gid_t](repeating: 0, count: Int(getgroups(0, nil)) + 1)
        let count = max(0, Int(getgroups(Int32(groups.count), &groups)))
        let capabilities = try #require(try text("/proc/self/status").split(separator: "\n").first { $0.hasPrefix("CapEff:") })
        let expected = "\(geteuid()):\(getegid()) groups \(groups[..<count].sorted()) \(capabilities) "
            + "uids \(squeeze(try text("/proc/self/uid_map"))) gids \(squeeze(try text("/proc/self/gid_map")))"
        #expect(Builder.readerIdentity == expected)
    }

    @Test("the cache folder a replay looks in: IMGBUILD_CACHE, else XDG_CACHE_HOME/imgbuild, else HOME/.cache/imgbuild; empty is unset")
    func cacheDirectoryLookup() {
        let cases: [([String: String], String)] = [
            (["IMGBUILD_CACHE": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"], "/c"),
            (["IMGBUILD_CACHE": "", "XDG_CACHE_HOME": "/x", "HOME": "/h"], "/x/imgbuild"),
            (["XDG_CACHE_HOME": "", "HOME": "/h"], "/h/.cache/imgbuild"),
            (["HOME": "/h"], "/h/.cache/imgbuild"),
            (["HOME": ""], NSHomeDirectory() + "/.cache/imgbuild"),
            ([:], NSHomeDirectory() + "/.cache/imgbuild"),
        ]
        for (environment, expected) in cases {
            #expect(BuildOptions.defaultCacheDirectory(variable: { environment[$0] }) == expected, "\(environment)")
            #expect(BuildOptions.defaultCacheDirectory(environment: environment) == expected, "\(environment)")
        }
    }

    @Test("an id map's columns, however padded and on however many lines, read as single spaces")
    func idMapsSqueezed() {
        #expect(LayerCache.squeezed("         0          0 4294967295\n") == "0 0 4294967295")
        #expect(LayerCache.squeezed("\t 0 1000 1\n      1 100000 65536\n") == "0 1000 1 1 100000 65536")
        #expect(LayerCache.squeezed("") == "")
        #expect(LayerCache.squeezed(" \n\t ") == "")
        #expect(LayerCache.squeezed("0\r\n1") == "0 1")
    }

    @Test("variables named in a repository address")
    func variableNames() {
        #expect(RepositoryAddress.variableNames(in: "${MIRROR}/debian/${SUITE}") == ["MIRROR", "SUITE"])
        #expect(RepositoryAddress.variableNames(in: "http://deb.debian.org/debian").isEmpty)
        #expect(RepositoryAddress.variableNames(in: "${UNCLOSED").isEmpty)
    }
}
