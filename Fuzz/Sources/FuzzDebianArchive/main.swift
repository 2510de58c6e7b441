import DebianArchive
import Foundation
import FuzzSupport
import PackageLock

/// What `imgbuild lock` and `build` read from a Debian archive and a lock: the first byte picks the parser
/// (0: a `Packages` index, then resolved; 1: a `Release` file; 2: a relation field; 3: `Imagefile.lock`).
///
/// Invariants: a parsed relation prints as text that parses to the same relation; every package an index
/// yields has a name, a 64-hex SHA-256 and a file path inside the archive; the resolver ends and chooses one
/// version per name, each with a reason; a lock that is accepted names only `.deb`s inside the archive.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDebianArchive(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzBytes(data, size)
    guard let selector = bytes.first else { return 0 }
    let rest = Array(bytes.dropFirst())
    switch selector % 4 {
    case 0:
        guard let records = try? PackageRecord.readIndex(rest) else { return 0 }
        for record in records {
            fuzzCheck(!record.name.isEmpty && record.sha256.count == 64, "a record without a name or digest was accepted")
            fuzzCheck(!record.filename.hasPrefix("/") && !record.filename.split(separator: "/").contains(".."), "\(record.filename) leaves the archive")
        }
        guard let first = records.first else { return 0 }
        let resolver = Resolver(candidates: records.map { Resolver.Candidate(record: $0, repository: 0) }, architecture: first.architecture)
        if let resolved = try? resolver.resolve([.package(Relation(name: first.name)), .essential]) {
            fuzzCheck(Set(resolved.map(\.candidate.record.name)).count == resolved.count, "two versions of one name were chosen")
            fuzzCheck(resolved.allSatisfy { !$0.requiredBy.isEmpty }, "a package was chosen for no reason")
        }
    case 1:
        if let release = try? ReleaseFile(rest) {
            for path in release.files.keys {
                fuzzCheck(!path.hasPrefix("/") && !path.split(separator: "/").contains(".."), "the index \(path) leaves the suite")
            }
        }
    case 2:
        let text = String(decoding: rest, as: UTF8.self)
        guard let groups = try? Relation.parseField(text) else { return 0 }
        for relation in groups.joined() {
            guard let again = try? Relation.parse(relation.description) else {
                fuzzCheck(false, "'\(relation)' (from '\(text)') does not parse again")
                return 0
            }
            fuzzCheck(again == relation, "'\(relation)' parses again to '\(again)'")
        }
    default:
        guard let lock = try? PackageLockFile.decode(Data(rest), path: "Imagefile.lock") else { return 0 }
        for package in lock.platforms.flatMap(\.packages) {
            fuzzCheck(package.filename.hasSuffix(".deb") && !package.filename.split(separator: "/").contains(".."), "\(package.filename) was accepted")
        }
        fuzzCheck((try? PackageLockFile.decode(lock.encoded(), path: "again")) == lock, "an accepted lock does not round-trip")
    }
    return 0
}

/// The entry point SwiftPM links this executable with: libFuzzer's driver over `fuzzDebianArchive`.
@_cdecl("FuzzDebianArchive_main")
public func fuzzDebianArchiveMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runLibFuzzer(argc, argv, fuzzDebianArchive)
}
