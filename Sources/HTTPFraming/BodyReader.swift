/// Finds where a message body ends in bytes as they arrive, checking its chunked framing on the way,
/// without copying it: a relay passes the bytes on as they are (or only the chunks' data, to dechunk).
public struct BodyReader: Sendable {
    /// The longest chunk extension accepted on one chunk's size line.
    public static let extensionLimit = 4096
    /// The largest trailer section accepted.
    public static let trailerLimit = 16 * 1024

    private enum State: Sendable {
        case length(remaining: UInt64)
        case untilClose
        /// Reading a chunk's size: its value so far and how many digits it had.
        case size(value: UInt64, digits: Int)
        /// Whitespace after the size, before `;` or CR.
        case sizeSpace(value: UInt64)
        case chunkExtension(value: UInt64, length: Int)
        case sizeLF(value: UInt64)
        case data(remaining: UInt64)
        case dataCR
        case dataLF
        /// At the start of a trailer line, or of the empty line that ends the body.
        case trailerLineStart(total: Int)
        case trailerName(total: Int)
        case trailerValue(total: Int)
        case trailerLF(total: Int)
        case endLF
        case complete
    }

    private var state: State

    public init(_ framing: BodyFraming) {
        switch framing {
        case .none: state = .complete
        case .length(let count): state = count == 0 ? .complete : .length(remaining: count)
        case .chunked: state = .size(value: 0, digits: 0)
        case .untilClose: state = .untilClose
        }
    }

    /// The body has ended (a body delimited by the connection's end never does).
    public var isComplete: Bool {
        if case .complete = state { return true }
        return false
    }

    /// Reads the body's bytes from the start of `bytes` and returns how many belong to it: the rest, if
    /// any, follows the body. `payload` is called with each range that is content (a chunk's data,
    /// or all of a body that is not chunked), in order.
    public mutating func read(_ bytes: UnsafeRawBufferPointer, payload: (Range<Int>) -> Void = { _ in }) throws(FramingError) -> Int {
        var position = 0
        let count = bytes.count
        while position < count {
            switch state {
            case .complete:
                return position
            case .untilClose:
                payload(position..<count)
                return count
            case .length(let remaining):
                let taken = Int(min(remaining, UInt64(count - position)))
                payload(position..<position + taken)
                position += taken
                state = remaining == UInt64(taken) ? .complete : .length(remaining: remaining - UInt64(taken))
            case .data(let remaining):
                let taken = Int(min(remaining, UInt64(count - position)))
                payload(position..<position + taken)
                position += taken
                state = remaining == UInt64(taken) ? .dataCR : .data(remaining: remaining - UInt64(taken))
            default:
                try step(bytes[position])
                position += 1
            }
        }
        return position
    }

    /// One byte of the chunked framing outside chunk data.
    private mutating func step(_ byte: UInt8) throws(FramingError) {
        switch state {
        case .size(let value, let digits):
            if ByteClass.table[Int(byte)] & ByteClass.hex != 0 {
                // 15 digits: under 2^60, so no size can overflow.
                guard digits < 15 else { throw .malformedChunk }
                state = .size(value: value << 4 | ASCII.hexValue(byte), digits: digits + 1)
                return
            }
            guard digits > 0 else { throw .malformedChunk }
            if ASCII.isWhitespace(byte) {
                state = .sizeSpace(value: value)
            } else {
                try endOfSize(byte, value: value)
            }
        case .sizeSpace(let value):
            // Whitespace after the size may only come before an extension (BWS ";"), never before CRLF.
            if byte == ASCII.semicolon {
                state = .chunkExtension(value: value, length: 0)
            } else if !ASCII.isWhitespace(byte) {
                throw .malformedChunk
            }
        case .chunkExtension(let value, let length):
            if byte == ASCII.cr {
                state = .sizeLF(value: value)
            } else {
                guard ByteClass.table[Int(byte)] & ByteClass.fieldValue != 0, length < Self.extensionLimit else { throw .malformedChunk }
                state = .chunkExtension(value: value, length: length + 1)
            }
        case .sizeLF(let value):
            guard byte == ASCII.lf else { throw .malformedChunk }
            state = value == 0 ? .trailerLineStart(total: 0) : .data(remaining: value)
        case .dataCR:
            guard byte == ASCII.cr else { throw .malformedChunk }
            state = .dataLF
        case .dataLF:
            guard byte == ASCII.lf else { throw .malformedChunk }
            state = .size(value: 0, digits: 0)
        case .trailerLineStart(let total):
            if byte == ASCII.cr {
                state = .endLF
            } else {
                // A trailer field's name starts here; folding and empty names are refused.
                guard ByteClass.table[Int(byte)] & ByteClass.token != 0 else { throw .malformedChunk }
                state = .trailerName(total: try counted(total))
            }
        case .trailerName(let total):
            if byte == ASCII.colon {
                state = .trailerValue(total: try counted(total))
            } else {
                guard ByteClass.table[Int(byte)] & ByteClass.token != 0 else { throw .malformedChunk }
                state = .trailerName(total: try counted(total))
            }
        case .trailerValue(let total):
            if byte == ASCII.cr {
                state = .trailerLF(total: try counted(total))
            } else {
                guard ByteClass.table[Int(byte)] & ByteClass.fieldValue != 0 else { throw .malformedChunk }
                state = .trailerValue(total: try counted(total))
            }
        case .trailerLF(let total):
            guard byte == ASCII.lf else { throw .malformedChunk }
            state = .trailerLineStart(total: try counted(total))
        case .endLF:
            guard byte == ASCII.lf else { throw .malformedChunk }
            state = .complete
        case .length, .untilClose, .data, .complete:
            preconditionFailure("BodyReader.step called outside the chunked framing")
        }
    }

    private mutating func endOfSize(_ byte: UInt8, value: UInt64) throws(FramingError) {
        switch byte {
        case ASCII.semicolon: state = .chunkExtension(value: value, length: 0)
        case ASCII.cr: state = .sizeLF(value: value)
        default: throw .malformedChunk
        }
    }

    private func counted(_ total: Int) throws(FramingError) -> Int {
        guard total < Self.trailerLimit else { throw .trailersTooLarge(limit: Self.trailerLimit) }
        return total + 1
    }
}
