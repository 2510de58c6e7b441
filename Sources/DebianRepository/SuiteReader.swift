import AsyncHTTPClient
import DebianArchive
import Foundation
import OCI
import PackageLock

/// Reads one suite of a Debian archive the way apt does, but stricter: the `InRelease` (or `Release` and
/// `Release.gpg`) signature is checked by gpgv against the repository's keyring, the suite must be the one
/// asked for, and every `Packages` index must have the size and SHA-256 the signed Release gives (both
/// compressed and, where listed, uncompressed) before a byte of it is parsed.
struct SuiteReader {
    let root: String
    let suite: String
    let keyrings: [String]
    /// False for a snapshot of an archive (apt's `check-valid-until=no`): its Release is expected to be old.
    let checkValidUntil: Bool
    let downloader: ArchiveDownloader
    var now = Date()

    /// What is wrong, and with which address.
    struct Failure: Error {
        var url: String
        var kind: Kind
        enum Kind {
            case fetch(String)
            case signature(String)
            case release(String)
            case index(String)
        }
    }

    var suiteURL: String { root + "/dists/" + suite }

    /// The suite's verified Release file.
    func release() async throws(Failure) -> ReleaseFile {
        let verifier = SignatureVerifier(keyrings: keyrings)
        let signed: [UInt8]
        let inRelease = suiteURL + "/InRelease"
        do {
            let document = try await downloader.get(inRelease, limit: 16 << 20)
            signed = try verify(inRelease) { () throws(SignatureVerifier.Failure) in try verifier.verifyClearsigned(document) }
        } catch let failure as Failure {
            throw failure
        } catch ArchiveDownloader.Failure.notFound {
            let releaseURL = suiteURL + "/Release"
            let release = try await get(releaseURL, limit: 16 << 20)
            let signature = try await get(releaseURL + ".gpg", limit: 1 << 20)
            signed = try verify(releaseURL) { () throws(SignatureVerifier.Failure) in try verifier.verifyDetached(release, signature: signature) }
        } catch ArchiveDownloader.Failure.failed(let reason), ArchiveDownloader.Failure.tooLarge(let reason) {
            throw Failure(url: inRelease, kind: .fetch(reason))
        } catch {
            throw Failure(url: inRelease, kind: .fetch("\(error)"))
        }
        let release: ReleaseFile
        do { release = try ReleaseFile(signed) } catch { throw Failure(url: suiteURL, kind: .release(error.description)) }
        guard release.suite == suite || release.codename == suite else {
            throw Failure(url: suiteURL, kind: .release("it says it is the suite '\(release.suite ?? "?")' (codename '\(release.codename ?? "?")'), not '\(suite)': a mirror may be serving another suite's signed file; check the url and suite"))
        }
        // As apt: a Release past its Valid-Until may be an old one replayed to hold back updates; one dated
        // more than ten days ahead is not valid yet.
        if checkValidUntil, let text = release.validUntil {
            guard let validUntil = Self.date(text) else {
                throw Failure(url: suiteURL, kind: .release("its Valid-Until '\(text)' is not a date"))
            }
            guard validUntil > now else {
                throw Failure(url: suiteURL, kind: .release("it expired at \(text) (Valid-Until): the mirror serves an old, possibly replayed, Release; try another mirror, or for a snapshot archive set 'checkValidUntil: false' on the repository"))
            }
        }
        if let text = release.date, let date = Self.date(text), date > now.addingTimeInterval(10 * 86_400) {
            throw Failure(url: suiteURL, kind: .release("it is dated \(text), in the future: check this machine's clock"))
        }
        return release
    }

    /// An RFC 1123 date as Release files write it (`Sat, 11 Jul 2026 10:16:37 UTC`).
    static func date(_ text: String) -> Date? {
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEE, dd MMM yyyy HH:mm:ss Z", "EEE, d MMM yyyy HH:mm:ss zzz"] {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = format
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }

    private func verify(_ url: String, _ body: () throws(SignatureVerifier.Failure) -> [UInt8]) throws(Failure) -> [UInt8] {
        do { return try body() } catch {
            switch error {
            case .noVerifier: throw Failure(url: url, kind: .signature("gpgv is not installed, and no signature can be checked without it: apt-get install gpgv"))
            case .keyring(let reason): throw Failure(url: url, kind: .signature("the keyring \(reason)"))
            case .rejected(let reason): throw Failure(url: url, kind: .signature(reason))
            }
        }
    }

    private func get(_ url: String, limit: Int64) async throws(Failure) -> [UInt8] {
        do { return try await downloader.get(url, limit: limit) } catch {
            switch error {
            case .notFound: throw Failure(url: url, kind: .fetch("the server has no such file (404)"))
            case .failed(let reason): throw Failure(url: url, kind: .fetch(reason))
            case .tooLarge(let reason): throw Failure(url: url, kind: .fetch(reason))
            }
        }
    }

    /// The packages of `component` for `architecture`, from the index the Release file lists, verified.
    func packages(component: String, architecture: String, release: ReleaseFile) async throws(Failure) -> [PackageRecord] {
        let folder = "\(component)/binary-\(architecture)"
        let uncompressed = release.files[folder + "/Packages"]
        let choices = ["Packages.gz", "Packages.xz", "Packages.zst", "Packages.bz2", "Packages.lz4", "Packages"]
        let listed = choices.filter { release.files[folder + "/" + $0] != nil }
        guard !listed.isEmpty else {
            throw Failure(url: suiteURL, kind: .release("the suite has no Packages index for \(folder) (it lists components \(release.components.joined(separator: ", ")) and architectures \(release.architectures.joined(separator: ", "))): check 'components' and the image's platforms"))
        }
        if uncompressed?.size == 0 { return [] }  // an empty index (bookworm-updates has some)
        // Each listed form in turn, by hash first where the archive offers it: a mirror may lack some.
        var found: (name: String, entry: ReleaseFile.IndexFile, url: String, bytes: [UInt8])?
        var tried: [String] = []
        search: for name in listed {
            let entry = release.files[folder + "/" + name]!
            let urls = (release.acquireByHash ? ["\(suiteURL)/\(folder)/by-hash/SHA256/\(entry.sha256)"] : []) + ["\(suiteURL)/\(folder)/\(name)"]
            for url in urls {
                do {
                    found = (name, entry, url, try await downloader.get(url, limit: entry.size))
                    break search
                } catch {
                    switch error {
                    case .notFound:
                        tried.append(url)
                    case .tooLarge(let reason):
                        throw Failure(url: url, kind: .index("\(reason): it does not have the size the signed Release file gives (\(entry.size) bytes); the mirror is changing or the index was tampered with: try again later or another mirror"))
                    case .failed(let reason):
                        throw Failure(url: url, kind: .fetch(reason))
                    }
                }
            }
        }
        guard let (name, entry, url, bytes) = found else {
            throw Failure(url: suiteURL + "/" + folder, kind: .fetch("the mirror has none of the index files the Release lists (tried \(tried.joined(separator: ", ")))"))
        }
        guard Int64(bytes.count) == entry.size, Digest.of(bytes).hex == entry.sha256 else {
            throw Failure(url: url, kind: .index("it does not have the size and SHA-256 the signed Release file gives (\(entry.size) bytes, sha256:\(entry.sha256)), but \(bytes.count) bytes, \(Digest.of(bytes)): the mirror is changing or the index was tampered with; try again later or another mirror"))
        }
        var text = bytes
        if name != "Packages" {
            do { text = try IndexDecompression.decompress(bytes, limit: uncompressed?.size ?? (2 << 30)) } catch {
                throw Failure(url: url, kind: .index("it cannot be decompressed: \(error.reason)"))
            }
            if let uncompressed, Int64(text.count) != uncompressed.size || Digest.of(text).hex != uncompressed.sha256 {
                throw Failure(url: url, kind: .index("it decompresses to bytes that do not have the size and SHA-256 the signed Release file gives for \(folder)/Packages"))
            }
        }
        do { return try PackageRecord.readIndex(text) } catch { throw Failure(url: url, kind: .index(error.description)) }
    }
}
