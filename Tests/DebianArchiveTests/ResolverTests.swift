import DebianArchive
import Foundation
import PackageLock
import Testing
import TestScheduling

/// A `Packages` paragraph for the resolver tests.
private func stanza(_ name: String, _ version: String, arch: String = "amd64", _ fields: [String] = []) -> String {
    (["Package: \(name)", "Version: \(version)", "Architecture: \(arch)"] + fields
        + ["Filename: pool/main/\(name)_\(version)_\(arch).deb", "Size: 10", "SHA256: " + String(repeating: "a", count: 64), "Description: x", " long text"])
        .joined(separator: "\n") + "\n\n"
}

private func resolver(_ stanzas: [String], architecture: String = "amd64") throws -> Resolver {
    let records = try PackageRecord.readIndex(Array(stanzas.joined().utf8))
    return Resolver(candidates: records.map { Resolver.Candidate(record: $0, repository: 0) }, architecture: architecture)
}

private func names(_ resolved: [Resolver.Resolved]) -> [String] {
    resolved.map { "\($0.candidate.record.name)=\($0.candidate.record.version)" }
}

private func request(_ text: String) throws -> Resolver.Request { .package(try Relation.parse(text)) }

@Suite("Debian relations, indexes and the resolver", .mayBlock)
struct ResolverTests {
    @Test("relation fields parse as Debian Policy writes them; malformed ones are refused")
    func relations() throws {
        let groups = try Relation.parseField("libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any, foo (<< 1:2~rc1) [amd64] <!nocheck>,")
        #expect(groups.count == 4)
        #expect(groups[1].map(\.name) == ["debconf", "debconf-2.0"])
        #expect(groups[2][0].architectureQualifier == "any")
        #expect(groups[3][0].constraint?.op == .earlier && groups[3][0].constraint?.version.epoch == 1)
        #expect(try Relation.parse("a (> 1)").constraint?.op == .laterOrEqual, "dpkg reads the obsolete '>' as '>='")
        for bad in ["(>= 1)", "a (>= 1", "a (~ 1)", "a (>= )", "a b", "a [amd64", "a:"] {
            #expect(throws: Relation.ParseError.self, "\(bad)") { try Relation.parse(bad) }
        }
    }

    @Test("a Packages index with a damaged paragraph is refused at its line, not skipped")
    func damagedIndex() throws {
        let good = stanza("a", "1.0")
        #expect(try PackageRecord.readIndex(Array(good.utf8)).count == 1)
        let noHash = good.replacingOccurrences(of: "SHA256: " + String(repeating: "a", count: 64), with: "MD5sum: 00")
        #expect(throws: PackageRecord.ParseError.self) { try PackageRecord.readIndex(Array((good + noHash).utf8)) }
        do {
            _ = try PackageRecord.readIndex(Array((good + stanza("b", "1.0", ["Depends: c (>= )"])).utf8))
            Issue.record("a broken Depends was accepted")
        } catch {
            #expect(error.line == 10 && error.reason.contains("Depends of b"))
        }
        // A file path that a lock could not keep (outside the archive, not a .deb, not safe in a URL) is refused here.
        for filename in ["../pool/a.deb", "/pool/a.deb", "pool/a.udeb", "pool/a b.deb", "pool/a#1.deb", "pool/a%2e.deb", "pool//a.deb"] {
            let bad = good.replacingOccurrences(of: "pool/main/a_1.0_amd64.deb", with: filename)
            #expect(throws: PackageRecord.ParseError.self, "\(filename)") { try PackageRecord.readIndex(Array(bad.utf8)) }
        }
        #expect(throws: PackageRecord.ParseError.self) { try PackageRecord.readIndex(Array(good.replacingOccurrences(of: "Package: a", with: "Package: A").utf8)) }
    }

    @Test("a Release file gives each index's size and SHA-256; paths outside the suite are refused")
    func releaseFile() throws {
        let hex = String(repeating: "b", count: 64)
        let release = try ReleaseFile(Array("Suite: stable\nCodename: bookworm\nArchitectures: amd64 arm64\nComponents: main\nAcquire-By-Hash: yes\nSHA256:\n \(hex) 123 main/binary-amd64/Packages.gz\n".utf8))
        #expect(release.codename == "bookworm" && release.architectures == ["amd64", "arm64"] && release.acquireByHash)
        #expect(release.files["main/binary-amd64/Packages.gz"] == .init(size: 123, sha256: hex))
        #expect(throws: ReleaseFile.ParseError.self) { try ReleaseFile(Array("Suite: x\nSHA256:\n \(hex) 1 ../x\n".utf8)) }
        #expect(throws: ReleaseFile.ParseError.self) { try ReleaseFile(Array("Suite: x\nMD5Sum:\n 00 1 x\n".utf8)) }
    }

    @Test("alternatives: one already chosen wins, else the first that can be satisfied")
    func alternatives() throws {
        let r = try resolver([stanza("app", "1", ["Depends: missing | b, c"]), stanza("b", "1"), stanza("c", "1", ["Depends: b | c2"]), stanza("c2", "1")])
        #expect(names(try r.resolve([request("app")])) == ["app=1", "b=1", "c=1"])
        let second = try resolver([stanza("app", "1", ["Depends: x | y"]), stanza("x", "1"), stanza("y", "1"), stanza("other", "1", ["Depends: y"])])
        #expect(names(try second.resolve([request("other"), request("app")])) == ["app=1", "other=1", "y=1"], "y, already chosen, meets 'x | y'")
    }

    @Test("versions: epochs and '~' order as dpkg orders them; a pinned request holds; the lock's version is kept")
    func versions() throws {
        let r = try resolver([stanza("v", "1.5-1"), stanza("v", "1:0.9-1"), stanza("v", "1.0~rc1-1"), stanza("v", "1.0-1"), stanza("user", "1", ["Depends: v (>= 1.0~)"])])
        #expect(names(try r.resolve([request("v")])) == ["v=1:0.9-1"])
        #expect(names(try r.resolve([request("v (<< 1.0)")])) == ["v=1.0~rc1-1"])
        #expect(names(try r.resolve([request("user")], preferring: ["v": "1.0-1"])) == ["user=1", "v=1.0-1"])
        #expect(names(try r.resolve([request("user")], preferring: ["v": "0.1-1"])) == ["user=1", "v=1:0.9-1"], "a version the archive lacks is not kept")
        #expect(throws: Resolver.ResolveError.self) { try r.resolve([request("v (>> 2:0)")]) }
        // A dependency takes apt's candidate (or the lock's version), not an older one: apt fails here too.
        let older = try resolver([stanza("v", "1.5-1"), stanza("v", "1:0.9-1"), stanza("old-user", "1", ["Depends: v (<< 1:0)"])])
        #expect(throws: Resolver.ResolveError.self) { try older.resolve([request("old-user")]) }
        #expect(names(try older.resolve([request("old-user")], preferring: ["v": "1.5-1"])) == ["old-user=1", "v=1.5-1"])
    }

    @Test("pin priorities: a backports or experimental suite's newer version is the candidate only when nothing else offers the name")
    func priorities() throws {
        let main = try PackageRecord.readIndex(Array((stanza("v", "1.0-1") + stanza("user", "1", ["Depends: v"])).utf8))
        let backports = try PackageRecord.readIndex(Array((stanza("v", "2.0-1~bpo") + stanza("only-new", "1")).utf8))
        let r = Resolver(candidates: main.map { .init(record: $0, repository: 0, priority: 500) } + backports.map { .init(record: $0, repository: 1, priority: 100) },
                         architecture: "amd64")
        #expect(names(try r.resolve([request("user"), request("only-new")])) == ["only-new=1", "user=1", "v=1.0-1"])
        #expect(names(try r.resolve([request("v (>= 2)")])) == ["v=2.0-1~bpo"])
        #expect(throws: Resolver.ResolveError.noEssential(architecture: "amd64")) { try r.resolve([.essential]) }
    }

    @Test("virtual packages: a versioned Provides meets a versioned relation, an unversioned one does not")
    func virtuals() throws {
        let r = try resolver([stanza("user", "1", ["Depends: api (>= 2)"]), stanza("old", "1", ["Provides: api"]), stanza("new", "1", ["Provides: api (= 3)"])])
        #expect(names(try r.resolve([request("user")])) == ["new=1", "user=1"])
        #expect(throws: Resolver.ResolveError.ambiguousVirtual("api", providers: ["new", "old"])) { try r.resolve([request("api")]) }
        let single = try resolver([stanza("only", "1", ["Provides: mta"])])
        #expect(names(try single.resolve([request("mta")])) == ["only=1"])
    }

    @Test("conflicts: a conflicting alternative is passed over; a set that cannot be installed is an error")
    func conflicts() throws {
        let r = try resolver([stanza("a", "1", ["Depends: x | y"]), stanza("x", "1", ["Conflicts: b"]), stanza("y", "1"), stanza("b", "1")])
        #expect(names(try r.resolve([request("b"), request("a")])) == ["a=1", "b=1", "y=1"])
        let broken = try resolver([stanza("a", "1", ["Depends: x"]), stanza("x", "1", ["Breaks: b (<< 2)"]), stanza("b", "1")])
        #expect(throws: Resolver.ResolveError.self) { try broken.resolve([request("b"), request("a")]) }
    }

    @Test("an unsatisfiable dependency names the package, the relation and why")
    func unsatisfiable() throws {
        let r = try resolver([stanza("a", "1", ["Depends: b (>= 2)"]), stanza("b", "1")])
        do {
            _ = try r.resolve([request("a")])
            Issue.record("resolved")
        } catch {
            #expect("\(error)".contains("a 1 Depends 'b (>= 2)'") && "\(error)".contains("the candidate is b 1"))
        }
        #expect(throws: Resolver.ResolveError.noSuchPackage("nope", architecture: "amd64", versions: [])) { try r.resolve([request("nope")]) }
    }

    @Test("architectures: another architecture's packages are not candidates; ':any' is the same architecture")
    func architectures() throws {
        let r = try resolver([stanza("a", "1", arch: "arm64"), stanza("a", "2", arch: "amd64", ["Depends: perl:any, d"]), stanza("perl", "5", ["Multi-Arch: allowed"]), stanza("d", "1", arch: "all")])
        #expect(names(try r.resolve([request("a")])) == ["a=2", "d=1", "perl=5"])
        // ':any' takes only a package marked Multi-Arch: allowed, as apt has it.
        let strict = try resolver([stanza("a", "1", ["Depends: tool:any"]), stanza("tool", "1")])
        #expect(throws: Resolver.ResolveError.self) { try strict.resolve([request("a")]) }
        let arm = try resolver([stanza("a", "1", arch: "arm64"), stanza("a", "2", arch: "amd64")], architecture: "arm64")
        #expect(names(try arm.resolve([request("a")])) == ["a=1"])
    }

    @Test("a hostile chain of thirty thousand dependencies resolves without exhausting the stack")
    func deepChain() throws {
        let count = 30_000
        var text = ""
        for i in 0..<count { text += stanza("p\(i)", "1", i + 1 < count ? ["Depends: p\(i + 1)"] : []) }
        let r = try resolver([text])
        #expect(try r.resolve([request("p0")]).count == count)
    }

    @Test("a lock that names a file outside the archive, or an invalid digest, is refused")
    func hostileLock() throws {
        func lock(_ filename: String, sha: String = String(repeating: "c", count: 64)) -> Data {
            Data("""
            {"lockVersion":1,"inputs":{"repositories":[{"url":"http://x","suite":"s","components":["main"]}],"packages":["a"]},
             "platforms":[{"platform":"linux/amd64","architecture":"amd64","packages":[{"name":"a","version":"1","architecture":"amd64",
             "repository":0,"filename":"\(filename)","size":1,"sha256":"\(sha)","requiredBy":[]}]}]}
            """.utf8)
        }
        #expect(try PackageLockFile.decode(lock("pool/a_1.deb"), path: "L").platforms.count == 1)
        for bad in ["../../etc/passwd.deb", "/pool/a.deb", "pool/a.tar", "pool/a.deb?x=1.deb"] {
            #expect(throws: PackageLockFile.ReadError.self, "\(bad)") { try PackageLockFile.decode(lock(bad), path: "L") }
        }
        #expect(throws: PackageLockFile.ReadError.self) { try PackageLockFile.decode(lock("pool/a.deb", sha: "XYZ"), path: "L") }
    }
}
