import AgentProtocol
import Basics
import Curl
public import Logging
import SSE

/// Mistral's chat completions, agents completions and conversations APIs behind one call.
///
/// Every history goes through `MessageFixups`; failures are `ErrorInfo` values with a contract
/// error code; 429, 500, 502, 503, 504 and connection failures are retried (backoff with full
/// jitter, `Retry-After` honoured) while nothing of the reply has been yielded and the request's
/// total timeout allows. The API key is sent in a header only: it is in no error, log or description.
public final class MistralClient: LLMClient {
    private let baseURL: String
    private let apiKey: String?
    /// `agentd/VERSION` (CONTRACT §5), on every request.
    private let userAgent: String
    private let transport: CurlClient
    private let logger: Logger

    /// Largest error body read for its message, and largest non-stream reply accepted.
    private static let maxErrorBodyBytes = 64 << 10
    private static let maxReplyBytes = 32 << 20

    /// Starts the HTTP client (curl's thread); `shutdown()` stops it.
    ///
    /// `apiKey` nil: every request fails with `upstream_auth`, saying how to configure a key.
    public convenience init(baseURL: String, apiKey: String?, userAgent: String, logger: Logger) throws {
        self.init(baseURL: baseURL, apiKey: apiKey, userAgent: userAgent, transport: try CurlClient(), logger: logger)
    }

    /// A client over a transport the caller owns (the tests share one between clients).
    init(baseURL: String, apiKey: String?, userAgent: String, transport: CurlClient, logger: Logger) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        self.userAgent = userAgent
        self.transport = transport
        self.logger = logger
    }

    /// Cancels the transfers still running and stops the HTTP client's thread.
    public func shutdown() {
        transport.shutdown()
    }

    /// The upstream transfer is cancelled, closing its connection, whenever the call ends
    /// early: `deliver` threw, the request failed, or the calling task was cancelled. While
    /// `deliver` waits, curl pauses the transfer.
    public func run(
        _ request: LLMRequest, answered: () async throws -> Void = {}, deliver: ([LLMEvent]) async throws -> Void
    ) async throws {
        guard let apiKey else {
            throw ErrorInfo(
                code: .upstreamAuth,
                message: "no Mistral API key is configured: set mistral.api_key_file in agentd.yaml, "
                    + "provide the systemd credential mistral-api-key (LoadCredential=), or set MISTRAL_API_KEY"
            )
        }
        let prepared = try PreparedRequest(request)
        var body: [UInt8] = []
        prepared.body.write(to: &body)

        let clock = ContinuousClock()
        let deadline = clock.now + request.timeouts.total
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while true {
            attempt += 1
            let remaining = deadline - clock.now
            guard remaining > .zero else { throw Self.totalTimeout(request.timeouts.total) }
            logAttempt(prepared, attempt)
            let failure: AttemptFailure
            do throws(AttemptFailure) {
                try await send(
                    prepared, body: body, apiKey: apiKey, timeouts: request.timeouts, remaining: remaining,
                    observer: request.observer, answered: answered, deliver: deliver)
                return
            } catch {
                failure = error
            }
            if let consumerError = failure.consumerError { throw consumerError }
            var info = redacted(failure.info, apiKey: apiKey)
            if info.code == .upstreamRateLimited, let wait = failure.retryAfter {
                info.retryAfterSeconds = Int((wait + .nanoseconds(999_999_999)).components.seconds)
            }
            guard failure.isRetried, !failure.afterOutput, attempt < request.retry.attempts else { throw info }
            let delay = request.retry.delay(afterAttempt: attempt, retryAfter: failure.retryAfter, using: &generator)
            guard clock.now + delay < deadline else { throw info }
            request.observer?.upstreamRetrying()
            logRetry(prepared, attempt, info, delay)
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw Self.cancelled
            }
        }
    }

    private struct AttemptFailure: Error {
        var info: ErrorInfo
        /// 429, 500, 502, 503, 504 or a failure to connect or stay connected.
        var isRetried: Bool
        var retryAfter: Duration? = nil
        /// Part of the reply was already delivered: sending again would repeat it.
        var afterOutput = false
        /// What the caller's `deliver` threw, to be rethrown as it is.
        var consumerError: (any Error)? = nil
    }

    /// One HTTP exchange: sends the body, reads the reply and yields its events.
    ///
    /// In two functions, one after the other and not inlined, so that their frames share one slab
    /// of the task's allocator: the reading one is what every request keeps while its reply
    /// streams.
    private func send(
        _ prepared: PreparedRequest, body: [UInt8], apiKey: String, timeouts: Timeouts, remaining: Duration,
        observer: (any UpstreamObserver)?, answered: () async throws -> Void,
        deliver: ([LLMEvent]) async throws -> Void
    ) async throws(AttemptFailure) {
        let response = try await open(
            prepared, body: body, apiKey: apiKey, timeouts: timeouts, remaining: remaining, observer: observer,
            answered: answered)
        try await read(response, of: prepared, deliver: deliver)
    }

    /// Sends the request and waits for a successful head; an error status is a failure with
    /// the message of its body.
    @inline(never)
    private func open(
        _ prepared: PreparedRequest, body: [UInt8], apiKey: String, timeouts: Timeouts, remaining: Duration,
        observer: (any UpstreamObserver)?, answered: () async throws -> Void
    ) async throws(AttemptFailure) -> HTTPResponse {
        let httpRequest = HTTPRequest(
            url: baseURL + prepared.path, method: "POST",
            headers: [
                HTTPHeader("Authorization", "Bearer \(apiKey)"), HTTPHeader("Content-Type", "application/json"),
                HTTPHeader("Accept", prepared.stream ? "text/event-stream" : "application/json"),
                HTTPHeader("User-Agent", userAgent),
            ],
            body: body, connectTimeout: min(timeouts.connect, remaining),
            firstByteTimeout: min(timeouts.firstByte, remaining), idleTimeout: timeouts.idle, totalTimeout: remaining
        )
        let response: HTTPResponse
        do {
            response = try await transport.send(httpRequest)
        } catch {
            throw Self.failure(error, afterOutput: false)
        }
        observer?.upstreamResponded(status: response.status)

        guard (200..<300).contains(response.status) else {
            // The status decides; a body cut short only loses detail from the message.
            let errorBody = (try? await Self.collect(response, limit: Self.maxErrorBodyBytes)) ?? []
            throw AttemptFailure(
                info: UpstreamStatus.errorInfo(status: response.status, body: errorBody, upstream: prepared.upstream),
                isRetried: UpstreamStatus.isRetried(response.status),
                retryAfter: response.header("Retry-After").flatMap { RetryAfter.parse($0) }
            )
        }

        if !response.isBodyAvailable {
            do {
                try await answered()
            } catch {
                throw AttemptFailure(info: Self.cancelled, isRetried: false, consumerError: error)
            }
        }
        return response
    }

    /// Reads a successful reply and yields its events.
    @inline(never)
    private func read(
        _ response: HTTPResponse, of prepared: PreparedRequest, deliver: ([LLMEvent]) async throws -> Void
    ) async throws(AttemptFailure) {
        var decoding = StreamDecoding(
            decoder: ReplyDecoder(
                format: prepared.format, toolCallIDs: prepared.toolCallIDs,
                rateLimitsRemaining: Self.rateLimitsRemaining(response.headers)))
        var afterOutput = false
        /// Delivers a batch, then throws the failure that ended it: what decoded before a bad
        /// event still goes out, ahead of the error. Called three times; inlined, each copy
        /// took room in the frame.
        @inline(never)
        func deliverBatch(_ batch: (events: [LLMEvent], failure: AttemptFailure?)) async throws(AttemptFailure) {
            if !batch.events.isEmpty {
                afterOutput = true
                do {
                    try await deliver(batch.events)
                } catch {
                    // `info` goes unused: the consumer's own error is what the caller gets.
                    throw AttemptFailure(
                        info: Self.cancelled, isRetried: false, afterOutput: true, consumerError: error)
                }
            }
            if let failure = batch.failure { throw failure }
        }
        do {
            guard prepared.stream else {
                let reply = try await Self.collect(response, limit: Self.maxReplyBytes)
                try await deliverBatch(decoding.decodeResponse(reply))
                return
            }
            for try await chunk in response {
                try await deliverBatch(decoding.decode(chunk))
            }
            try await deliverBatch(decoding.decode(nil))
            if !decoding.decoder.ignoredEvents.isEmpty { logIgnored(prepared, decoding.decoder.ignoredEvents) }
        } catch var failure as AttemptFailure {
            failure.afterOutput = afterOutput
            throw failure
        } catch let error as CurlError {
            throw Self.failure(error, afterOutput: afterOutput)
        } catch {
            throw AttemptFailure(
                info: ErrorInfo(code: .internal, message: "\(error)"), isRetried: false, afterOutput: afterOutput)
        }
    }

    /// The synchronous half of reading a reply, in functions that are not inlined: their
    /// temporaries would otherwise take room in the frame of `read`, which every request keeps
    /// while its reply streams.
    private struct StreamDecoding {
        var decoder: ReplyDecoder
        var parser = SSEParser()

        /// The events of one read of the stream (nil: its end), and the failure that stopped
        /// the decoding, if one did, after them.
        @inline(never)
        mutating func decode(_ chunk: [UInt8]?) -> (events: [LLMEvent], failure: AttemptFailure?) {
            var events: [LLMEvent] = []
            do throws(AttemptFailure) {
                let sseEvents = try MistralClient.decodeOrFail { () throws(SSEError) in
                    if let chunk { try parser.feed(chunk) } else { try parser.finish() }
                }
                for event in sseEvents {
                    events += try MistralClient.decodeOrFail { () throws(ErrorInfo) in
                        try decoder.decode(event: event.event, data: event.data)
                    }
                }
                if chunk == nil {
                    events += try MistralClient.decodeOrFail { () throws(ErrorInfo) in try decoder.endOfStream() }
                }
                return (events, nil)
            } catch {
                return (events, error)
            }
        }

        /// The events of a whole `stream: false` reply.
        @inline(never)
        mutating func decodeResponse(_ reply: [UInt8]) -> (events: [LLMEvent], failure: AttemptFailure?) {
            guard reply.count <= MistralClient.maxReplyBytes else {
                return (
                    [],
                    AttemptFailure(
                        info: ReplyDecoder.protocolError("the reply exceeds \(MistralClient.maxReplyBytes) bytes"),
                        isRetried: false)
                )
            }
            do throws(AttemptFailure) {
                return (
                    try MistralClient.decodeOrFail { () throws(ErrorInfo) in try decoder.decodeResponse(reply) }, nil
                )
            } catch {
                return ([], error)
            }
        }
    }

    // The log lines are written by synchronous functions of their own: inlined, each call's
    // temporaries took room in the async frames of `run` and `send`, which every request
    // keeps while its reply streams.

    @inline(never)
    private func logAttempt(_ prepared: PreparedRequest, _ attempt: Int) {
        logger.debug(
            "upstream attempt",
            metadata: ["upstream.path": "\(prepared.path)", "attempt": "\(attempt)", "stream": "\(prepared.stream)"])
    }

    @inline(never)
    private func logRetry(_ prepared: PreparedRequest, _ attempt: Int, _ info: ErrorInfo, _ delay: Duration) {
        logger.debug(
            "upstream retry",
            metadata: [
                "upstream.path": "\(prepared.path)", "attempt": "\(attempt)", "error.code": "\(info.code.rawValue)",
                "upstream.status": "\(info.status.map(String.init) ?? "-")", "retry.delay_ms": "\(delay.milliseconds)",
            ])
    }

    @inline(never)
    private func logIgnored(_ prepared: PreparedRequest, _ events: [String: Int]) {
        logger.debug(
            "upstream events of unknown types ignored",
            metadata: [
                "upstream.path": "\(prepared.path)",
                "events": "\(events.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })",
            ])
    }

    /// Runs a decoding step, turning its error into a non-retried failure.
    private static func decodeOrFail<T, E: Error>(_ step: () throws(E) -> T) throws(AttemptFailure) -> T {
        do {
            return try step()
        } catch let error as ErrorInfo {
            throw AttemptFailure(info: error, isRetried: false)
        } catch {
            throw AttemptFailure(
                info: ReplyDecoder.protocolError("malformed event stream (\(error))"), isRetried: false)
        }
    }

    private static let rateLimitPrefix = "x-ratelimit-remaining-"

    /// `x-ratelimit-remaining-tokens-minute: 9000` as `["tokens-minute": 9000]`.
    private static func rateLimitsRemaining(_ headers: [HTTPHeader]) -> [String: Int64] {
        var remaining: [String: Int64] = [:]
        for header in headers {
            let name = header.name.lowercased()
            guard name.hasPrefix(rateLimitPrefix), let value = Int64(header.value) else { continue }
            remaining[String(name.dropFirst(rateLimitPrefix.count))] = value
        }
        return remaining
    }

    /// The body up to `limit` bytes (one byte more tells the caller it was longer).
    private static func collect(_ response: HTTPResponse, limit: Int) async throws(CurlError) -> [UInt8] {
        var bytes: [UInt8] = []
        for try await chunk in response {
            bytes.append(contentsOf: chunk.prefix(limit + 1 - bytes.count))
            if bytes.count > limit { break }
        }
        return bytes
    }

    private static func failure(_ error: CurlError, afterOutput: Bool) -> AttemptFailure {
        let info: ErrorInfo
        var isRetried = false
        switch error.kind {
        case .cancelled:
            info = cancelled
        case .couldNotConnect, .connectTimeout, .connectionLost:
            info = ErrorInfo(
                code: .upstreamUnavailable, message: "could not reach Mistral: \(error.message)", retryable: true)
            isRetried = true
        case .couldNotResolveHost, .tls, .other:
            info = ErrorInfo(
                code: .upstreamUnavailable, message: "could not reach Mistral: \(error.message)", retryable: true)
        case .firstByteTimeout, .idleTimeout, .totalTimeout:
            info = ErrorInfo(
                code: .timeout, message: "Mistral did not answer in time: \(error.message)", retryable: true)
        }
        return AttemptFailure(info: info, isRetried: isRetried, afterOutput: afterOutput)
    }

    private static let cancelled = ErrorInfo(code: .cancelled, message: "the request was cancelled")

    private static func totalTimeout(_ total: Duration) -> ErrorInfo {
        ErrorInfo(code: .timeout, message: "Mistral did not answer within \(total)", retryable: true)
    }

    /// Belt and braces: upstream messages are quoted into errors, and must never carry the key.
    private func redacted(_ info: ErrorInfo, apiKey: String) -> ErrorInfo {
        guard info.message.contains(apiKey) else { return info }
        var info = info
        info.message = info.message.replacing(apiKey, with: "[redacted]")
        return info
    }
}
