import NIOCore
import NIOEmbedded
import Testing

@testable import AgentDaemon

@Suite struct LineFramerTests {
    private func frame(_ chunks: [String], limit: Int = 10) throws -> [String] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFramer(maxLineBytes: { limit })))
        for chunk in chunks { try channel.writeInbound(ByteBuffer(string: chunk)) }
        try channel.close().wait()
        var lines: [String] = []
        while let item = try channel.readInbound(as: InboundLine.self) {
            switch item {
            case .line(let buffer): lines.append(String(buffer: buffer))
            case .tooLarge(let limit): lines.append("<too large: \(limit)>")
            }
        }
        // Tears the embedded pipeline down; without it LeakSanitizer reports its buffers.
        _ = try channel.finish(acceptAlreadyClosed: true)
        return lines
    }

    @Test func splitsLinesAcrossAnyChunking() throws {
        #expect(try frame(["ab\ncd", "\n", "e", "f\r\n"]) == ["ab", "cd", "ef"])
    }

    @Test func anOverLongLineIsReportedOnceAndItsBytesDropped() throws {
        #expect(try frame(["0123456789ABC", "DEF", "GHI\nok\n"]) == ["<too large: 10>", "ok"])
        #expect(try frame(["0123456789ABCDEF\nok\n"]) == ["<too large: 10>", "ok"])
    }

    @Test func aLineOfExactlyTheLimitPasses() throws {
        #expect(try frame(["0123456789\n"]) == ["0123456789"])
    }

    @Test func aLastLineWithoutNewlineCountsAtEndOfInput() throws {
        #expect(try frame(["one\ntwo"]) == ["one", "two"])
    }
}
