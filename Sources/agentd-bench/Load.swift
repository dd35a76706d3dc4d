import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// One request's timings, in milliseconds from the moment it was written.
struct Sample: Sendable {
    var firstText: Double
    var done: Double
}

/// Where the load goes: straight to the emulator over HTTP/1.1 (keep-alive, SSE), or through
/// agentd's line protocol on an agent socket.
enum Target: Sendable, CustomStringConvertible {
    case direct(port: Int, apiKey: String)
    case agentd(socketPath: String)

    var description: String {
        switch self {
        case .direct: "direct"
        case .agentd: "agentd"
        }
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
    /// Error code → how many streams ended with it.
    let errors = Mutex<[String: Int]>([:])

    func recordError(_ line: ArraySlice<UInt8>) {
        failed.add(1, ordering: .relaxed)
        let marker = Array(#""code":""#.utf8)
        let code =
            line.firstRange(of: marker).map { range in
                String(decoding: line[range.upperBound...].prefix { $0 != UInt8(ascii: "\"") }, as: UTF8.self)
            } ?? "done"
        errors.withLock { $0[code, default: 0] += 1 }
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
    /// asking for `words` words: the next as soon as the previous one is done, or, with `pace`,
    /// one every `pace` (later if the previous one is not done by then).
    func run(
        _ target: Target, concurrency: Int, requestsPerClient: Int, words: Int, pace: TimeAmount? = nil
    ) throws -> RunResult {
        let text = "bench [words:\(words)]"
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

    /// Opens `streams` streams on agentd, `perConnection` per connection, each asking for a reply
    /// that stalls after its first chunk; returns once all are held (or progress stops), leaving
    /// them open until `release` is called with the returned channels.
    func hold(socketPath: String, streams: Int, perConnection: Int, within seconds: Double) throws -> (
        HoldResult, [Channel]
    ) {
        let counters = HoldCounters()
        let connections = (streams + perConnection - 1) / perConnection
        var channels: [Channel] = []
        let started = monotonicNanoseconds()
        for batchStart in stride(from: 0, to: connections, by: Self.connectBatch) {
            var batch: [(EventLoopFuture<Channel>, () -> EventLoopFuture<Channel>, streams: Int)] = []
            for index in batchStart..<min(batchStart + Self.connectBatch, connections) {
                let count = min(perConnection, streams - index * perConnection)
                let attempt = {
                    ClientBootstrap(group: self.group)
                        .channelInitializer { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    HoldClient(streams: count, counters: counters))
                            }
                        }
                        .connect(unixDomainSocketPath: socketPath)
                }
                batch.append((attempt(), attempt, count))
            }
            for (future, attempt, count) in batch {
                do {
                    channels.append(try waitRetryingBusy(future, attempt))
                } catch {
                    counters.failed.add(count, ordering: .relaxed)
                    counters.errors.withLock { $0["connect: \(error)", default: 0] += count }
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
        return (result, channels)
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
        let bootstrap = ClientBootstrap(group: group)
        switch target {
        case .direct(let port, let apiKey):
            return
                bootstrap
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(
                            DirectClient(
                                requests: requests, text: text, apiKey: apiKey, pacing: pacing, promise: promise))
                    }
                }
                .connect(host: "127.0.0.1", port: port)
        case .agentd(let socketPath):
            return
                bootstrap
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            AgentdClient(requests: requests, text: text, pacing: pacing, promise: promise))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
        }
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

/// Chat completions straight to the emulator.
private final class DirectClient: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private var loop: RequestLoop
    private let body: ByteBuffer
    private let head: HTTPRequestHead
    private var status = 0

    init(requests: Int, text: String, apiKey: String, pacing: Pacing?, promise: EventLoopPromise<ClientOutcome>) {
        loop = RequestLoop(requests: requests, pacing: pacing, promise: promise)
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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is StartSignal { sendWhenDue(loop.nextDue(first: true), on: context.eventLoop) { self.send(context) } }
    }

    private func send(_ context: ChannelHandlerContext) {
        loop.willSend()
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let response):
            status = Int(response.status.code)
        case .body(let chunk):
            if status == 200, chunk.readableBytesView.containsText() { loop.sawText() }
        case .end:
            if loop.ended(ok: status == 200) {
                sendWhenDue(loop.nextDue(first: false), on: context.eventLoop) { self.send(context) }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) { loop.finish() }

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
    private let counters: HoldCounters
    private var lines = LineSplitter()

    init(streams: Int, counters: HoldCounters) {
        self.streams = streams
        self.counters = counters
    }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: streams * 48)
        for id in 0..<streams { buffer.writeString(#"{"id":\#(id),"input":"hold [fault:stall]"}"# + "\n") }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lines.feed(unwrapInboundIn(data)) { line in
            // The first text of a stalled reply: the stream is open end to end.
            switch EventKind(line) {
            case .delta: counters.held.add(1, ordering: .relaxed)
            case .error, .done: counters.recordError(line)
            case .start, .other: break
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

/// Splits a byte stream into lines without copying complete lines that arrive whole.
private struct LineSplitter {
    private var partial: [UInt8] = []

    mutating func feed(_ buffer: ByteBuffer, _ body: (ArraySlice<UInt8>) -> Void) {
        var bytes = partial
        bytes.append(contentsOf: buffer.readableBytesView)
        var start = 0
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            body(bytes[start..<newline])
            start = newline + 1
        }
        partial = Array(bytes[start...])
    }
}

/// The type of an agentd event line, read from its fixed `"type":"…"` field.
private enum EventKind {
    case start, delta, done, error, other

    private static let marker = Array(#""type":""#.utf8)

    init(_ line: ArraySlice<UInt8>) {
        guard let at = line.firstRange(of: Self.marker) else {
            self = .other
            return
        }
        switch line[at.upperBound...].prefix(5) {
        case Array("delta".utf8)[...]: self = .delta
        case Array("done\"".utf8)[...]: self = .done
        case Array("error".utf8)[...]: self = .error
        case Array("start".utf8)[...]: self = .start
        default: self = .other
        }
    }
}

extension ByteBufferView {
    /// True if this SSE chunk carries reply text: a `"content":"` followed by a character.
    /// (The first chunk of a reply carries the role and an empty content.)
    fileprivate func containsText() -> Bool {
        let marker = Array(#""content":""#.utf8)
        var rest = self[...]
        while let range = rest.firstRange(of: marker), range.upperBound < rest.endIndex {
            if rest[range.upperBound] != UInt8(ascii: "\"") { return true }
            rest = rest[range.upperBound...]
        }
        return false
    }
}
