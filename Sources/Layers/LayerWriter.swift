import CArchive
import Foundation
import OCI
#if canImport(Glibc)
import Glibc
#endif

/// The identity of a written layer.
public struct WrittenLayer: Sendable, Equatable, Codable {
    /// SHA-256 of the uncompressed tar stream (the config's `rootfs.diff_ids` entry).
    public var diffID: Digest
    /// SHA-256 of the compressed blob.
    public var digest: Digest
    /// Size of the compressed blob in bytes.
    public var size: Int64
    /// Size of the uncompressed tar stream in bytes.
    public var uncompressedSize: Int64
    public var mediaType: String
}

/// Writes a layer in one streaming pass: entries → libarchive (PAX tar) → SHA-256 of the tar (diff_id) →
/// gzip or zstd → SHA-256 of the blob → output file.
///
/// Every rule of reproducibility is applied here: entries sorted by path bytes with all parents, mtime
/// fixed, no atime/ctime, no user or group names, modes as the entries carry them.
public struct LayerWriter: Sendable {
    public var compression: Compression
    /// The mtime of every entry (SOURCE_DATE_EPOCH).
    public var mtime: Int64
    /// Compression worker threads (≥ 1), for zstd and gzip alike; does not change the output.
    public var zstdThreads: Int

    public init(compression: Compression, mtime: Int64, zstdThreads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.compression = compression
        self.mtime = mtime
        self.zstdThreads = max(1, zstdThreads)
    }

    /// Writes the tree as a compressed tarball to the already open file descriptor `output`.
    public func write(_ tree: LayerTree, to output: Int32) throws(LayerError) -> WrittenLayer {
        try write(try tree.finalizedEntries(), spool: tree.spool, to: output)
    }

    /// Writes entries already finalized by ``LayerTree/finalizedEntries()`` (their spooled contents in `spool`).
    public func write(_ entries: [LayerEntry], spool: Spool?, to output: Int32) throws(LayerError) -> WrittenLayer {
        try withUTF8Locale { () throws(LayerError) in try writeEntries(entries, spool: spool, to: output) }
    }

    private func writeEntries(_ entries: [LayerEntry], spool: Spool?, to output: Int32) throws(LayerError) -> WrittenLayer {
        let compressor: StreamCompressor
        switch compression {
        case .gzip: compressor = ParallelGzipCompressor(level: compression.level, threads: zstdThreads)
        case .zstd: compressor = try ZstdCompressor(level: compression.level, threads: zstdThreads)
        }
        let sink = TarSink(compressor: compressor, output: output)

        guard let archive = archive_write_new() else { throw .writeFailed(reason: "libarchive could not start") }
        defer { archive_write_free(archive) }
        func check(_ status: Int32, _ what: String) throws(LayerError) {
            if let failure = sink.failure { throw failure }
            guard status == ARCHIVE_OK else {
                throw .writeFailed(reason: "\(what): \(archiveError(archive))")
            }
        }
        try check(archive_write_set_format_pax_restricted(archive), "tar format")
        try check(archive_write_add_filter_none(archive), "tar filter")
        try check(archive_write_open(archive, Unmanaged.passUnretained(sink).toOpaque(), nil, tarWriteCallback, nil), "open tar stream")

        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: FileChunks.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        for entry in entries {
            guard let header = archive_entry_new() else { throw .writeFailed(reason: "libarchive out of memory") }
            defer { archive_entry_free(header) }
            archive_entry_set_pathname_utf8(header, entry.path)
            archive_entry_set_mtime(header, time_t(mtime), 0)
            archive_entry_set_uid(header, la_int64_t(entry.uid))
            archive_entry_set_gid(header, la_int64_t(entry.gid))
            switch entry.kind {
            case .directory:
                archive_entry_set_filetype(header, ArchiveFileType.directory)
                archive_entry_set_perm(header, mode_t(entry.mode))
            case .regularFile(let content):
                archive_entry_set_filetype(header, ArchiveFileType.regular)
                archive_entry_set_perm(header, mode_t(entry.mode))
                archive_entry_set_size(header, la_int64_t(content.size))
            case .symlink(let target):
                archive_entry_set_filetype(header, ArchiveFileType.symlink)
                archive_entry_set_perm(header, 0o777)
                archive_entry_set_symlink_utf8(header, target)
            case .hardlink(let target):
                archive_entry_set_filetype(header, ArchiveFileType.regular)
                archive_entry_set_perm(header, mode_t(entry.mode))
                archive_entry_set_hardlink_utf8(header, target)
                archive_entry_set_size(header, 0)
            }
            try check(archive_write_header(archive, header), "tar header of '\(entry.path)'")
            guard case .regularFile(let content) = entry.kind else { continue }

            func put(_ chunk: UnsafeRawBufferPointer) throws(LayerError) {
                let written = archive_write_data(archive, chunk.baseAddress, chunk.count)
                if let failure = sink.failure { throw failure }
                guard written == chunk.count else {
                    throw .writeFailed(reason: "tar data of '\(entry.path)': \(archiveError(archive))")
                }
            }
            switch content {
            case let .file(path, size, _):
                try copyFile(path: path, expectedSize: size, buffer: buffer, put)
            case let .spool(offset, size):
                guard let spool else { throw .writeFailed(reason: "no spool for '\(entry.path)'") }
                try spool.read(offset: offset, size: size, put)
            }
        }
        try check(archive_write_close(archive), "finish tar stream")
        try sink.finish()
        return WrittenLayer(diffID: sink.tarHasher.finalize(), digest: sink.blobHasher.finalize(),
                            size: sink.blobSize, uncompressedSize: sink.tarSize, mediaType: compression.layerMediaType)
    }

    private func copyFile(path: String, expectedSize: Int64, buffer: UnsafeMutableRawBufferPointer,
                          _ put: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw .unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var remaining = expectedSize
        while true {
            let want = Int(min(Int64(buffer.count), max(remaining, 1)))
            let n = read(fd, buffer.baseAddress, want)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            if Int64(n) > remaining { throw .changedWhileReading(path: path) }
            remaining -= Int64(n)
            try put(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        if remaining != 0 { throw .changedWhileReading(path: path) }
    }
}

/// Receives the tar stream from libarchive: hashes it, compresses it, hashes and writes the result.
private final class TarSink {
    let compressor: StreamCompressor
    let output: Int32
    let tarHasher = SHA256Hasher()
    let blobHasher = SHA256Hasher()
    var tarSize: Int64 = 0
    var blobSize: Int64 = 0
    var failure: LayerError?

    init(compressor: StreamCompressor, output: Int32) {
        self.compressor = compressor
        self.output = output
    }

    func consume(_ bytes: UnsafeRawBufferPointer) throws(LayerError) {
        tarHasher.update(bytes)
        tarSize += Int64(bytes.count)
        try compressor.compress(bytes, emit: emit)
    }

    func finish() throws(LayerError) {
        try compressor.finish(emit: emit)
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws(LayerError) {
        blobHasher.update(bytes)
        blobSize += Int64(bytes.count)
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(output, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(reason: "output file: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}

private let tarWriteCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeRawPointer?, Int) -> Int = {
    _, client, buffer, length in
    let sink = Unmanaged<TarSink>.fromOpaque(client!).takeUnretainedValue()
    guard sink.failure == nil else { return -1 }
    do {
        try sink.consume(UnsafeRawBufferPointer(start: buffer, count: length))
        return length
    } catch let error as LayerError {
        sink.failure = error
        return -1
    } catch {
        sink.failure = .writeFailed(reason: "\(error)")
        return -1
    }
}
