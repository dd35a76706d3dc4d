import JSON
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An offline Mistral API over HTTP/1.1 on loopback, for tests, benchmarks and `make run`.
public final class MistralEmulatorServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let counters: StatsCounters
    private let host: String
    /// The port listened on (the one chosen when the configuration asked for 0).
    public let port: Int

    /// `http://HOST:PORT`, without a trailing slash.
    public var baseURL: String {
        host.contains(":") ? "http://[\(host)]:\(port)" : "http://\(host):\(port)"
    }

    private init(
        group: MultiThreadedEventLoopGroup, channel: any Channel, counters: StatsCounters, host: String, port: Int
    ) {
        self.group = group
        self.channel = channel
        self.counters = counters
        self.host = host
        self.port = port
    }

    /// Binds and starts serving; returns once the socket listens.
    public static func start(_ configuration: EmulatorConfiguration) async throws -> MistralEmulatorServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(2, System.coreCount))
        let api = EmulatorAPI(configuration: configuration)
        let counters = StatsCounters()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        EmulatorHTTPHandler(api: api, counters: counters, streamWrites: configuration.streamWrites))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
            let port = channel.localAddress?.port ?? configuration.port
            return MistralEmulatorServer(
                group: group, channel: channel, counters: counters, host: configuration.host, port: port)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    public func stats() -> EmulatorStats { counters.snapshot() }

    /// Stops listening and closes every connection, stalled ones included.
    public func shutdown() async throws {
        try? await channel.close()
        try await group.shutdownGracefully()
    }
}

/// The live counters behind `EmulatorStats`.
final class StatsCounters: Sendable {
    let requests = Atomic<Int>(0)
    let activeStreams = Atomic<Int>(0)
    let openConnections = Atomic<Int>(0)
    /// The body of the latest API request, for tests that check what a client sent upstream.
    let lastBody = Mutex<[UInt8]>([])
    /// The `User-Agent` of the latest API request, so tests can check what a client sends.
    let lastUserAgent = Mutex<String?>(nil)

    func snapshot() -> EmulatorStats {
        EmulatorStats(
            requests: requests.load(ordering: .relaxed), activeStreams: activeStreams.load(ordering: .relaxed),
            openConnections: openConnections.load(ordering: .relaxed))
    }

    var json: JSONValue {
        let stats = snapshot()
        return [
            "requests": .int(Int64(stats.requests)), "active_streams": .int(Int64(stats.activeStreams)),
            "open_connections": .int(Int64(stats.openConnections)),
            "last_user_agent": lastUserAgent.withLock { $0 }.map(JSONValue.string) ?? .null,
        ]
    }
}

/// One connection: collects each request, asks `EmulatorAPI` for the reply, plays it out with its
/// delays, pacing and interruptions. Everything runs on the connection's event loop.
final class EmulatorHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Mistral's bodies are small; a runaway client must not exhaust memory.
    static let maxBodyBytes = 64 << 20

    private let api: EmulatorAPI
    private let counters: StatsCounters
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyTooLarge = false
    /// True while this connection's response counts in `activeStreams`.
    private var counted = false
    private var scheduled: Scheduled<Void>?
    private let streamWrites: EmulatorConfiguration.StreamWrites
    /// The rest of an unpaced per-event stream, waiting for the socket to drain.
    private var unwritten: (events: ArraySlice<[UInt8]>, keepAlive: Bool)?

    init(api: EmulatorAPI, counters: StatsCounters, streamWrites: EmulatorConfiguration.StreamWrites) {
        self.api = api
        self.counters = counters
        self.streamWrites = streamWrites
    }

    func channelActive(context: ChannelHandlerContext) {
        counters.openConnections.add(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        counters.openConnections.subtract(1, ordering: .relaxed)
        scheduled?.cancel()
        scheduled = nil
        unwritten = nil
        finishResponse()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let (events, keepAlive) = unwritten {
            unwritten = nil
            writeEach(events, keepAlive: keepAlive, context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body.removeAll(keepingCapacity: true)
            bodyTooLarge = false
            // libcurl asks before larger uploads unless told not to; answering saves its one-second wait.
            if requestHead.headers.first(name: "expect")?.lowercased() == "100-continue" {
                let interim = HTTPResponseHead(version: requestHead.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
            }
        case .body(let buffer):
            if body.count + buffer.readableBytes > Self.maxBodyBytes {
                bodyTooLarge = true
            } else {
                body.append(contentsOf: buffer.readableBytesView)
            }
        case .end:
            guard let requestHead = head else { return }
            head = nil
            handle(requestHead, context: context)
        }
    }

    private func handle(_ requestHead: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = requestHead.isKeepAlive
        if requestHead.method == .GET, requestHead.uri.split(separator: "?").first == "/_emulator/stats" {
            play(.json(200, counters.json), keepAlive: keepAlive, counted: false, context: context)
            return
        }
        if requestHead.method == .GET, requestHead.uri.split(separator: "?").first == "/_emulator/last-request" {
            let body = counters.lastBody.withLock { (try? JSONParser.parse(bytes: $0)) ?? .null }
            play(.json(200, body), keepAlive: keepAlive, counted: false, context: context)
            return
        }
        counters.requests.add(1, ordering: .relaxed)
        counters.lastBody.withLock { $0 = body }
        let userAgent = requestHead.headers.first(name: "user-agent")
        counters.lastUserAgent.withLock { $0 = userAgent }
        let reply =
            bodyTooLarge
            ? Reply.json(413, ["detail": "Request body too large"])
            : api.respond(
                method: requestHead.method.rawValue, path: requestHead.uri,
                authorization: requestHead.headers.first(name: "authorization"), body: body)
        body.removeAll(keepingCapacity: body.count < 1 << 20)
        play(reply, keepAlive: keepAlive, counted: true, context: context)
    }

    private func play(_ reply: Reply, keepAlive: Bool, counted: Bool, context: ChannelHandlerContext) {
        if counted {
            self.counted = true
            counters.activeStreams.add(1, ordering: .relaxed)
        }
        if reply.delayMilliseconds > 0 {
            scheduled = context.eventLoop.assumeIsolated().scheduleTask(
                in: .milliseconds(Int64(reply.delayMilliseconds))
            ) {
                self.sendHead(reply, keepAlive: keepAlive, context: context)
            }
        } else {
            sendHead(reply, keepAlive: keepAlive, context: context)
        }
    }

    private func sendHead(_ reply: Reply, keepAlive: Bool, context: ChannelHandlerContext) {
        scheduled = nil
        if reply.interruption == .stallHead { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: reply.contentType)
        if case .bytes(let bytes) = reply.body { headers.add(name: "Content-Length", value: String(bytes.count)) }
        for header in reply.headers { headers.add(name: header.name, value: header.value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: reply.status)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if reply.interruption == .stallAfterHead {
            context.flush()
            return
        }

        switch reply.body {
        case .bytes(let bytes):
            guard let interruption = reply.interruption else {
                write(bytes, context: context)
                end(keepAlive: keepAlive, context: context)
                return
            }
            write(Array(bytes.prefix(bytes.count / 2)), context: context)
            interrupt(interruption, context: context)
        case .events(let events):
            if let interruption = reply.interruption {
                write(events.prefix(2).flatMap { $0 }, context: context)
                interrupt(interruption, context: context)
            } else if reply.chunkIntervalMilliseconds > 0 {
                pace(
                    events[...], every: .milliseconds(Int64(reply.chunkIntervalMilliseconds)), keepAlive: keepAlive,
                    context: context)
            } else if streamWrites == .batched {
                write(events.flatMap { $0 }, context: context)
                end(keepAlive: keepAlive, context: context)
            } else {
                writeEach(events[...], keepAlive: keepAlive, context: context)
            }
        }
    }

    /// Each event in a write and flush of its own, a burst at a time: while the client does not
    /// read, the rest waits for the socket to drain (as a server's kernel buffer makes it wait),
    /// and between bursts the loop serves its other connections. Written in one go, a
    /// 40,000-event reply held the loop for seconds and buffered the whole reply in memory.
    private func writeEach(_ events: ArraySlice<[UInt8]>, keepAlive: Bool, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        var rest = events
        for _ in 0..<64 {
            guard let event = rest.popFirst() else { break }
            write(event, context: context)
            context.flush()
            guard context.channel.isWritable else {
                unwritten = (rest, keepAlive)
                return
            }
        }
        guard !rest.isEmpty else {
            end(keepAlive: keepAlive, context: context)
            return
        }
        context.eventLoop.assumeIsolated().execute { self.writeEach(rest, keepAlive: keepAlive, context: context) }
    }

    private func pace(
        _ events: ArraySlice<[UInt8]>, every interval: TimeAmount, keepAlive: Bool, context: ChannelHandlerContext
    ) {
        guard let first = events.first else {
            end(keepAlive: keepAlive, context: context)
            return
        }
        write(first, context: context)
        context.flush()
        let rest = events.dropFirst()
        guard !rest.isEmpty else {
            end(keepAlive: keepAlive, context: context)
            return
        }
        scheduled = context.eventLoop.assumeIsolated().scheduleTask(in: interval) {
            self.pace(rest, every: interval, keepAlive: keepAlive, context: context)
        }
    }

    private func write(_ bytes: [UInt8], context: ChannelHandlerContext) {
        guard !bytes.isEmpty else { return }
        let buffer = context.channel.allocator.buffer(bytes: bytes)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
    }

    private func end(keepAlive: Bool, context: ChannelHandlerContext) {
        scheduled = nil
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            self.finishResponse()
            if !keepAlive { context.close(promise: nil) }
        }
    }

    private func interrupt(_ interruption: Reply.Interruption, context: ChannelHandlerContext) {
        context.flush()
        guard interruption == .reset else { return }
        // SO_LINGER 0 makes close send a TCP RST instead of an orderly FIN.
        let closeNow = { context.close(promise: nil) }
        if let provider = context.channel as? any SocketOptionProvider {
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in closeNow() }
        } else {
            closeNow()
        }
    }

    private func finishResponse() {
        guard counted else { return }
        counted = false
        counters.activeStreams.subtract(1, ordering: .relaxed)
    }
}
