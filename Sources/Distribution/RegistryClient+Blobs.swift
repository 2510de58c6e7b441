import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import OCI
import Synchronization

extension RegistryClient {
    /// Whether the repository has the blob (`HEAD /v2/<name>/blobs/<digest>`).
    public func blobExists(_ digest: Digest) async throws -> Bool {
        let response = try await send("check blob \(digest)", retryable: true, expecting: [200, 404]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/blobs/\(digest)")
            request.method = .HEAD
            return request
        }
        return response.status.code == 200
    }

    /// The blob's bytes from `offset` (`GET`, with `Range` to resume).
    public func openBlob(_ descriptor: Descriptor, offset: Int64) async throws -> BlobStream {
        let response = try await send("download blob \(descriptor.digest)", retryable: true, expecting: [200, 206]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/blobs/\(descriptor.digest)")
            if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
            return request
        }
        if offset > 0 && response.status.code == 200 {
            // The registry ignored the range: skip the bytes already had.
            return BlobStream.wrapping(response.body).dropping(offset)
        }
        return BlobStream.wrapping(response.body)
    }

    /// Asks the registry to mount the blob from another repository of the same registry; true if it did.
    public func mountBlob(_ digest: Digest, from other: String) async throws -> Bool {
        let response = try await send("mount blob \(digest) from \(other)", retryable: true, expecting: [201, 202]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/blobs/uploads/?mount=\(digest)&from=\(other)")
            request.method = .POST
            request.headers.add(name: "Content-Length", value: "0")
            return request
        }
        if response.status.code == 202, let location = response.headers.first(name: "Location") {
            // Not mounted: an upload session was opened instead; close it.
            _ = try? await send("cancel upload", retryable: false, expecting: [204, 404]) {
                var request = HTTPClientRequest(url: absolute(location))
                request.method = .DELETE
                return request
            }
        }
        return response.status.code == 201
    }

    /// Uploads a blob and returns the bytes sent. Small blobs go in one `PUT`; larger ones in
    /// `PATCH` chunks with `Content-Range`. When a chunk fails, the upload's status tells how much the
    /// registry has and the upload resumes from there; if the session is gone, a new one starts.
    public func uploadBlob(_ descriptor: Descriptor, open: @escaping BlobOpener) async throws -> Int64 {
        var sent: Int64 = 0
        var lastFailure: (any Error)?
        var location: String?
        var offset: Int64 = 0
        for attempt in 0..<options.attempts {
            if attempt > 0 { try await backoff(attempt) }
            do {
                if location == nil {
                    location = try await startUpload()
                    offset = 0
                }
                if descriptor.size <= options.chunkSize {
                    let body = try await open(0)
                    sent += descriptor.size
                    try await finishUpload(location!, digest: descriptor.digest, body: .stream(body, length: .known(descriptor.size)))
                    return sent
                }
                while offset < descriptor.size {
                    let length = min(options.chunkSize, descriptor.size - offset)
                    let body = try await open(offset).limited(to: length)
                    sent += length
                    let response = try await send("upload chunk of \(descriptor.digest)", retryable: false, expecting: [202]) {
                        var request = HTTPClientRequest(url: absolute(location!))
                        request.method = .PATCH
                        request.headers.add(name: "Content-Type", value: "application/octet-stream")
                        request.headers.add(name: "Content-Range", value: "\(offset)-\(offset + length - 1)")
                        request.body = .stream(body, length: .known(length))
                        return request
                    }
                    location = response.headers.first(name: "Location").map(absolute) ?? location
                    offset += length
                }
                try await finishUpload(location!, digest: descriptor.digest, body: nil)
                return sent
            } catch let error as DistributionError {
                switch error {
                case .registry(_, let status, _) where status == 400 || status == 404 || status == 416:
                    // The digest was refused, or the session is gone: only a fresh upload can help.
                    if case .registry(_, 400, let detail) = error, detail.contains("DIGEST_INVALID") { throw error }
                    location = nil
                    lastFailure = error
                case .unauthorized, .digestMismatch, .sizeMismatch, .manifestTooLarge, .insecureRefused, .invalidLocation:
                    throw error
                default:
                    lastFailure = error
                    location = try await resumePoint(location, &offset)
                }
            } catch {
                lastFailure = error
                location = try await resumePoint(location, &offset)
            }
        }
        throw DistributionError.transport(operation: "upload blob \(descriptor.digest)", reason: lastFailure.map { "\($0)" } ?? "unknown")
    }

    /// After a failed chunk: where the registry's upload session stands (`GET` its location, `Range:
    /// 0-N`), or nil to start a new session.
    private func resumePoint(_ location: String?, _ offset: inout Int64) async throws -> String? {
        guard let location else { return nil }
        let statusURL = absolute(location)
        let status = try? await send("upload status", retryable: true, expecting: [204], make: { HTTPClientRequest(url: statusURL) })
        guard let response = status else { return nil }
        if let range = response.headers.first(name: "Range"), let dash = range.lastIndex(of: "-"), let end = Int64(range[range.index(after: dash)...]) {
            offset = end + 1
        } else {
            offset = 0
        }
        return response.headers.first(name: "Location").map(absolute) ?? location
    }

    private func startUpload() async throws -> String {
        let response = try await send("start blob upload", retryable: true, expecting: [202]) {
            var request = HTTPClientRequest(url: "\(repositoryURL)/blobs/uploads/")
            request.method = .POST
            request.headers.add(name: "Content-Length", value: "0")
            return request
        }
        guard let location = response.headers.first(name: "Location") else {
            throw DistributionError.registry(operation: "start blob upload", status: 202, detail: "no Location header")
        }
        return absolute(location)
    }

    private func finishUpload(_ location: String, digest: Digest, body: HTTPClientRequest.Body?) async throws {
        let separator = location.contains("?") ? "&" : "?"
        let response = try await send("upload blob \(digest)", retryable: false, expecting: [201]) {
            var request = HTTPClientRequest(url: location + separator + "digest=\(digest)")
            request.method = .PUT
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            if let body { request.body = body } else { request.headers.add(name: "Content-Length", value: "0") }
            return request
        }
        if let confirmed = response.headers.first(name: "Docker-Content-Digest"), confirmed != digest.description {
            throw DistributionError.digestMismatch(what: "the registry's copy of blob", expected: digest, actual: (try? Digest(parsing: confirmed)) ?? digest)
        }
    }
}

extension BlobStream {
    /// The first `count` bytes.
    func limited(to count: Int64) -> BlobStream {
        let box = IteratorBox(makeAsyncIterator())
        let remaining = Counter(count)
        return BlobStream(unfolding: {
            guard remaining.value > 0, var chunk = try await box.next() else { return nil }
            if Int64(chunk.readableBytes) > remaining.value { chunk = chunk.getSlice(at: chunk.readerIndex, length: Int(remaining.value))! }
            remaining.add(-Int64(chunk.readableBytes))
            return chunk
        })
    }

    /// Without the first `count` bytes.
    func dropping(_ count: Int64) -> BlobStream {
        let box = IteratorBox(makeAsyncIterator())
        let toSkip = Counter(count)
        return BlobStream(unfolding: {
            while var chunk = try await box.next() {
                if toSkip.value == 0 { return chunk }
                let skip = Int(Swift.min(Int64(chunk.readableBytes), toSkip.value))
                chunk.moveReaderIndex(forwardBy: skip)
                toSkip.add(-Int64(skip))
                if chunk.readableBytes > 0 { return chunk }
            }
            return nil
        })
    }
}

/// A count that the steps of one stream share: one step at a time, but on any thread.
final class Counter: Sendable {
    private let count: Atomic<Int64>
    init(_ value: Int64) { count = Atomic(value) }
    var value: Int64 { count.load(ordering: .relaxed) }
    /// Adds `delta` (negative to take away) and returns the new value.
    @discardableResult
    func add(_ delta: Int64) -> Int64 { count.add(delta, ordering: .relaxed).newValue }
}
