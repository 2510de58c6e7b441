import CArchive
import Foundation

/// Decompresses an index (`.gz`, `.xz`, `.bz2`, `.zst`, `.lz4` or none) with libarchive, never past `limit`
/// bytes: an index that inflates beyond the size its Release file gives is refused.
enum IndexDecompression {
    struct Failure: Error {
        var reason: String
    }

    static func decompress(_ bytes: [UInt8], limit: Int64) throws(Failure) -> [UInt8] {
        guard let archive = archive_read_new() else { throw Failure(reason: "libarchive could not start") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_all(archive)
        archive_read_support_format_raw(archive)
        var output: [UInt8] = []
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            guard archive_read_open_memory(archive, buffer.baseAddress, buffer.count) == ARCHIVE_OK else {
                failure = archive_error_string(archive).map { String(cString: $0) } ?? "unreadable"
                return
            }
            var entry: OpaquePointer?
            let header = archive_read_next_header(archive, &entry)
            if header == ARCHIVE_EOF { return }  // an empty stream
            guard header == ARCHIVE_OK else {
                failure = archive_error_string(archive).map { String(cString: $0) } ?? "no data"
                return
            }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let count = chunk.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
                if count == 0 { break }
                if count < 0 {
                    failure = archive_error_string(archive).map { String(cString: $0) } ?? "a damaged stream"
                    return
                }
                guard Int64(output.count) + Int64(count) <= limit else {
                    failure = "it inflates to more than the \(limit) bytes its Release file gives"
                    return
                }
                output.append(contentsOf: chunk[0..<count])
            }
        }
        if let failure { throw Failure(reason: failure) }
        return output
    }
}
