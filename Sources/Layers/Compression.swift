import CZlib
import CZstd
import OCI

/// How layer tarballs are compressed.
public enum Compression: String, Sendable, CaseIterable {
    case gzip
    case zstd

    /// The OCI media type of a layer compressed this way.
    public var layerMediaType: String {
        switch self {
        case .gzip: return MediaType.layerGzip
        case .zstd: return MediaType.layerZstd
        }
    }

    /// The fixed compression level. It is part of the output's identity, so it never varies.
    public var level: Int32 {
        switch self {
        case .gzip: return 6
        case .zstd: return 3
        }
    }
}

/// A streaming compressor: bytes in, compressed bytes out through `emit`.
protocol StreamCompressor: AnyObject {
    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError)
    func finish(emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError)
}

private let outputChunk = 1 << 18

/// gzip through zlib: level 6, header mtime 0, no file name, OS byte 255 ("unknown"), as every
/// reproducible image builder writes it.
final class GzipCompressor: StreamCompressor {
    private var stream = z_stream()
    private let header: UnsafeMutablePointer<gz_header>
    private let output = UnsafeMutablePointer<UInt8>.allocate(capacity: outputChunk)

    init(level: Int32) throws(LayerError) {
        header = .allocate(capacity: 1)
        header.initialize(to: gz_header())
        header.pointee.os = 255
        header.pointee.time = 0
        let status = deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                                   zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK, deflateSetHeader(&stream, header) == Z_OK else {
            throw .writeFailed(reason: "zlib could not start a gzip stream (status \(status))")
        }
    }

    deinit {
        deflateEnd(&stream)
        header.deallocate()
        output.deallocate()
    }

    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        guard let base = input.baseAddress, input.count > 0 else { return }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        try run(flush: Z_NO_FLUSH, emit: emit)
    }

    func finish(emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        stream.next_in = nil
        stream.avail_in = 0
        try run(flush: Z_FINISH, emit: emit)
    }

    private func run(flush: Int32, emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        while true {
            stream.next_out = output
            stream.avail_out = UInt32(outputChunk)
            let status = deflate(&stream, flush)
            guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                throw .writeFailed(reason: "gzip compression failed (zlib status \(status))")
            }
            let produced = outputChunk - Int(stream.avail_out)
            if produced > 0 { try emit(UnsafeRawBufferPointer(start: output, count: produced)) }
            if flush == Z_FINISH {
                if status == Z_STREAM_END { return }
            } else if stream.avail_in == 0 && stream.avail_out != 0 {
                return
            }
        }
    }
}

/// zstd through libzstd: a fixed level, a content checksum, and always at least one worker thread.
///
/// libzstd's multi-threaded mode gives the same bytes for any number of workers ≥ 1 (it splits the input
/// into jobs whose size depends on the parameters only), while single-threaded mode (0 workers) gives
/// other bytes; so the worker count is never 0 and never changes the digest.
final class ZstdCompressor: StreamCompressor {
    private let context: OpaquePointer
    private let output = UnsafeMutableRawPointer.allocate(byteCount: outputChunk, alignment: 16)

    init(level: Int32, threads: Int) throws(LayerError) {
        guard let context = ZSTD_createCCtx() else { throw .writeFailed(reason: "libzstd could not create a context") }
        self.context = context
        let settings: [(ZSTD_cParameter, Int32)] = [
            (ZSTD_c_compressionLevel, level),
            (ZSTD_c_checksumFlag, 1),
            (ZSTD_c_nbWorkers, Int32(max(1, threads))),
        ]
        for (parameter, value) in settings {
            let result = ZSTD_CCtx_setParameter(context, parameter, value)
            if ZSTD_isError(result) != 0 {
                throw .writeFailed(reason: "libzstd refused parameter \(parameter.rawValue)=\(value): \(String(cString: ZSTD_getErrorName(result))) (imgbuild needs a libzstd built with multi-threading)")
            }
        }
    }

    deinit {
        ZSTD_freeCCtx(context)
        output.deallocate()
    }

    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        guard let base = input.baseAddress, input.count > 0 else { return }
        var inBuffer = ZSTD_inBuffer(src: base, size: input.count, pos: 0)
        while inBuffer.pos < inBuffer.size {
            try step(&inBuffer, ZSTD_e_continue, emit: emit)
        }
    }

    func finish(emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        var inBuffer = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try step(&inBuffer, ZSTD_e_end, emit: emit) != 0 {}
    }

    @discardableResult
    private func step(_ inBuffer: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective,
                      emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) -> Int {
        var outBuffer = ZSTD_outBuffer(dst: output, size: outputChunk, pos: 0)
        let remaining = ZSTD_compressStream2(context, &outBuffer, &inBuffer, directive)
        if ZSTD_isError(remaining) != 0 {
            throw .writeFailed(reason: "zstd compression failed: \(String(cString: ZSTD_getErrorName(remaining)))")
        }
        if outBuffer.pos > 0 { try emit(UnsafeRawBufferPointer(start: output, count: outBuffer.pos)) }
        return remaining
    }
}
