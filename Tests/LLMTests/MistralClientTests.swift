import AgentProtocol
import Curl
import JSON
import Logging
import MistralEmulator
import TestSupport
import Testing

@testable import LLM

/// The client through real libcurl over loopback against the in-process emulator.
@Suite("Mistral client against the emulator")
struct MistralClientTests {
    static let key = "sk-test-0123456789"
    static let agentID = "ag_0684fe0e0b98773e8000323fc71a3986"
    static let fastRetry = RetryPolicy(attempts: 3, baseDelay: .milliseconds(1), maxDelay: .milliseconds(5))
    static let lookup = ToolSpec(
        name: "lookup", description: "Look up",
        parameters: ["type": "object", "properties": ["q": ["type": "string"]], "required": ["q"]]
    )

    /// One emulator and one curl client per test, both shut down at the end.
    private func withEmulator(
        apiKey: String? = key, _ body: (MistralEmulatorServer, CurlClient) async throws -> Void
    ) async throws {
        let server = try await MistralEmulatorServer.start(EmulatorConfiguration(apiKey: Self.key))
        let curl = try CurlClient()
        do {
            try await body(server, curl)
        } catch {
            curl.shutdown()
            try await server.shutdown()
            throw error
        }
        curl.shutdown()
        try await server.shutdown()
    }

    private func client(_ server: MistralEmulatorServer, _ curl: CurlClient, key: String? = key) -> MistralClient {
        MistralClient(
            baseURL: server.baseURL, apiKey: key, userAgent: "agentd/test", transport: curl,
            logger: Logger(label: "test"))
    }

    private func request(
        _ messages: [ChatMessage], stream: Bool = true,
        timeouts: Timeouts = Timeouts(
            total: .seconds(10), firstByte: .seconds(5), idle: .seconds(5), connect: .seconds(2))
    ) -> LLMRequest {
        request(.chatCompletions(model: "mistral-small-latest"), messages, stream: stream, timeouts: timeouts)
    }

    private func request(
        _ upstream: Upstream, _ messages: [ChatMessage],
        tools: [ToolSpec] = [], options: GenerationOptions = .init(), stream: Bool = true,
        timeouts: Timeouts = Timeouts(
            total: .seconds(10), firstByte: .seconds(5), idle: .seconds(5), connect: .seconds(2))
    ) -> LLMRequest {
        LLMRequest(
            upstream: upstream, system: [], tools: tools, options: options, messages: messages,
            timeouts: timeouts, retry: Self.fastRetry, stream: stream)
    }

    /// Every event, and the error that ended the stream if any.
    private func run(_ client: MistralClient, _ request: LLMRequest) async -> (events: [LLMEvent], error: ErrorInfo?) {
        var events: [LLMEvent] = []
        do {
            try await client.run(request) { batch in
                #expect(!batch.isEmpty)
                events += batch
            }
            return (events, nil)
        } catch {
            return (events, error as? ErrorInfo ?? ErrorInfo(code: .internal, message: "not an ErrorInfo: \(error)"))
        }
    }

    private func completion(_ events: [LLMEvent]) -> Completion? {
        if case .done(let completion)? = events.last { return completion }
        return nil
    }

    private func deltas(_ events: [LLMEvent]) -> String {
        events.map { if case .text(let text) = $0 { text } else { "" } }.joined()
    }

    @Test(
        "every upstream, streaming and not, answers with text, usage and finish reason",
        arguments: [
            (Upstream.chatCompletions(model: "mistral-small-latest"), true),
            (.chatCompletions(model: "mistral-small-latest"), false),
            (.conversations(agentID: agentID), true), (.conversations(agentID: agentID), false),
            (.agentCompletions(agentID: agentID), true), (.agentCompletions(agentID: agentID), false),
        ]
    )
    func replies(upstream: Upstream, stream: Bool) async throws {
        try await withEmulator { server, curl in
            let (events, error) = await run(
                client(server, curl), request(upstream, [user("hello there friend")], stream: stream))
            #expect(error == nil)
            let done = try #require(completion(events))
            #expect(done.text == "Echo: hello there friend")
            #expect(deltas(events) == done.text)
            #expect(done.finishReason == "stop")
            #expect(done.usage.completionTokens == 4)
            #expect(done.usage.totalTokens == done.usage.promptTokens + 4)
            #expect(done.model != nil)
            if stream { #expect(events.count > 2, "text arrives in several deltas") }
        }
    }

    @Test(
        "tool calls in both modes, as toolCall events and in done, streaming and not",
        arguments: [
            (Upstream.chatCompletions(model: "mistral-small-latest"), true),
            (.chatCompletions(model: "mistral-small-latest"), false),
            (.conversations(agentID: agentID), true), (.conversations(agentID: agentID), false),
        ])
    func toolCalls(upstream: Upstream, stream: Bool) async throws {
        try await withEmulator { server, curl in
            let tools = upstream.isAgent ? [] : [Self.lookup]
            let (events, error) = await run(
                client(server, curl), request(upstream, [user("find it [tool:lookup]")], tools: tools, stream: stream)
            )
            #expect(error == nil)
            let done = try #require(completion(events))
            #expect(done.finishReason == "tool_calls")
            #expect(done.toolCalls.count == 1)
            #expect(done.toolCalls.first?.name == "lookup")
            #expect(done.toolCalls.first.map { ToolCallIDMap.isWireForm($0.id) } == true)
            #expect(events.first == .toolCall(done.toolCalls[0]))
            if !upstream.isAgent { #expect(done.toolCalls.first?.arguments == ["q": "42"]) }
        }
    }

    @Test(
        "every fixup end to end: odd ids, tool then user, late system, names, trailing assistant with a forced tool choice"
    )
    func fixupsEndToEnd() async throws {
        try await withEmulator { server, curl in
            let history = [
                system("be brief"), user("start", name: "alice"), assistant(nil, calls: ["call_1", "toolu_02"]),
                tool("toolu_02", "b"), tool("call_1", "a"), user("then"), system("late note"),
                assistant(nil, calls: ["x"]), tool("x", "done"), user("more"), assistant("Once upon"),
            ]
            for upstream in [
                Upstream.chatCompletions(model: "mistral-small-latest"), .conversations(agentID: Self.agentID),
                .agentCompletions(agentID: Self.agentID),
            ] {
                let tools = upstream == .chatCompletions(model: "mistral-small-latest") ? [Self.lookup] : []
                let (events, error) = await run(
                    client(server, curl),
                    request(upstream, history, tools: tools, options: GenerationOptions(toolChoice: .any))
                )
                #expect(error == nil, "\(upstream): \(String(describing: error))")
                #expect(completion(events)?.text.hasPrefix("Once upon") == true, "\(upstream): the prefix is continued")
            }
            // A trailing tool result is answered, with no blank assistant after it.
            let (events, error) = await run(
                client(server, curl),
                request(
                    .chatCompletions(model: "mistral-small-latest"),
                    [user("q"), assistant(nil, calls: ["my-call"]), tool("my-call", "42 apples")])
            )
            #expect(error == nil)
            #expect(completion(events)?.text == "Tool result: 42 apples")
        }
    }

    @Test("generated histories, fixed up, are all accepted by the emulator")
    func generatedHistoriesAccepted() async throws {
        try await withEmulator { server, curl in
            let mistral = client(server, curl)
            var generator = SplitMix64(seed: 42)
            var sent = 0
            while sent < 500 {
                let history = randomRepairableHistory(using: &generator)
                let (events, error) = await run(
                    mistral, request(.chatCompletions(model: "mistral-small-latest"), history, stream: sent % 2 == 0))
                #expect(error == nil, "\(history): \(String(describing: error))")
                #expect(completion(events) != nil)
                sent += 1
            }
            #expect(server.stats().requests == 500)
        }
    }

    /// Valid-call histories in any role order (the fixups' job is the rest).
    private func randomRepairableHistory(using generator: inout SplitMix64) -> [ChatMessage] {
        var messages: [ChatMessage] = []
        var counter = 0
        for _ in 0..<Int.random(in: 1...8, using: &generator) {
            switch Int.random(in: 0..<6, using: &generator) {
            case 0: messages.append(system("note"))
            case 1, 2: messages.append(user("word \(counter)", name: Bool.random(using: &generator) ? "n" : nil))
            case 3: messages.append(assistant("reply", prefix: Bool.random(using: &generator)))
            default:
                let ids = (0..<Int.random(in: 1...3, using: &generator)).map { _ in
                    counter += 1
                    return ["call_\(counter)", "Q\(counter)w", "abcdefgh\(counter % 10)"].randomElement(
                        using: &generator)!
                }
                let unique = Array(Set(ids))
                messages.append(assistant(nil, calls: unique))
                for id in unique.shuffled(using: &generator) { messages.append(tool(id, "r")) }
            }
        }
        if messages.first?.role != .user, messages.first?.role != .system { messages.insert(user("hi"), at: 0) }
        if messages.allSatisfy({ $0.role == .system }) { messages.append(user("hi")) }
        return messages
    }

    @Test("a wrong key is upstream_auth, and the key appears nowhere")
    func wrongKey() async throws {
        try await withEmulator { server, curl in
            let (_, error) = await run(client(server, curl, key: "sk-wrong-secret"), request([user("hi")]))
            #expect(error?.code == .upstreamAuth)
            #expect(error?.status == 401)
            #expect(error?.retryable == false)
            #expect(error?.message.contains("sk-wrong-secret") == false)
        }
    }

    @Test("no key: upstream_auth saying how to configure one, without calling upstream")
    func missingKey() async throws {
        try await withEmulator { server, curl in
            let (_, error) = await run(client(server, curl, key: nil), request([user("hi")]))
            #expect(error?.code == .upstreamAuth)
            #expect(error?.message.contains("MISTRAL_API_KEY") == true)
            #expect(server.stats().requests == 0)
        }
    }

    @Test("429 is retried and then succeeds")
    func rateLimitRetried() async throws {
        try await withEmulator { server, curl in
            let (events, error) = await run(client(server, curl), request([user("hi [fault:429:retry=0*1]")]))
            #expect(error == nil)
            #expect(completion(events)?.text == "Echo: hi")
            #expect(server.stats().requests == 2)
        }
    }

    @Test("Retry-After is honoured")
    func retryAfterHonoured() async throws {
        try await withEmulator { server, curl in
            let start = ContinuousClock.now
            let (_, error) = await run(client(server, curl), request([user("hi [fault:429:retry=1*1]")]))
            #expect(error == nil)
            #expect(ContinuousClock.now - start >= .milliseconds(900), "the 1 s Retry-After, not the 1 ms backoff")
        }
    }

    @Test("429 beyond the attempts is upstream_rate_limited, retryable")
    func rateLimitExhausted() async throws {
        try await withEmulator { server, curl in
            let (_, error) = await run(client(server, curl), request([user("hi [fault:429:retry=0]")]))
            #expect(error?.code == .upstreamRateLimited)
            #expect(error?.retryable == true)
            #expect(error?.message.contains("Rate limit exceeded") == true)
            #expect(server.stats().requests == 3)
        }
    }

    @Test("persistent 503 is upstream_unavailable after every attempt")
    func persistent503() async throws {
        try await withEmulator { server, curl in
            let (_, error) = await run(client(server, curl), request([user("hi [fault:503]")]))
            #expect(error?.code == .upstreamUnavailable)
            #expect(error?.status == 503)
            #expect(error?.retryable == true)
            #expect(server.stats().requests == 3)
        }
    }

    @Test("400 is upstream_rejected with Mistral's message, not retried")
    func rejected() async throws {
        try await withEmulator { server, curl in
            let (_, error) = await run(client(server, curl), request([user("hi [fault:400]")]))
            #expect(error?.code == .upstreamRejected)
            #expect(error?.message.contains("Emulated bad request") == true)
            #expect(server.stats().requests == 1)
            let (_, model) = await run(
                client(server, curl), request(.chatCompletions(model: "no-such-model"), [user("hi")]))
            #expect(model?.code == .upstreamRejected)
            #expect(model?.message.contains("Invalid model: no-such-model") == true)
        }
    }

    @Test(
        "an unknown agent is agent_error",
        arguments: [
            Upstream.conversations(agentID: "ag_dead0e0b98773e8000323fc71a3986"),
            .agentCompletions(agentID: "ag_dead0e0b98773e8000323fc71a3986"),
        ])
    func unknownAgent(upstream: Upstream) async throws {
        try await withEmulator { server, curl in
            let (_, error) = await run(client(server, curl), request(upstream, [user("hi")]))
            #expect(error?.code == .agentError)
            #expect(error?.message.contains("not found") == true)
        }
    }

    @Test("a reset after the first delta is upstream_unavailable and is not retried")
    func resetAfterOutput() async throws {
        try await withEmulator { server, curl in
            let (events, error) = await run(client(server, curl), request([user("hi there [fault:reset*1]")]))
            #expect(error?.code == .upstreamUnavailable)
            #expect(deltas(events) == "Echo: ", "the first delta reached the consumer")
            #expect(server.stats().requests == 1, "no retry once output was yielded, though a retry would succeed")
        }
    }

    @Test("a reset before any output (non-stream) is retried")
    func resetBeforeOutput() async throws {
        try await withEmulator { server, curl in
            let (events, error) = await run(
                client(server, curl), request([user("hi there [fault:reset*1]")], stream: false))
            #expect(error == nil)
            #expect(completion(events)?.text == "Echo: hi there")
            #expect(server.stats().requests == 2)
        }
    }

    @Test("a stalled stream is a timeout")
    func stall() async throws {
        try await withEmulator { server, curl in
            let timeouts = Timeouts(
                total: .seconds(5), firstByte: .seconds(2), idle: .milliseconds(300), connect: .seconds(1))
            let (_, error) = await run(client(server, curl), request([user("hi [fault:stall]")], timeouts: timeouts))
            #expect(error?.code == .timeout)
            let (_, head) = await run(
                client(server, curl),
                request(
                    [user("hi [fault:stall-head]")],
                    timeouts: Timeouts(
                        total: .seconds(5), firstByte: .milliseconds(300), idle: .seconds(1), connect: .seconds(1))))
            #expect(head?.code == .timeout)
        }
    }

    @Test("a malformed stream is upstream_protocol, after the text that came before the bad event")
    func malformed() async throws {
        try await withEmulator { server, curl in
            for upstream in [
                Upstream.chatCompletions(model: "mistral-small-latest"), .conversations(agentID: Self.agentID),
            ] {
                let (events, error) = await run(
                    client(server, curl), request(upstream, [user("hi there [fault:malformed]")]))
                #expect(error?.code == .upstreamProtocol)
                // The bad event arrives in the same read as the first word: that word still goes out.
                #expect(events == [.text("Echo: ")])
            }
        }
    }

    @Test("an agent failing mid-conversation is agent_error")
    func agentFailure() async throws {
        try await withEmulator { server, curl in
            let (_, error) = await run(
                client(server, curl),
                request(.conversations(agentID: Self.agentID), [user("hi there [fault:agent-error]")]))
            #expect(error?.code == .agentError)
        }
    }

    @Test("connection refused is upstream_unavailable after the attempts")
    func connectionRefused() async throws {
        let server = try await MistralEmulatorServer.start(EmulatorConfiguration())
        let baseURL = server.baseURL
        try await server.shutdown()
        let curl = try CurlClient()
        defer { curl.shutdown() }
        let mistral = MistralClient(
            baseURL: baseURL, apiKey: Self.key, userAgent: "agentd/test", transport: curl, logger: Logger(label: "test")
        )
        let (_, error) = await run(mistral, request([user("hi")]))
        #expect(error?.code == .upstreamUnavailable)
        #expect(error?.retryable == true)
    }

    @Test("cancelling the caller closes the upstream transfer within a second")
    func cancellationClosesUpstream() async throws {
        try await withEmulator { server, curl in
            let mistral = client(server, curl)
            let consumer = Task { () -> (Bool, ErrorCode?) in
                var sawDone = false
                do {
                    try await mistral.run(request([user("go [fault:slow] [words:200]")])) { batch in
                        if case .done = batch.last { sawDone = true }
                    }
                } catch let error as ErrorInfo {
                    return (sawDone, error.code)
                }
                return (sawDone, nil)
            }
            while server.stats().activeStreams == 0 { try await Task.sleep(for: .milliseconds(10)) }
            try await Task.sleep(for: .milliseconds(250))
            consumer.cancel()
            let cancelledAt = ContinuousClock.now
            while server.stats().activeStreams > 0, ContinuousClock.now - cancelledAt < .seconds(1) {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(server.stats().activeStreams == 0)
            let (sawDone, code) = try await consumer.value
            #expect(!sawDone)
            #expect(code == .cancelled)
        }
    }

    @Test("answered does not run for a reply whose text comes with its head, nor for an error")
    func answeredNotForAReplyThatComesWithItsHead() async throws {
        try await withEmulator { server, curl in
            let mistral = client(server, curl)
            func outcome(_ text: String) async -> (answered: Int, batches: Int, error: ErrorCode?) {
                var answered = 0
                var batches = 0
                do {
                    try await mistral.run(request([user(text)])) {
                        answered += 1
                    } deliver: { _ in
                        batches += 1
                    }
                    return (answered, batches, nil)
                } catch {
                    return (answered, batches, (error as? ErrorInfo)?.code)
                }
            }
            let whole = await outcome("all at once")
            #expect(whole.answered == 0 && whole.batches == 1 && whole.error == nil, "\(whole)")
            // Paced chunks: the first comes with the head, so the body is there from the start.
            let slow = await outcome("a b [fault:slow]")
            #expect(slow.answered == 0 && slow.error == nil, "\(slow)")
            let refused = await outcome("hi [fault:429:retry=0]")
            #expect(refused.answered == 0 && refused.error == .upstreamRateLimited, "\(refused)")
        }
    }

    @Test("answered runs for a head that comes without its body; what it throws closes the transfer and comes back")
    func answeredForAHeadWithoutItsBody() async throws {
        struct ClientGone: Error {}
        try await withEmulator { server, curl in
            let mistral = client(server, curl)
            // The body never comes: the idle timeout must not end the transfer before the task,
            // resumed by the head, runs `answered` (under TSan, with the whole suite running, it
            // was resumed more than 5 s later).
            let patient = Timeouts(total: .seconds(120), firstByte: .seconds(60), idle: .seconds(60))
            await #expect(throws: ClientGone.self) {
                try await mistral.run(request([user("go [fault:stall-after-head]")], timeouts: patient)) {
                    #expect(server.stats().activeStreams == 1)
                    throw ClientGone()
                } deliver: { _ in
                    Issue.record("no batch after answered failed")
                }
            }
            #expect(server.stats().requests == 1, "not retried")
            let thrownAt = ContinuousClock.now
            while server.stats().activeStreams > 0, ContinuousClock.now - thrownAt < .seconds(1) {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(server.stats().activeStreams == 0)
        }
    }

    @Test("an error thrown by deliver closes the upstream transfer and comes back unchanged")
    func deliverErrorClosesUpstream() async throws {
        struct ClientGone: Error {}
        try await withEmulator { server, curl in
            let mistral = client(server, curl)
            var batches = 0
            await #expect(throws: ClientGone.self) {
                try await mistral.run(request([user("go [fault:slow] [words:200]")])) { _ in
                    batches += 1
                    #expect(server.stats().activeStreams == 1)
                    throw ClientGone()
                }
            }
            #expect(batches == 1)
            let thrownAt = ContinuousClock.now
            while server.stats().activeStreams > 0, ContinuousClock.now - thrownAt < .seconds(1) {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(server.stats().activeStreams == 0)
        }
    }
}
