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
