/// A tool's stdout, kept up to a byte limit and counted beyond it.
///
/// The reader goes on reading after the limit so that the child never blocks on a full pipe
/// (and so never outlives its usefulness waiting for a reader); only the count is kept.
struct CappedOutput: Sendable {
    let limit: Int
    private(set) var kept: [UInt8] = []
    private(set) var discardedByteCount = 0

    init(limit: Int) {
        self.limit = limit
    }

    var isCut: Bool { discardedByteCount > 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let room = max(0, limit - kept.count)
        let keptCount = min(room, bytes.count)
        kept.append(contentsOf: bytes.prefix(keptCount))
        discardedByteCount += bytes.count - keptCount
    }

    /// The output as the model sees it: UTF-8 with invalid bytes replaced by U+FFFD, and when
    /// cut, without a character split by the cut and ending in `\n[output cut at N bytes]`.
    var text: String {
        guard isCut else { return String(decoding: kept, as: UTF8.self) }
        let whole = kept.prefix(Self.lengthWithoutSplitCharacter(kept))
        return String(decoding: whole, as: UTF8.self) + "\n[output cut at \(limit) bytes]"
    }

    /// How much of `bytes` remains once a UTF-8 sequence that the cut left incomplete is dropped,
    /// so that the cut shows as the marker rather than as a stray replacement character.
    static func lengthWithoutSplitCharacter(_ bytes: [UInt8]) -> Int {
        // Walk back over at most three continuation bytes (10xxxxxx) to the lead byte.
        var leadIndex = bytes.count - 1
        while leadIndex >= 0, bytes.count - leadIndex <= 3, bytes[leadIndex] & 0b1100_0000 == 0b1000_0000 {
            leadIndex -= 1
        }
        guard leadIndex >= 0 else { return bytes.count }
        let lead = bytes[leadIndex]
        let sequenceLength: Int
        if lead & 0b1110_0000 == 0b1100_0000 {
            sequenceLength = 2
        } else if lead & 0b1111_0000 == 0b1110_0000 {
            sequenceLength = 3
        } else if lead & 0b1111_1000 == 0b1111_0000 {
            sequenceLength = 4
        } else {
            return bytes.count  // ASCII, or invalid bytes that decoding will repair anyway
        }
        return bytes.count - leadIndex < sequenceLength ? leadIndex : bytes.count
    }
}

/// Splits a tool's stderr into lines for the journal, with two caps.
///
/// Each line is cut at ``maxLineBytes`` (4 KiB): longer than any diagnostic a person reads,
/// and it keeps one journal entry small however a tool writes (a binary blob or a progress
/// bar without newlines is one endless "line"). At most ``maxBytesPerCall`` (64 KiB) per call
/// go to the journal at all: a tool stuck printing the same error in a loop, called by the
/// model several times a request, must not be able to flush everything else out of the
/// journal's rate limit and disk budget. What is over is read and dropped, never left in the
/// pipe, and the drop is said once.
struct StderrLineSplitter {
    static let maxLineBytes = 4 * 1024
    static let maxBytesPerCall = 64 * 1024

    private var line: [UInt8] = []
    private var lineWasCut = false
    private var handedOverBytes = 0
    private var budgetExhausted = false

    /// Feeds a chunk of stderr; `emit` gets each complete line, without its newline.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (String) -> Void) {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                endLine(emit: emit)
            } else if line.count < Self.maxLineBytes {
                line.append(byte)
            } else {
                lineWasCut = true
            }
        }
    }

    /// Emits the last line when stderr ended without a newline.
    mutating func finish(emit: (String) -> Void) {
        if !line.isEmpty || lineWasCut { endLine(emit: emit) }
    }

    private mutating func endLine(emit: (String) -> Void) {
        defer {
            line.removeAll(keepingCapacity: true)
            lineWasCut = false
        }
        guard !budgetExhausted else { return }
        guard handedOverBytes + line.count <= Self.maxBytesPerCall else {
            budgetExhausted = true
            emit("[stderr cut at \(Self.maxBytesPerCall) bytes]")
            return
        }
        handedOverBytes += line.count
        let text = String(decoding: line, as: UTF8.self)
        emit(lineWasCut ? text + " [line cut at \(Self.maxLineBytes) bytes]" : text)
    }
}
