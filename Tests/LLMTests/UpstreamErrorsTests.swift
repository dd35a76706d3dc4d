import AgentProtocol
import JSON
import TestSupport
import Testing

@testable import LLM

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Upstream errors, retries and settings")
struct UpstreamErrorsTests {
    @Test(
        "error bodies of every observed vintage yield Mistral's message",
        arguments: [
            (
                #"{"object":"error","message":"Unexpected role 'user' after role 'tool'","type":"invalid_request_message_order","param":null,"code":"3230"}"#,
                "Unexpected role 'user' after role 'tool' (code 3230)"
            ),
            (#"{"detail":"Unauthorized"}"#, "Unauthorized"),
            (#"{"message":"Unauthorized","request_id":"c61f"}"#, "Unauthorized"),
            (
                #"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","n"],"msg":"Extra inputs are not permitted","input":1}]},"type":"invalid_request_error","param":null,"code":null}"#,
                "body.n: Extra inputs are not permitted (extra_forbidden)"
            ),
            (
                #"{"detail":[{"type":"extra_forbidden","loc":["body","messages",6,"name"],"msg":"Extra inputs are not permitted"},{"type":"missing","loc":["body","model"],"msg":"Field required"}]}"#,
                "body.messages.6.name: Extra inputs are not permitted (extra_forbidden); body.model: Field required (missing)"
            ),
            (#"{"object":"Error","message":["a","b"],"code":3230}"#, "a; b (code 3230)"),
            ("upstream connect error\n", "upstream connect error"),
        ]
    )
    func errorBodies(body: String, message: String) {
        #expect(ErrorBody.message(from: Array(body.utf8)) == message)
    }

    @Test("empty bodies give no message; long ones are bounded")
    func boundedBodies() {
        #expect(ErrorBody.message(from: []) == nil)
        #expect(
            ErrorBody.message(from: Array(String(repeating: "x", count: 5000).utf8))!.count <= ErrorBody
                .maxMessageLength + 1)
    }

    @Test(
        "statuses map to the closed list with honest retryable",
        arguments: [
            (401, Upstream.chatCompletions(model: "m"), ErrorCode.upstreamAuth, false),
            (403, .chatCompletions(model: "m"), .upstreamAuth, false),
            (429, .chatCompletions(model: "m"), .upstreamRateLimited, true),
            (400, .chatCompletions(model: "m"), .upstreamRejected, false),
            (404, .chatCompletions(model: "m"), .upstreamRejected, false),
            (422, .conversations(agentID: "a"), .upstreamRejected, false),
            (404, .conversations(agentID: "a"), .agentError, false),
            (404, .agentCompletions(agentID: "a"), .agentError, false),
            (500, .chatCompletions(model: "m"), .upstreamUnavailable, true),
            (503, .agentCompletions(agentID: "a"), .upstreamUnavailable, true),
        ]
    )
    func statuses(status: Int, upstream: Upstream, code: ErrorCode, retryable: Bool) {
        let info = UpstreamStatus.errorInfo(status: status, body: Array(#"{"message":"why"}"#.utf8), upstream: upstream)
        #expect(info.code == code)
        #expect(info.retryable == retryable)
        #expect(info.status == status)
        #expect(info.message.contains("why"))
    }

    @Test("Retry-After in seconds and as an HTTP date")
    func retryAfter() {
        #expect(RetryAfter.parse("0") == .zero)
        #expect(RetryAfter.parse(" 3 ") == .seconds(3))
        #expect(RetryAfter.parse("-1") == nil)
        #expect(RetryAfter.parse("soon") == nil)
        #expect(RetryAfter.httpDate("Sun, 06 Nov 1994 08:49:37 GMT") == 784_111_777)
        #expect(RetryAfter.httpDate("Sunday, 06-Nov-94 08:49:37 GMT") == 784_111_777)
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:40 GMT", now: 784_111_777) == .seconds(3))
        #expect(RetryAfter.parse("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_900) == .zero)
    }

    @Test("backoff: full jitter below the exponential ceiling, capped at max_delay; Retry-After wins")
    func backoff() {
        var generator = SplitMix64(seed: 1)
        let policy = RetryPolicy(attempts: 10, baseDelay: .milliseconds(100), maxDelay: .milliseconds(350))
        var seen: Set<Duration> = []
        for attempt in 1...8 {
            for _ in 0..<50 {
                let delay = policy.delay(afterAttempt: attempt, retryAfter: nil, using: &generator)
                let ceiling = min(.milliseconds(350), .milliseconds(100) * (1 << (attempt - 1)))
                #expect(delay >= .zero && delay <= ceiling)
                seen.insert(delay)
            }
        }
        #expect(seen.count > 300, "jittered, not constant")
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(2), using: &generator) == .seconds(2))
    }

    @Test("API key sources: the named file, then the credentials directory, then MISTRAL_API_KEY")
    func keySources() throws {
        let directory = "/tmp/llmkey-\(getpid())"
        mkdir(directory, 0o700)
        defer { _ = system("rm -rf \(directory)") }
        func write(_ path: String, _ text: String) {
            let file = fopen(path, "w")!
            fputs(text, file)
            fclose(file)
        }
        write(directory + "/file", "  from-file \n")
        write(directory + "/mistral-api-key", "from-credentials\n")
        write(directory + "/empty", "\n")
        let environment = ["CREDENTIALS_DIRECTORY": directory, "MISTRAL_API_KEY": "from-env"]

        let fromFile = MistralSettings.resolve(
            baseURL: "https://api.mistral.ai", apiKeyFile: directory + "/file", environment: environment)
        #expect(fromFile.apiKey == "from-file")
        #expect(!fromFile.description.contains("from-file"), "the key never appears in descriptions")

        let fromCredentials = MistralSettings.resolve(
            baseURL: "b", apiKeyFile: directory + "/missing", environment: environment)
        #expect(fromCredentials.apiKey == "from-credentials")
        #expect(fromCredentials.problems.count == 1)

        let fromEnvironment = MistralSettings.resolve(
            baseURL: "b", apiKeyFile: directory + "/empty",
            environment: ["MISTRAL_API_KEY": "from-env", "MISTRAL_BASE_URL": "http://127.0.0.1:9"]
        )
        #expect(fromEnvironment.apiKey == "from-env")
        #expect(fromEnvironment.apiKeySource == "MISTRAL_API_KEY")
        #expect(fromEnvironment.baseURL == "http://127.0.0.1:9")

        let none = MistralSettings.resolve(baseURL: "b", apiKeyFile: nil, environment: [:])
        #expect(none.apiKey == nil && none.baseURL == "b" && none.problems.isEmpty)
    }
}
