import AsyncHTTPClient
import Foundation
import NIOCore

/// GETs an archive's files into memory, never more than a bound: a Release file or an index larger than
/// it should be is refused while it arrives, not after.
struct ArchiveDownloader {
    let client: HTTPClient

    enum Failure: Error {
        case notFound
        /// More bytes than `limit`: the size the signed Release file gives, for an index.
        case tooLarge(String)
        case failed(String)
    }

    func get(_ url: String, limit: Int64) async throws(Failure) -> [UInt8] {
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "User-Agent", value: "imgbuild")
            let response = try await client.execute(request, timeout: .seconds(600))
            if response.status == .notFound || response.status == .gone { throw Failure.notFound }
            guard response.status == .ok else { throw Failure.failed("the server answered \(response.status.code) \(response.status.reasonPhrase)") }
            if let length = response.headers.first(name: "Content-Length").flatMap({ Int64($0) }), length > limit {
                throw Failure.tooLarge("it is \(length) bytes, more than the \(limit) expected")
            }
            var bytes: [UInt8] = []
            for try await buffer in response.body {
                guard Int64(bytes.count + buffer.readableBytes) <= limit else {
                    throw Failure.tooLarge("it is more than the \(limit) bytes expected")
                }
                bytes.append(contentsOf: buffer.readableBytesView)
            }
            return bytes
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .failed("\(error)")
        }
    }
}
