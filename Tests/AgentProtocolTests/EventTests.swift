import AgentProtocol
import Glibc
import JSON
import Testing

@Suite struct EventTests {
    @Test func eventsAreOneCompactLineTaggedWithTheRequestID() throws {
        let line = Event.lines([Event.delta(id: .int(7), text: "two\nlines")])
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(line.dropLast().contains(UInt8(ascii: "\n")) == false)
        let event = try JSONParser.parse(bytes: line.dropLast())
        #expect(event == ["id": 7, "type": "delta", "text": "two\nlines"])
    }

    @Test func aBatchIsItsEventsLinesInOrder() throws {
        let bytes = Event.lines([Event.delta(id: .int(1), text: "a"), Event.delta(id: .int(1), text: "b")])
        let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[2].isEmpty)
        #expect(try JSONParser.parse(bytes: lines[0])["text"] == "a")
        #expect(try JSONParser.parse(bytes: lines[1])["text"] == "b")
    }

    @Test func startNamesTheModelOrAgentKey() {
        let normal = Event.start(id: .string("q"), agent: "a", mode: "normal", modelKey: "model", model: "m")
        #expect(normal["model"] == "m")
        let agent = Event.start(id: .string("q"), agent: "a", mode: "agent", modelKey: "agent_id", model: "ag_1")
        #expect(agent["agent_id"] == "ag_1")
        #expect(agent["model"] == nil)
    }

    @Test func errorEventsRoundTripThroughErrorInfo() {
        let info = ErrorInfo(code: .upstreamRateLimited, message: "slow down", retryable: true, status: 429)
        let event = Event.error(id: .string("q1"), info)
        #expect(event["type"] == "error")
        #expect(ErrorInfo(event: event) == info)
        #expect(Event.error(id: nil, info)["id"] == nil)
    }

    @Test func doneCarriesTheWholeReply() {
        let done = Event.done(
            id: .int(1), text: "hi", toolCalls: [], finishReason: "stop", usage: ["total_tokens": 3], model: nil)
        #expect(done["text"] == "hi")
        #expect(done["tool_calls"] == [])
        #expect(done["model"] == nil)
        #expect(done["session"] == nil)
        let continued = Event.done(
            id: .int(2), text: "hi", toolCalls: [], finishReason: "stop", usage: [:], model: nil,
            extras: Event.DoneExtras(session: "s1"))
        #expect(continued["session"] == "s1")
    }

    @Test func requestIDsAreStringsOrIntegersOnly() {
        #expect(RequestID(.string("a")) == .string("a"))
        #expect(RequestID(.int(3)) == .int(3))
        #expect(RequestID(.double(1.5)) == nil)
        #expect(RequestID(.null) == nil)
    }

    @Test func everyErrorCodeOfTheContractExists() {
        let codes = Set(ErrorCode.allCases.map(\.rawValue))
        #expect(
            codes == [
                "bad_request", "request_too_large", "unknown_request", "unknown_agent", "forbidden", "overloaded",
                "cancelled", "timeout", "upstream_auth", "upstream_rate_limited", "upstream_rejected",
                "upstream_unavailable", "upstream_protocol", "agent_error", "shutting_down", "session_busy",
                "step_limit", "internal",
            ])
    }
}

@Suite struct LineSocketClientTests {
    @Test func refusingSocketsAreConnectErrorsNamingThePath() {
        #expect(throws: LineSocketError.self) { _ = try LineSocketClient(path: "/nonexistent/agentd.sock") }
        do {
            _ = try LineSocketClient(path: "/nonexistent/agentd.sock")
        } catch {
            #expect(error.code == .connect)
            #expect(error.path == "/nonexistent/agentd.sock")
            #expect(error.errno == ENOENT)
        }
    }
}
