import AsyncHTTPClient
import Foundation
import NIOCore
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// Fetches URL dependencies over HTTP(S) once and keeps them in a cache folder named by their SHA-256,
/// so that a later build finds them without the network and a changed file is caught by its digest.
struct DependencyFetcher {
    let cacheDirectory: String

    var downloadsDirectory: String { Self.downloadsDirectory(cacheDirectory) }

    static func downloadsDirectory(_ cacheDirectory: String) -> String { cacheDirectory + "/downloads/sha256" }

    /// The cached file for `digest`, fetching `url` first if it is not cached. Throws the reason on any
    /// failure; a download whose digest differs is deleted and reported with both digests.
    func file(url: String, digest: Digest, size: Int64? = nil) async throws(FetchFailure) -> String {
        let cached = downloadsDirectory + "/" + digest.hex
        if FileManager.default.fileExists(atPath: cached) {
            if let (actual, _) = try? Digest.ofFile(atPath: cached), actual == digest { return cached }
            unlink(cached)  // a damaged cache entry: fetch again
        }
        do {
            try FileManager.default.createDirectory(atPath: downloadsDirectory, withIntermediateDirectories: true)
        } catch {
            throw .other("cannot create the download cache '\(downloadsDirectory)': \(error.localizedDescription)")
        }
        let temporary = downloadsDirectory + "/.partial-\(getpid())-\(digest.hex.prefix(16))"
        defer { unlink(temporary) }
        let actual = try await download(url, to: temporary, limit: size)
        guard actual == digest else { throw .mismatch(actual: actual) }
        guard rename(temporary, cached) == 0 else { throw .other("cannot move the download into the cache: \(String(cString: strerror(errno)))") }
        return cached
    }

    enum FetchFailure: Error {
        case mismatch(actual: Digest)
        case other(String)
    }

    /// `limit`: the most bytes the file may have (the size a lock gives); more is refused while it arrives.
    private func download(_ url: String, to path: String, limit: Int64?) async throws(FetchFailure) -> Digest {
        // A locked package's address is its repository's: a variable left unset, or no apt source for `system`.
        if let start = url.range(of: "${"), let end = url[start.upperBound...].firstIndex(of: "}") {
            throw .other("it is not cached and its repository's url needs the environment variable \(url[start.upperBound..<end]), which is not set: set it to the archive's address")
        }
        if url.hasPrefix("system/") {
            throw .other("it is not cached and the machine's apt sources have no source for its repository's suite: add one, or build where the package is cached")
        }
        guard let handle = FileHandle(forWritingAtPath: path) ?? {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            return FileHandle(forWritingAtPath: path)
        }() else { throw .other("cannot write to the download cache '\(path)'") }
        defer { try? handle.close() }
        let hasher = SHA256Hasher()
        // A refused or silent server fails after the connect timeout instead of being retried for minutes.
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(120))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { client.shutdown { _ in } }
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "User-Agent", value: "imgbuild")
            let response = try await client.execute(request, timeout: .seconds(3600))
            guard response.status == .ok else {
                throw FetchFailure.other("the server answered \(response.status.code) \(response.status.reasonPhrase)")
            }
            var received: Int64 = 0
            for try await buffer in response.body {
                received += Int64(buffer.readableBytes)
                if let limit, received > limit {
                    throw FetchFailure.other("the server sent more than the \(limit) bytes the lock gives for it: the mirror is damaged or hostile; try another")
                }
                let chunk = Data(buffer.readableBytesView)
                hasher.update(chunk)
                try handle.write(contentsOf: chunk)
            }
            try handle.synchronize()
        } catch let failure as FetchFailure {
            throw failure
        } catch {
            throw .other("\(error)")
        }
        return hasher.finalize()
    }
}
