import NIOCore

/// One inbound unit of the line protocol.
enum InboundLine: Sendable {
    /// A complete line, without its `\n` (and without a `\r` before it).
    case line(ByteBuffer)
    /// A line longer than the limit; its bytes were discarded up to and including its `\n`.
    case tooLarge(limit: Int)
}

/// Splits the byte stream into lines of at most `maxLineBytes()` bytes.
///
/// NIOExtras' LineBasedFrameDecoder has no bound, and an unbounded line from a hostile client
/// would buffer without end: an over-long line is dropped as its bytes arrive and reported once,
/// and the connection stays usable. The limit is read per line so a reload that changes an
/// agent's `max_request_bytes` applies to connections already open.
struct LineFramer: ByteToMessageDecoder {
    typealias InboundOut = InboundLine

    let maxLineBytes: @Sendable () -> Int
    private var discarding = false
    private var scanned = 0

    init(maxLineBytes: @escaping @Sendable () -> Int) {
        self.maxLineBytes = maxLineBytes
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let limit = maxLineBytes()
        let view = buffer.readableBytesView
        let searchStart = view.startIndex + scanned
        guard let newline = view[searchStart...].firstIndex(of: UInt8(ascii: "\n")) else {
            if discarding || view.count > limit {
                if !discarding { context.fireChannelRead(wrapInboundOut(.tooLarge(limit: limit))) }
                discarding = true
                buffer.moveReaderIndex(forwardBy: view.count)
                scanned = 0
            } else {
                scanned = view.count
            }
            return .needMoreData
        }
        let length = newline - view.startIndex
        scanned = 0
        if discarding {
            discarding = false
            buffer.moveReaderIndex(forwardBy: length + 1)
            return .continue
        }
        guard length <= limit else {
            buffer.moveReaderIndex(forwardBy: length + 1)
            context.fireChannelRead(wrapInboundOut(.tooLarge(limit: limit)))
            return .continue
        }
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
        context.fireChannelRead(wrapInboundOut(.line(line)))
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
        // A last line without its newline still counts: `printf '{"input":"hi"}' | nc -U` works.
        while try decode(context: context, buffer: &buffer) == .continue {}
        if !discarding, buffer.readableBytes > 0 {
            let line = buffer.readSlice(length: buffer.readableBytes)!
            context.fireChannelRead(wrapInboundOut(.line(line)))
        }
        discarding = false
        scanned = 0
        return .needMoreData
    }
}
