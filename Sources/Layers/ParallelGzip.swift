import CZlib
import Dispatch
import Foundation

/// gzip compressed on every core, with bytes that do not depend on the number of threads.
///
/// The input is cut into blocks of a fixed size. Each block is deflated on its own (level 6, with a
/// shorter match search: ``searchLimits``), primed with
/// the last 32 KiB of the block before it as a preset dictionary, and ended with a sync flush; the last
/// block ends the stream. The blocks' CRC-32s are combined for the trailer. This is pigz's scheme: the
/// output is one valid gzip member, and since every block's bytes depend only on its data and its
/// dictionary, any number of threads gives the same result. The header has mtime 0, no name, OS 255.
/// Blocks that look incompressible are stored (``looksIncompressible(_:)``).
final class ParallelGzipCompressor: StreamCompressor {
    /// Part of the output's identity: never change it without changing ``LayerFingerprint/writerFormat``.
    static let blockSize = 256 << 10
    static let dictionarySize = 32 << 10
    /// zlib's level 6 match search with its hash chains cut from 128 to 64 links: also part of the
    /// output's identity. On a mix of C headers, Perl sources and shared libraries this makes output
    /// 0.4 % larger and deflate 1.2× faster; on repetitive text (few distinct words), 1.4× faster, since
    /// long chains are where level 6 spends its time. See the README's Performance section.
    static let searchLimits = (goodLength: Int32(8), maxLazy: Int32(16), niceLength: Int32(128), maxChain: Int32(64))

    private let level: Int32
    private let window: Int
    private var block: [UInt8] = []
    private var dictionary: [UInt8] = []
    private var pending: [Job] = []
    private var crc: UInt = 0
    private var length: UInt64 = 0
    private var wroteHeader = false
    private let queue = DispatchQueue(label: "imgbuild.gzip", attributes: .concurrent)

    /// One block being compressed.
    private final class Job: @unchecked Sendable {
        let input: [UInt8]
        let dictionary: [UInt8]
        let last: Bool
        let level: Int32
        let done = DispatchSemaphore(value: 0)
        var output: [UInt8] = []
        var crc: UInt = 0
        var failure: Int32?

        init(input: [UInt8], dictionary: [UInt8], last: Bool, level: Int32) {
            self.input = input
            self.dictionary = dictionary
            self.last = last
            self.level = level
        }

        func run() {
            defer { done.signal() }
            crc = input.withUnsafeBufferPointer { UInt(crc32(0, $0.baseAddress, UInt32($0.count))) }
            var stream = z_stream()
            let effort = ParallelGzipCompressor.looksIncompressible(input) ? 0 : level
            var status = deflateInit2_(&stream, effort, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
            guard status == Z_OK else { failure = status; return }
            defer { deflateEnd(&stream) }
            if effort != 0 {
                let tuning = ParallelGzipCompressor.searchLimits
                status = deflateTune(&stream, tuning.goodLength, tuning.maxLazy, tuning.niceLength, tuning.maxChain)
                guard status == Z_OK else { failure = status; return }
            }
            if !dictionary.isEmpty {
                status = dictionary.withUnsafeBufferPointer { deflateSetDictionary(&stream, $0.baseAddress, UInt32($0.count)) }
                guard status == Z_OK else { failure = status; return }
            }
            let capacity = Int(deflateBound(&stream, UInt(input.count))) + 64
            output = [UInt8](repeating: 0, count: capacity)
            let flush = last ? Z_FINISH : Z_SYNC_FLUSH
            status = input.withUnsafeBufferPointer { source in
                output.withUnsafeMutableBufferPointer { target in
                    stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                    stream.avail_in = UInt32(source.count)
                    stream.next_out = target.baseAddress
                    stream.avail_out = UInt32(target.count)
                    return deflate(&stream, flush)
                }
            }
            guard (last && status == Z_STREAM_END) || (!last && status == Z_OK && stream.avail_in == 0) else { failure = status; return }
            output.removeLast(Int(stream.avail_out))
        }
    }

    /// Whether a block is already compressed or random, judged from its first 16 KiB at level 1 (saving
    /// under 3%). Such a block is stored rather than searched for matches: zlib would store it anyway
    /// after a full search, so the output barely grows while the work mostly vanishes. The decision
    /// depends on the block's bytes alone, so the output still does not depend on the thread count.
    static func looksIncompressible(_ block: [UInt8]) -> Bool {
        let sampleSize = min(block.count, 16 << 10)
        guard sampleSize >= 4096 else { return false }
        var stream = z_stream()
        guard deflateInit2_(&stream, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return false }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(sampleSize))) + 16)
        let produced = block.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target -> Int in
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                stream.avail_in = UInt32(sampleSize)
                stream.next_out = target.baseAddress
                stream.avail_out = UInt32(target.count)
                guard deflate(&stream, Z_FINISH) == Z_STREAM_END else { return Int.max }
                return target.count - Int(stream.avail_out)
            }
        }
        return produced >= sampleSize * 97 / 100
    }

    init(level: Int32, threads: Int) {
        self.level = level
        self.window = max(2, threads * 2)
        block.reserveCapacity(ParallelGzipCompressor.blockSize)
    }

    func compress(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        try writeHeader(emit)
        var rest = input[...]
        while !rest.isEmpty {
            let take = min(ParallelGzipCompressor.blockSize - block.count, rest.count)
            block.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
            if block.count == ParallelGzipCompressor.blockSize { try submit(last: false, emit: emit) }
        }
    }

    func finish(emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        try writeHeader(emit)
        try submit(last: true, emit: emit)
        while !pending.isEmpty { try emitOldest(emit) }
        var trailer = [UInt8](repeating: 0, count: 8)
        for index in 0..<4 {
            trailer[index] = UInt8(truncatingIfNeeded: crc >> (8 * index))
            trailer[4 + index] = UInt8(truncatingIfNeeded: length >> (8 * index))
        }
        try send(trailer, emit)
    }

    private func writeHeader(_ emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        guard !wroteHeader else { return }
        wroteHeader = true
        let header: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]
        try send(header, emit)
    }

    private func submit(last: Bool, emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        let job = Job(input: block, dictionary: dictionary, last: last, level: level)
        dictionary = Array(block.suffix(ParallelGzipCompressor.dictionarySize))
        block.removeAll(keepingCapacity: true)
        pending.append(job)
        queue.async { job.run() }
        // Emit what is ready; wait for the oldest only when the window is full.
        while let oldest = pending.first {
            if pending.count >= window {
                try emitOldest(emit)
            } else if oldest.done.wait(timeout: .now()) == .success {
                oldest.done.signal()
                try emitOldest(emit)
            } else {
                break
            }
        }
    }

    private func emitOldest(_ emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        let job = pending.removeFirst()
        job.done.wait()
        if let failure = job.failure { throw .writeFailed(reason: "gzip compression failed (zlib status \(failure))") }
        crc = UInt(crc32_combine(uLong(crc), uLong(job.crc), off_t(job.input.count)))
        length &+= UInt64(job.input.count)
        try send(job.output, emit)
    }

    private func send(_ bytes: [UInt8], _ emit: (UnsafeRawBufferPointer) throws(LayerError) -> Void) throws(LayerError) {
        var failure: LayerError?
        bytes.withUnsafeBytes { raw in
            do throws(LayerError) { try emit(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }
}
