import Foundation
import JSON
import TestSupport
import Testing

@testable import MistralEmulator

func chatBody(_ text: String, stream: Bool = true, extra: String = "") -> String {
    let content = JSONValue.string(text).jsonText
    return
        #"{"model":"mistral-small-latest","stream":\#(stream),"messages":[{"role":"user","content":\#(content)}]\#(extra)}"#
}

func conversationBody(_ text: String, stream: Bool = true) -> String {
    #"{"agent_id":"ag_0123456789abcdef0123456789abcdef","stream":\#(stream),"store":false,"inputs":\#(JSONValue.string(text).jsonText)}"#
}

/// The JSON of each data line of a chat stream, up to `[DONE]`.
func chunks(_ response: RawResponse) -> [JSONValue] {
    response.events.compactMap { try? JSONParser.parse($0.data) }
}

func streamedContent(_ response: RawResponse) -> String {
    chunks(response).compactMap { $0["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue }.joined()
}

let weatherTool =
    #","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},"metric":{"type":"boolean"},"note":{"type":"string"}},"required":["city","days","metric"]}}},{"type":"function","function":{"name":"get_time","parameters":{}}}]"#

@Suite("Replies, stream shapes and fault directives", .serialized, .blocksItsThread)
struct ReplyAndFaultTests {
    @Test func chatStreamHasMistralsShape() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/chat/completions", chatBody("hello brave world"))
            #expect(response.status == 200)
            #expect(response.header("content-type") == "text/event-stream")
            let events = response.events
            #expect(events.allSatisfy { $0.event == nil })
            #expect(events.last?.data == "[DONE]")
            let parsed = chunks(response)
            #expect(parsed.first?["choices"]?.arrayValue?.first?["delta"] == ["role": "assistant", "content": ""])
            #expect(parsed.first?["object"] == "chat.completion.chunk")
            #expect(
                parsed.dropLast().allSatisfy {
                    $0["usage"] == nil && $0["choices"]?.arrayValue?.first?["finish_reason"] == .null
                })
            let last = parsed.last!
            #expect(last["choices"]?.arrayValue?.first?["finish_reason"] == "stop")
            #expect(last["usage"] == ["prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7])
            #expect(streamedContent(response) == "Echo: hello brave world")
            #expect(parsed.count == 5)  // role chunk + one per word
        }
    }

    @Test func nonStreamResponsesHaveMistralsShape() async throws {
        try await withEmulator { server in
            let chat = try server.send("/v1/chat/completions", chatBody("hi there", stream: false)).json
            #expect(chat?["object"] == "chat.completion")
            #expect(
                chat?["choices"]?.arrayValue?.first?["message"] == [
                    "content": "Echo: hi there", "tool_calls": nil, "prefix": false, "role": "assistant",
                ])
            #expect(chat?["choices"]?.arrayValue?.first?["finish_reason"] == "stop")
            #expect(chat?["usage"]?["total_tokens"] == 5)

            let conversation = try server.send("/v1/conversations", conversationBody("hi there", stream: false)).json
            #expect(conversation?["object"] == "conversation.response")
            #expect(conversation?["conversation_id"]?.stringValue?.hasPrefix("conv_") == true)
            let output = conversation?["outputs"]?.arrayValue?.first
            #expect(output?["type"] == "message.output")
            #expect(output?["content"] == "Echo: hi there")
            #expect(conversation?["usage"]?["prompt_tokens"] == 2)

            let models = try server.send("/v1/models", nil, method: "GET").json
            #expect(models?["object"] == "list")
            #expect(models?["data"]?.arrayValue?.contains { $0["id"] == "mistral-small-latest" } == true)
        }
    }

    @Test func conversationStreamHasEventLines() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", conversationBody("good morning"))
            let events = response.events
            #expect(
                events.map(\.event) == [
                    "conversation.response.started", "message.output.delta", "message.output.delta",
                    "message.output.delta", "conversation.response.done",
                ])
            #expect(!events.contains { $0.data == "[DONE]" })
            let parsed = events.map { try? JSONParser.parse($0.data) }
            #expect(zip(events, parsed).allSatisfy { $0.event.map(JSONValue.string) == $1?["type"] })
            #expect(parsed.compactMap { $0?["content"]?.stringValue }.joined() == "Echo: good morning")
            #expect(parsed.last??["usage"]?["completion_tokens"] == 3)
        }
    }

    @Test func toolDirectiveGivesWholeParallelCallsInOneTerminalChunk() async throws {
        try await withEmulator { server in
            let response = try server.send(
                "/v1/chat/completions", chatBody("check [tool:get_weather] [tool:get_time]", extra: weatherTool))
            let parsed = chunks(response)
            #expect(parsed.count == 2)
            let choice = parsed[1]["choices"]?.arrayValue?.first
            #expect(choice?["finish_reason"] == "tool_calls")
            #expect(parsed[1]["usage"]?["total_tokens"] != nil)
            let calls = choice?["delta"]?["tool_calls"]?.arrayValue ?? []
            #expect(calls.count == 2)
            #expect(calls.map { $0["index"] } == [0, 1])
            #expect(calls[0]["function"]?["name"] == "get_weather")
            #expect(calls[0]["function"]?["arguments"] == #"{"city":"42","days":42,"metric":true}"#)
            #expect(calls[1]["function"]?["arguments"] == "{}")
            let ids = calls.compactMap { $0["id"]?.stringValue }
            #expect(ids.count == 2 && Set(ids).count == 2 && ids.allSatisfy(HistoryRules.isToolCallID))

            // The answer to the tool results is text, not the same calls again.
            let history =
                #"{"model":"mistral-small-latest","stream":false,"messages":[{"role":"user","content":"check [tool:get_weather]"},{"role":"assistant","content":"","tool_calls":[{"id":"\#(ids[0])","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","content":"sunny and warm","tool_call_id":"\#(ids[0])"}]\#(weatherTool)}"#
            let followUp = try server.send("/v1/chat/completions", history).json
            #expect(followUp?["choices"]?.arrayValue?.first?["message"]?["content"] == "Tool result: sunny and warm")

            let unknown = try server.send(
                "/v1/chat/completions", chatBody("x [tool:launch_rockets]", stream: false, extra: weatherTool)
            ).json
            #expect(unknown?["choices"]?.arrayValue?.first?["message"]?["content"] == "Echo: x")
        }
    }

    @Test func conversationToolCallsAreFunctionCallDeltas() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/conversations", conversationBody("[tool:lookup] [tool:notify] please"))
            let events = response.events
            #expect(
                events.map(\.event) == [
                    "conversation.response.started", "function.call.delta", "function.call.delta",
                    "conversation.response.done",
                ])
            let call = try JSONParser.parse(events[1].data)
            #expect(call["name"] == "lookup")
            #expect(call["arguments"] == "{}")
            #expect(call["tool_call_id"]?.stringValue.map(HistoryRules.isToolCallID) == true)
        }
    }

    @Test func wordsPrefixAndMaxTokens() async throws {
        try await withEmulator { server in
            let words = try server.send("/v1/chat/completions", chatBody("[words:10]", stream: false)).json
            let text = words?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue ?? ""
            #expect(text.split(separator: " ").count == 10)
            #expect(!text.contains("["))

            let prefixed =
                #"{"model":"mistral-small-latest","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Bonjour!","prefix":true}]}"#
            let prefix = try server.send("/v1/chat/completions", prefixed).json
            #expect(
                prefix?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue?.hasPrefix("Bonjour!")
                    == true)

            let limited = try server.send(
                "/v1/chat/completions", chatBody("[words:10]", stream: false, extra: #","max_tokens":3"#)
            ).json
            #expect(limited?["choices"]?.arrayValue?.first?["finish_reason"] == "length")
            #expect(limited?["usage"]?["completion_tokens"] == 3)
        }
    }

    /// Token counts count words as splitting by `Character.isWhitespace` does, whether the text
    /// takes the ASCII byte path or not.
    @Test(arguments: [
        "", "   ", "one", " two  words ", "tabs\tand\nnew\r\nlines\u{0B}\u{0C}end", "\u{1F}unit separator",
        "no\u{A0}break space", "ideographic\u{3000}space", "space \u{301}then a combining mark", "café au lait",
    ])
    func wordCountMatchesCharacterSplitting(text: String) {
        #expect(ReplyContext.wordCount(text) == text.split(whereSeparator: \.isWhitespace).count)
    }

    @Test func statusFaults() async throws {
        try await withEmulator { server in
            let limited = try server.send("/v1/chat/completions", chatBody("hi [fault:429]"))
            #expect(limited.status == 429)
            #expect(limited.header("retry-after") == "1")
            #expect(
                limited.json == [
                    "object": "error", "message": "Rate limit exceeded", "type": "rate_limited", "param": nil,
                    "code": "1300",
                ])
            #expect(
                try server.send("/v1/chat/completions", chatBody("hi [fault:429:retry=0]")).header("retry-after") == "0"
            )
            for status in [500, 502, 503, 504] {
                let response = try server.send("/v1/chat/completions", chatBody("hi [fault:\(status)]"))
                #expect(response.status == status)
                #expect(response.json?["object"] == "error")
            }
            let bad = try server.send("/v1/conversations", conversationBody("[fault:400]"))
            #expect(bad.status == 400)
            #expect(bad.json?["message"] == "Emulated bad request")
            #expect(try server.send("/v1/chat/completions", chatBody("[fault:agent-error]")).status == 500)
        }
    }

    @Test func countedFaultsStopAfterNRequestsPerText() async throws {
        try await withEmulator { server in
            let statuses = try (0..<4).map { _ in
                try server.send("/v1/chat/completions", chatBody("retry me [fault:503*2]")).status
            }
            #expect(statuses == [503, 503, 200, 200])
            // Another text has its own counter.
            #expect(try server.send("/v1/chat/completions", chatBody("other [fault:503*1]")).status == 503)
            #expect(try server.send("/v1/chat/completions", chatBody("other [fault:503*1]")).status == 200)
        }
    }

    @Test func malformedStreamHasANonJSONThirdEvent() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/chat/completions", chatBody("one two [fault:malformed]"))
            let events = response.events
            #expect((try? JSONParser.parse(events[0].data)) != nil)
            let firstChoice = (try? JSONParser.parse(events[1].data))?["choices"]?.arrayValue?.first
            #expect(firstChoice?["delta"]?["content"] == "Echo: ")
            #expect((try? JSONParser.parse(events[2].data)) == nil)
            let conversation = try server.send("/v1/conversations", conversationBody("one two [fault:malformed]"))
                .events
            #expect((try? JSONParser.parse(conversation[1].data))?["content"] == "Echo: ")
            #expect((try? JSONParser.parse(conversation[2].data)) == nil)
        }
    }

    @Test func agentErrorInAConversationStream() async throws {
        try await withEmulator { server in
            let events = try server.send("/v1/conversations", conversationBody("one two [fault:agent-error]")).events
            #expect(
                events.map(\.event) == [
                    "conversation.response.started", "message.output.delta", "conversation.response.error",
                ])
            let error = try JSONParser.parse(events[2].data)
            #expect(error["message"]?.stringValue != nil)
            #expect(error["code"]?.intValue != nil)
        }
    }

    @Test func resetClosesAfterTheFirstContentChunk() async throws {
        try await withEmulator { server in
            let connection = try RawConnection(port: server.port)
            connection.sendRequest(path: "/v1/chat/completions", body: chatBody("one two three [fault:reset]"))
            let end = connection.read()
            #expect(end == .reset || end == .closed)
            #expect(connection.contains(#""content":"Echo: ""#))
            #expect(!connection.contains(#""content":"one ""#))
            #expect(!connection.contains("[DONE]"))
            #expect(await server.waitForStats { $0.activeStreams == 0 }.activeStreams == 0)
        }
    }

    @Test func stallKeepsTheStreamOpenUntilTheClientLeaves() async throws {
        try await withEmulator { server in
            let connection = try RawConnection(port: server.port)
            connection.sendRequest(path: "/v1/chat/completions", body: chatBody("one two three [fault:stall]"))
            #expect(connection.read(until: { String(decoding: $0, as: UTF8.self).contains("Echo: ") }) == .matched)
            #expect(connection.read(timeout: .milliseconds(300)) == .timedOut)
            #expect(!connection.contains("one "))
            let during = await server.waitForStats { $0.activeStreams == 1 }
            #expect(during.activeStreams == 1)
            #expect(during.openConnections >= 1)
            let stats = try server.send("/_emulator/stats", nil, method: "GET", apiKey: nil).json
            #expect(stats?["active_streams"] == 1)
            withExtendedLifetime(connection) {}
        }
    }

    @Test func statsDropWhenTheClientCloses() async throws {
        try await withEmulator { server in
            var connection: RawConnection? = try RawConnection(port: server.port)
            connection?.sendRequest(path: "/v1/chat/completions", body: chatBody("[words:1000] [fault:slow]"))
            #expect(connection?.read(until: { String(decoding: $0, as: UTF8.self).contains("lorem") }) == .matched)
            #expect(await server.waitForStats { $0.activeStreams == 1 }.activeStreams == 1)
            connection = nil
            let after = await server.waitForStats { $0.activeStreams == 0 && $0.openConnections == 0 }
            #expect(after.activeStreams == 0)
            #expect(after.openConnections == 0)
            #expect(after.requests >= 1)
        }
    }

    @Test func stallHeadSendsNothing() async throws {
        try await withEmulator { server in
            let connection = try RawConnection(port: server.port)
            connection.sendRequest(path: "/v1/chat/completions", body: chatBody("[fault:stall-head]"))
            #expect(connection.read(timeout: .milliseconds(300)) == .timedOut)
            #expect(connection.received.isEmpty)
            #expect(await server.waitForStats { $0.activeStreams == 1 }.activeStreams == 1)
        }
    }

    @Test func stallAfterHeadSendsTheHeadAndNoBody() async throws {
        try await withEmulator { server in
            let connection = try RawConnection(port: server.port)
            connection.sendRequest(path: "/v1/chat/completions", body: chatBody("hi [fault:stall-after-head]"))
            #expect(connection.read(timeout: .milliseconds(300)) == .timedOut)
            #expect(connection.text.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(connection.text)")
            #expect(connection.text.hasSuffix("\r\n\r\n"), "only the head: \(connection.text)")
            #expect(await server.waitForStats { $0.activeStreams == 1 }.activeStreams == 1)
        }
    }

    @Test func slowAndDelayPaceTheResponse() async throws {
        try await withEmulator { server in
            let clock = ContinuousClock()
            let slowStart = clock.now
            let slow = try server.send("/v1/chat/completions", chatBody("a b c [fault:slow]"))
            #expect(clock.now - slowStart >= .milliseconds(400))  // six events, 100 ms apart
            #expect(streamedContent(slow) == "Echo: a b c")

            let delayStart = clock.now
            let delayed = try server.send("/v1/chat/completions", chatBody("a [delay:300]", stream: false))
            #expect(clock.now - delayStart >= .milliseconds(300))
            #expect(delayed.json?["choices"]?.arrayValue?.first?["message"]?["content"] == "Echo: a")
        }
    }

    @Test func eachEventOfAStreamIsAWriteOfItsOwnUnlessBatched() async throws {
        try await withEmulator { server in
            let response = try server.send("/v1/chat/completions", chatBody("[words:5]"))
            let chunks = try #require(response.chunks)
            #expect(chunks.count == response.events.count, "one HTTP chunk per SSE event")
            #expect(chunks.allSatisfy { String(decoding: $0, as: UTF8.self).hasSuffix("\n\n") })
        }
        try await withEmulator(streamWrites: .batched) { server in
            let response = try server.send("/v1/chat/completions", chatBody("[words:5]"))
            #expect(response.chunks?.count == 1)
            #expect(response.events.count > 5)
        }
    }

    @Test func paceSpacesTheEventsOfAStream() async throws {
        try await withEmulator { server in
            let start = ContinuousClock.now
            let response = try server.send("/v1/chat/completions", chatBody("[words:4] [pace:60]"))
            let events = response.events.count
            #expect(events >= 6)  // 4 words, the finish and [DONE]
            #expect(ContinuousClock.now - start >= .milliseconds(60 * (events - 1)))
            #expect(response.chunks?.count == events)
            #expect(streamedContent(response).split(separator: " ").count == 4)
        }
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        try await withEmulator { server in
            let connection = try RawConnection(port: server.port)
            for index in 0..<3 {
                let body = chatBody("number \(index)", stream: false)
                connection.sendRequest(path: "/v1/chat/completions", body: body, close: false)
                #expect(
                    connection.read(until: { String(decoding: $0, as: UTF8.self).contains("Echo: number \(index)") })
                        == .matched)
            }
            #expect(server.stats().openConnections >= 1)
        }
    }

    @Test func expectContinueIsAnsweredBeforeTheBody() async throws {
        try await withEmulator { server in
            let connection = try RawConnection(port: server.port)
            let body = chatBody("hi", stream: false)
            connection.send(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-key\r\nConnection: close\r\n"
                    + "Expect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
            #expect(
                connection.read(until: { String(decoding: $0, as: UTF8.self).contains("100 Continue") }) == .matched)
            connection.send(body)
            connection.read()
            #expect(connection.contains("Echo: hi"))
        }
    }

    @Test func directivesParse() {
        let directives = Directives(parsing: "hi [fault:429:retry=5*2] [tool:a] [delay:20] [words:3] [nope:x] there")
        #expect(directives.faults == [.init(fault: .status(429, retryAfter: 5), limit: 2)])
        #expect(directives.calls == [.init(name: "a", arguments: nil)])
        #expect(directives.delayMilliseconds == 20)
        #expect(directives.words == 3)
        #expect(directives.remainingWords == ["hi", "[nope:x]", "there"])
        #expect(directives.activeFaults(occurrence: 3).isEmpty)
    }
}

@Suite("The mistral-emulator executable", .blocksItsThread)
struct ExecutableTests {
    @Test func printsItsAddressFirstAndExitsZeroOnSIGTERM() throws {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let binary = packageRoot.appendingPathComponent(".build/debug/mistral-emulator")
        try #require(
            FileManager.default.isExecutableFile(atPath: binary.path), "build the mistral-emulator product first")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--port", "0", "--api-key", "k"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var line: [UInt8] = []
        while let byte = try output.fileHandleForReading.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") {
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.hasPrefix("listening on 127.0.0.1:"))
        let port = Int(text.split(separator: ":").last ?? "") ?? 0
        #expect(port > 0)
        if port > 0 {
            let connection = try RawConnection(port: port)
            connection.sendRequest(path: "/v1/chat/completions", body: chatBody("hi", stream: false), apiKey: "k")
            connection.read()
            #expect(RawResponse(connection.received)?.status == 200)
        }
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(process.terminationReason == .exit)
    }
}
