import Foundation
import NIOCore
import OCI

extension ImageSource {
    /// A small blob, such as an image config, read whole into memory and checked against `descriptor`:
    /// exactly its size and its digest. A descriptor that claims more than `limit` bytes is refused before
    /// anything is read, and a source that sends more than it claims is cut off.
    public func smallBlob(_ descriptor: Descriptor, limit: Int = ManifestLimit.maxBytes) async throws -> Data {
        guard descriptor.size >= 0, descriptor.size <= Int64(limit) else {
            throw DistributionError.sizeMismatch(what: "blob \(descriptor.digest) (at most \(limit) bytes are read whole)",
                                                 expected: Int64(limit), actual: descriptor.size)
        }
        var data = Data()
        for try await chunk in try await blob(descriptor, offset: 0) {
            guard Int64(data.count + chunk.readableBytes) <= descriptor.size else {
                throw DistributionError.sizeMismatch(what: "blob \(descriptor.digest)", expected: descriptor.size,
                                                     actual: Int64(data.count + chunk.readableBytes))
            }
            chunk.withUnsafeReadableBytes { data.append(contentsOf: $0) }
        }
        guard Int64(data.count) == descriptor.size else {
            throw DistributionError.sizeMismatch(what: "blob \(descriptor.digest)", expected: descriptor.size, actual: Int64(data.count))
        }
        let actual = Digest.of(data)
        guard actual == descriptor.digest else { throw DistributionError.digestMismatch(what: "blob", expected: descriptor.digest, actual: actual) }
        return data
    }
}
