import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One request's timings, in milliseconds from the moment it was written.
struct Sample: Sendable {
    var firstText: Double
    var done: Double
}

/// Where the load goes: straight to the emulator over HTTP/1.1 (keep-alive, SSE), through
/// nginx as a reverse proxy in front of it (the same HTTP, on a Unix socket), or through agentd's
/// line protocol on an agent socket.
enum Target: Sendable, CustomStringConvertible {
    case direct(port: Int, apiKey: String)
    case nginx(socketPath: String, apiKey: String)
    case agentd(socketPath: String)

    var description: String {
        switch self {
        case .direct: "direct"
        case .nginx: "nginx"
        case .agentd: "agentd"
        }
    }
}

/// The reply a request asks the emulator for: `words` words, one SSE event each, and with
/// `tokenInterval` the events that far apart, like a model generating them.
struct ReplyShape: Sendable {
    var words: Int
    var tokenInterval: TimeAmount? = nil

    var text: String {
        "bench [words:\(words)]" + (tokenInterval.map { " [pace:\($0.nanoseconds / 1_000_000)]" } ?? "")
    }
}

/// What one closed-loop run measured.
struct RunResult {
    var samples: [Sample]
    var failures: Int
    var seconds: Double
    /// The load generator's own CPU seconds over the run.
    var generatorCPU: Double

    var requestsPerSecond: Double { Double(samples.count) / seconds }
}

/// What a hold run reached.
struct HoldResult {
    var requested: Int
    var held: Int
    var failed: Int
    var errors: [String: Int]
    var secondsToHold: Double
}

/// Streams held open: their channels (closed by `LoadGenerator.closeAll`) and their live counts.
struct HeldStreams {
    var result: HoldResult
    var channels: [Channel]
    let counters: HoldCounters
}

/// Sent down a connected client's pipeline once every connection of a run is up, so connection
/// set-up is not part of the measured time.
struct StartSignal {}

/// A paced client's schedule: a request every `interval`, the first after `offset`. The offsets
/// of a run's clients spread over one interval, so they do not all send at once.
struct Pacing {
    var interval: TimeAmount
    var offset: TimeAmount
}

/// Shared, lock-free counters of a hold run.
final class HoldCounters: Sendable {
    let held = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    /// Chunks of text received over all streams, for CPU per chunk.
    let chunks = Atomic<Int>(0)
    /// Error code → how many streams ended with it.
    let errors = Mutex<[String: Int]>([:])

    /// A stream that ended before the bench closed it: its error code, "done", or what broke.
    func recordEnd(_ reason: String) {
        failed.add(1, ordering: .relaxed)
        errors.withLock { $0[reason, default: 0] += 1 }
    }
}

/// The load generator: closed-loop clients (each sends its next request when the previous one
/// has finished) on a small NIO event loop group of its own.
final class LoadGenerator: Sendable {
    let group: MultiThreadedEventLoopGroup
    /// Connections opened at once; the rest wait, so no listen backlog overflows.
    static let connectBatch = 200

    init(threads: Int) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    func shutdown() { try? group.syncShutdownGracefully() }

    /// `concurrency` clients, one connection each, each sending `requestsPerClient` requests
    /// asking for `reply`: the next as soon as the previous one is done, or, with `pace`, one
    /// every `pace` (later if the previous one is not done by then).
    func run(
        _ target: Target, concurrency: Int, requestsPerClient: Int, reply: ReplyShape, pace: TimeAmount? = nil
    ) throws -> RunResult {
        let text = reply.text
        var channels: [Channel] = []
        var outcomes: [EventLoopFuture<ClientOutcome>] = []
        defer { closeAll(channels) }
        for batchStart in stride(from: 0, to: concurrency, by: Self.connectBatch) {
            var batch: [(EventLoopFuture<Channel>, () -> EventLoopFuture<Channel>)] = []
            for index in batchStart..<min(batchStart + Self.connectBatch, concurrency) {
                let promise = group.next().makePromise(of: ClientOutcome.self)
                outcomes.append(promise.futureResult)
                let pacing = pace.map {
                    Pacing(interval: $0, offset: .nanoseconds($0.nanoseconds * Int64(index) / Int64(concurrency)))
                }
                let attempt = {
                    self.connect(target, requests: requestsPerClient, text: text, pacing: pacing, promise: promise)
                }
                batch.append((attempt(), attempt))
            }
            for (future, attempt) in batch { channels.append(try waitRetryingBusy(future, attempt)) }
        }
        let cpuBefore = ProcessFigures.ownCPUSeconds()
        let started = monotonicNanoseconds()
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(StartSignal()) }
        var samples: [Sample] = []
        samples.reserveCapacity(concurrency * requestsPerClient)
        var failures = 0
        for outcome in outcomes {
            let result = try outcome.wait()
            samples += result.samples
            failures += result.failures
        }
        let seconds = Double(monotonicNanoseconds() - started) / 1e9
        return RunResult(
            samples: samples, failures: failures, seconds: seconds,
            generatorCPU: ProcessFigures.ownCPUSeconds() - cpuBefore)
    }

    /// Opens `streams` streams asking for `reply`: on agentd `perConnection` per connection, on
    /// an HTTP target one per connection. Returns once all are held (their first text has
    /// arrived) or progress stops, leaving them open until `closeAll` is called with the channels.
    func hold(
        _ target: Target, streams: Int, perConnection: Int, reply: ReplyShape, within seconds: Double
    ) throws -> HeldStreams {
        let counters = HoldCounters()
        let perConnection = if case .agentd = target { perConnection } else { 1 }
        let connections = (streams + perConnection - 1) / perConnection
        var channels: [Channel] = []
        let started = monotonicNanoseconds()
        for batchStart in stride(from: 0, to: connections, by: Self.connectBatch) {
            var batch: [(EventLoopFuture<Channel>, () -> EventLoopFuture<Channel>, streams: Int)] = []
            for index in batchStart..<min(batchStart + Self.connectBatch, connections) {
                let count = min(perConnection, streams - index * perConnection)
                let attempt = { self.connectHolding(target, streams: count, text: reply.text, counters: counters) }
                batch.append((attempt(), attempt, count))
            }
            for (future, attempt, count) in batch {
                do {
                    channels.append(try waitRetryingBusy(future, attempt))
                } catch {
                    for _ in 0..<count { counters.recordEnd("connect: \(error)") }
                }
            }
        }
        let deadline = started + UInt64(seconds * 1e9)
        var lastProgress = (count: -1, at: monotonicNanoseconds())
        while monotonicNanoseconds() < deadline {
            let held = counters.held.load(ordering: .relaxed)
            let failed = counters.failed.load(ordering: .relaxed)
            if held + failed >= streams { break }
            if held != lastProgress.count {
                lastProgress = (held, monotonicNanoseconds())
            } else if monotonicNanoseconds() - lastProgress.at > 15_000_000_000 {
                break
            }
            usleep(20_000)
        }
        let result = HoldResult(
            requested: streams, held: counters.held.load(ordering: .relaxed),
            failed: counters.failed.load(ordering: .relaxed), errors: counters.errors.withLock { $0 },
            secondsToHold: Double(monotonicNanoseconds() - started) / 1e9)
        return HeldStreams(result: result, channels: channels, counters: counters)
    }

    private func connectHolding(
        _ target: Target, streams: Int, text: String, counters: HoldCounters
    ) -> EventLoopFuture<Channel> {
        switch target {
        case .agentd(let socketPath):
            return ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            HoldClient(streams: streams, text: text, counters: counters))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
        case .direct(_, let apiKey), .nginx(_, let apiKey):
            return connectHTTP(target) { channel in
                try channel.pipeline.syncOperations.addHandler(
                    HTTPHoldClient(request: ChatRequest(text: text, apiKey: apiKey), counters: counters))
            }
        }
    }

    /// Connects that found the listen backlog full (EAGAIN on a Unix socket) and were retried.
    let busyRetries = Atomic<Int>(0)

    /// Waits for a connect; while the listener's backlog is full, tries again after a pause
    /// (a real client would have to as well; the count is reported).
    private func waitRetryingBusy(
        _ first: EventLoopFuture<Channel>, _ attempt: () -> EventLoopFuture<Channel>
    ) throws -> Channel {
        var future = first
        for _ in 0..<500 {
            do {
                return try future.wait()
            } catch let error as IOError where error.errnoCode == EAGAIN {
                busyRetries.add(1, ordering: .relaxed)
                usleep(10_000)
                future = attempt()
            }
        }
        return try future.wait()
    }

    func closeAll(_ channels: [Channel]) {
        let closing = channels.map { $0.close() }
        for future in closing { _ = try? future.wait() }
    }

    private func connect(
        _ target: Target, requests: Int, text: String, pacing: Pacing?, promise: EventLoopPromise<ClientOutcome>
    ) -> EventLoopFuture<Channel> {
        switch target {
        case .direct(_, let apiKey), .nginx(_, let apiKey):
            return connectHTTP(target) { channel in
                try channel.pipeline.syncOperations.addHandler(
                    DirectClient(
                        requests: requests, request: ChatRequest(text: text, apiKey: apiKey), pacing: pacing,
                        promise: promise))
            }
        case .agentd(let socketPath):
            return ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            AgentdClient(requests: requests, text: text, pacing: pacing, promise: promise))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
        }
    }

    /// An HTTP/1.1 client connection to the emulator or to nginx, `handler` added after NIO's
    /// HTTP client handlers.
    private func connectHTTP(
        _ target: Target, handler: @escaping @Sendable (Channel) throws -> Void
    ) -> EventLoopFuture<Channel> {
        let bootstrap = ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try handler(channel)
                }
            }
        switch target {
        case .direct(let port, _):
            return bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1).connect(host: "127.0.0.1", port: port)
        case .nginx(let socketPath, _): return bootstrap.connect(unixDomainSocketPath: socketPath)
        case .agentd(let socketPath): return bootstrap.connect(unixDomainSocketPath: socketPath)
        }
    }
}

/// A streamed chat completion request, as the emulator (and Mistral) takes it.
private struct ChatRequest {
    let head: HTTPRequestHead
    let body: ByteBuffer

    init(text: String, apiKey: String) {
        let json =
            #"{"model":"mistral-small-latest","messages":[{"role":"user","content":"\#(text)"}],"stream":true}"#
        body = ByteBuffer(string: json)
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "127.0.0.1")
        headers.add(name: "Authorization", value: "Bearer \(apiKey)")
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: "text/event-stream")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/chat/completions", headers: headers)
    }

    func write<Handler: ChannelOutboundHandler>(with handler: Handler, on context: ChannelHandlerContext)
    where Handler.OutboundOut == HTTPClientRequestPart {
        context.write(handler.wrapOutboundOut(.head(head)), promise: nil)
        context.write(handler.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
    }
}

/// What one client measured.
struct ClientOutcome: Sendable {
    var samples: [Sample] = []
    var failures = 0
}

/// The sequential request loop both clients share: timing, counting, completion.
private struct RequestLoop {
    let requests: Int
    let pacing: Pacing?
    let promise: EventLoopPromise<ClientOutcome>
    var outcome = ClientOutcome()
    var sentAt: UInt64 = 0
    var firstTextAt: UInt64?
    var finished = false
    /// When a paced client's next request is due.
    var due = NIODeadline.now()

    var issued: Int { outcome.samples.count + outcome.failures }

    /// When the first or the next request goes: nil for at once, or when a paced one is due.
    mutating func nextDue(first: Bool) -> NIODeadline? {
        guard let pacing else { return nil }
        due = first ? .now() + pacing.offset : due + pacing.interval
        return due
    }

    mutating func willSend() {
        sentAt = monotonicNanoseconds()
        firstTextAt = nil
    }

    mutating func sawText() {
        if firstTextAt == nil { firstTextAt = monotonicNanoseconds() }
    }

    /// Records the request that just ended; true when another one should be sent.
    mutating func ended(ok: Bool) -> Bool {
        let now = monotonicNanoseconds()
        if ok, let firstTextAt {
            outcome.samples.append(
                Sample(firstText: Double(firstTextAt - sentAt) / 1e6, done: Double(now - sentAt) / 1e6))
        } else {
            outcome.failures += 1
        }
        if issued < requests { return true }
        finish()
        return false
    }

    mutating func finish() {
        guard !finished else { return }
        finished = true
        outcome.failures += requests - issued
        promise.succeed(outcome)
    }
}

/// Runs `send` now, or at `due` on `eventLoop`.
private func sendWhenDue(_ due: NIODeadline?, on eventLoop: any EventLoop, _ send: @escaping () -> Void) {
    guard let due else { return send() }
    eventLoop.assumeIsolated().scheduleTask(deadline: due, send)
}

/// Chat completions over HTTP, to the emulator or through nginx.
private final class DirectClient: ChannelInboundHandler, ChannelOutboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    private var loop: RequestLoop
    private let request: ChatRequest
    private var status = 0

    init(requests: Int, request: ChatRequest, pacing: Pacing?, promise: EventLoopPromise<ClientOutcome>) {
        loop = RequestLoop(requests: requests, pacing: pacing, promise: promise)
        self.request = request
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is StartSignal { sendWhenDue(loop.nextDue(first: true), on: context.eventLoop) { self.send(context) } }
    }

    private func send(_ context: ChannelHandlerContext) {
        loop.willSend()
        request.write(with: self, on: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let response):
            status = Int(response.status.code)
        case .body(let chunk):
            if status == 200, chunk.textChunks() > 0 { loop.sawText() }
        case .end:
            if loop.ended(ok: status == 200) {
                sendWhenDue(loop.nextDue(first: false), on: context.eventLoop) { self.send(context) }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) { loop.finish() }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// One held stream over HTTP: counted as held at its first text, then its text chunks counted.
private final class HTTPHoldClient: ChannelInboundHandler, ChannelOutboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPClientRequestPart

    private let request: ChatRequest
    private let counters: HoldCounters
    private var status = 0
    private var held = false

    init(request: ChatRequest, counters: HoldCounters) {
        self.request = request
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) { request.write(with: self, on: context) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let response):
            status = Int(response.status.code)
            if status != 200 { counters.recordEnd("HTTP \(response.status.code)") }
        case .body(let chunk):
            let texts = status == 200 ? chunk.textChunks() : 0
            guard texts > 0 else { return }
            counters.chunks.add(texts, ordering: .relaxed)
            if !held {
                held = true
                counters.held.add(1, ordering: .relaxed)
            }
        case .end:
            if status == 200 { counters.recordEnd("ended") }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Requests on an agent socket, one at a time.
private final class AgentdClient: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var loop: RequestLoop
    private let text: String
    private var lines = LineSplitter()

    init(requests: Int, text: String, pacing: Pacing?, promise: EventLoopPromise<ClientOutcome>) {
        loop = RequestLoop(requests: requests, pacing: pacing, promise: promise)
        self.text = text
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is StartSignal { sendWhenDue(loop.nextDue(first: true), on: context.eventLoop) { self.send(context) } }
    }

    private func send(_ context: ChannelHandlerContext) {
        loop.willSend()
        let line = #"{"id":\#(loop.issued),"input":"\#(text)"}"# + "\n"
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: line)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var sendNext = false
        lines.feed(unwrapInboundIn(data)) { line in
            switch EventKind(line) {
            case .delta: loop.sawText()
            case .done: sendNext = loop.ended(ok: true)
            case .error: sendNext = loop.ended(ok: false)
            case .start, .other: break
            }
        }
        if sendNext { sendWhenDue(loop.nextDue(first: false), on: context.eventLoop) { self.send(context) } }
    }

    func channelInactive(context: ChannelHandlerContext) { loop.finish() }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Several stalled streams on one agent socket connection, counted once each is under way.
private final class HoldClient: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let streams: Int
    private let text: String
    private let counters: HoldCounters
    private var lines = LineSplitter()
    /// Request ids whose first text has arrived.
    private var held = Set<Int>()

    init(streams: Int, text: String, counters: HoldCounters) {
        self.streams = streams
        self.text = text
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: streams * 64)
        for id in 0..<streams { buffer.writeString(#"{"id":\#(id),"input":"\#(text)"}"# + "\n") }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lines.feed(unwrapInboundIn(data)) { line in
            switch EventKind(line) {
            case .delta:
                counters.chunks.add(1, ordering: .relaxed)
                // The first text of a reply: the stream is open end to end.
                if let id = requestID(line), held.insert(id).inserted { counters.held.add(1, ordering: .relaxed) }
            case .error, .done: counters.recordEnd(terminalCode(line))
            case .start, .other: break
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Splits a byte stream into lines without copying complete lines that arrive whole.
private struct LineSplitter {
    private var partial: [UInt8] = []

    mutating func feed(_ buffer: ByteBuffer, _ body: (UnsafeRawBufferPointer) -> Void) {
        if partial.isEmpty {
            buffer.withUnsafeReadableBytes { partial = Self.split($0, body) }
        } else {
            partial.append(contentsOf: buffer.readableBytesView)
            partial = partial.withUnsafeBytes { Self.split($0, body) }
        }
    }

    /// Calls `body` with each complete line; returns the incomplete rest.
    private static func split(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) -> [UInt8] {
        guard let base = bytes.baseAddress else { return [] }
        var start = 0
        while start < bytes.count, let newline = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start) {
            let end = base.distance(to: UnsafeRawPointer(newline))
            body(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            start = end + 1
        }
        return Array(bytes[start...])
    }
}

/// The offset just past the first `marker` at or after `start` in `bytes`; nil when there is none.
/// memchr and memcmp rather than the standard library's generic `firstRange(of:)`: the
/// generator reads every event of every reply, and its own cost must stay well under the hops'.
/// (Glibc's memmem is not visible to Swift without _GNU_SOURCE.)
private func end(of marker: StaticString, in bytes: UnsafeRawBufferPointer, from start: Int = 0) -> Int? {
    guard let base = bytes.baseAddress else { return nil }
    let length = marker.utf8CodeUnitCount
    var offset = start
    while bytes.count - offset >= length,
        let candidate = memchr(base + offset, Int32(marker.utf8Start.pointee), bytes.count - offset - length + 1)
    {
        let at = base.distance(to: UnsafeRawPointer(candidate))
        if memcmp(candidate, marker.utf8Start, length) == 0 { return at + length }
        offset = at + 1
    }
    return nil
}

/// The type of an agentd event line, read from its fixed `"type":"…"` field.
private enum EventKind {
    case start, delta, done, error, other

    init(_ line: UnsafeRawBufferPointer) {
        guard let at = end(of: #""type":""#, in: line) else {
            self = .other
            return
        }
        switch Array(line[at...].prefix(5)) {
        case Array("delta".utf8): self = .delta
        case Array("done\"".utf8): self = .done
        case Array("error".utf8): self = .error
        case Array("start".utf8): self = .start
        default: self = .other
        }
    }
}

/// The `"id":N` an agentd event line carries, read without parsing the line.
private func requestID(_ line: UnsafeRawBufferPointer) -> Int? {
    guard let at = end(of: #""id":"#, in: line) else { return nil }
    var value = 0
    var digits = 0
    for byte in line[at...] {
        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
        value = value * 10 + Int(byte - UInt8(ascii: "0"))
        digits += 1
    }
    return digits > 0 ? value : nil
}

/// The error code of an agentd terminal event line; "done" for a `done`.
private func terminalCode(_ line: UnsafeRawBufferPointer) -> String {
    guard let at = end(of: #""code":""#, in: line) else { return "done" }
    return String(decoding: line[at...].prefix { $0 != UInt8(ascii: "\"") }, as: UTF8.self)
}

extension ByteBuffer {
    /// How many SSE chunks carrying reply text this body part holds: each is a `"content":"`
    /// followed by a character. (The first chunk of a reply carries the role and an empty content.)
    /// A marker split between two body parts is missed; the emulator writes whole events.
    fileprivate func textChunks() -> Int {
        withUnsafeReadableBytes { bytes in
            var count = 0
            var offset = 0
            while let at = end(of: #""content":""#, in: bytes, from: offset), at < bytes.count {
                if bytes[at] != UInt8(ascii: "\"") { count += 1 }
                offset = at
            }
            return count
        }
    }
}
