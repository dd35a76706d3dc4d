import Basics
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One event loop for every test server; it lives as long as the test process.
let testEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

/// What a test server has observed.
final class ServerStats: Sendable {
    struct Counts: Sendable {
        var accepted = 0
        var closed = 0
        /// Body bytes of `/large` that reached the socket.
        var largeBytesWritten = 0
    }

    private let counts = Mutex(Counts())

    var current: Counts { counts.withLock { $0 } }

    func update(_ change: (inout Counts) -> Void) {
        counts.withLock { change(&$0) }
    }

    /// Polls until `condition` holds or `limit` passes; returns whether it held. The default is
    /// generous: under a sanitizer, the whole suite running at once on 2 cores once took more
    /// than 3 s to get a connection accepted, and a wait that succeeds returns at once.
    func wait(until condition: (Counts) -> Bool, within limit: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if condition(current) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return condition(current)
    }
}

/// An HTTP/1.1 server on 127.0.0.1 with the routes the transport tests need:
/// - `/echo`: the method, the header lines, a blank line, then the request body
/// - `/ok`: "ok" (keep-alive), head and body in one write
/// - `/stream?n=N&delay=MS`: N chunks "chunk I\n", MS apart
/// - `/forever`: a chunk every 20 ms until the connection closes
/// - `/stall-body`: the head and one chunk, then silence
/// - `/stall-head`: silence
/// - `/stall-after-head`: the head, then silence
/// - `/reset`: the head promising 100000 bytes, 10 bytes, then close
/// - `/large?bytes=N`: N bytes, written only while the socket accepts them
final class TestServer: Sendable {
    let stats: ServerStats
    let port: Int
    private let channel: any Channel

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(channel: any Channel, stats: ServerStats) {
        self.channel = channel
        self.stats = stats
        port = channel.localAddress?.port ?? 0
    }

    static func start() async throws -> TestServer {
        let stats = ServerStats()
        let channel = try await ServerBootstrap(group: testEventLoopGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // A small send buffer keeps the back-pressure test's numbers far apart.
            .childChannelOption(.socketOption(.so_sndbuf), value: 64 << 10)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ConnectionCounter(stats: stats))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RouteHandler(stats: stats))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestServer(channel: channel, stats: stats)
    }

    func stop() async {
        try? await channel.close()
    }
}

private final class ConnectionCounter: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    let stats: ServerStats

    init(stats: ServerStats) { self.stats = stats }

    func channelActive(context: ChannelHandlerContext) {
        stats.update { $0.accepted += 1 }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stats.update { $0.closed += 1 }
        context.fireChannelInactive()
    }
}

private final class RouteHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let stats: ServerStats
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var largeRemaining = 0

    init(stats: ServerStats) { self.stats = stats }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            if let head { route(head, context: context) }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pumpLarge(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        let query = parts.count > 1 ? parts[1] : ""
        func parameter(_ name: String) -> Int {
            for pair in query.split(separator: "&") where pair.hasPrefix(name + "=") {
                return Int(pair.dropFirst(name.count + 1)) ?? 0
            }
            return 0
        }
        switch parts.first.map(String.init) ?? "" {
        case "/echo":
            var text = "\(head.method.rawValue)\n"
            for (name, value) in head.headers { text += "\(name): \(value)\n" }
            respond(Array(text.utf8) + [UInt8(ascii: "\n")] + body, context: context)
        case "/ok":
            respond(Array("ok".utf8), context: context)
        case "/stream":
            writeHead(context: context, chunked: true)
            streamChunks(0, of: parameter("n"), every: .milliseconds(Int64(parameter("delay"))), context: context)
        case "/forever":
            writeHead(context: context, chunked: true)
            streamChunks(0, of: .max, every: .milliseconds(20), context: context)
        case "/stall-body":
            writeHead(context: context, chunked: true)
            writeChunk("first\n", context: context)
        case "/stall-head":
            break
        case "/stall-after-head":
            writeHead(context: context, chunked: true)
        case "/reset":
            writeHead(context: context, contentLength: 100_000)
            writeChunk("0123456789", context: context)
            context.close(promise: nil)
        case "/large":
            largeRemaining = parameter("bytes")
            writeHead(context: context, contentLength: largeRemaining)
            pumpLarge(context: context)
        default:
            respond(Array("no such route".utf8), status: .notFound, context: context)
        }
    }

    /// Head and body in one write.
    private func respond(_ body: [UInt8], status: HTTPResponseStatus = .ok, context: ChannelHandlerContext) {
        writeHead(context: context, status: status, contentLength: body.count, flush: false)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func writeHead(
        context: ChannelHandlerContext, status: HTTPResponseStatus = .ok, chunked: Bool = false,
        contentLength: Int? = nil, flush: Bool = true
    ) {
        var headers = HTTPHeaders()
        if let contentLength { headers.add(name: "Content-Length", value: String(contentLength)) }
        if chunked { headers.add(name: "Transfer-Encoding", value: "chunked") }
        headers.add(name: "X-Test-Server", value: "yes")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        if flush { context.flush() }
    }

    private func writeChunk(_ text: String, context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
    }

    private func streamChunks(_ index: Int, of count: Int, every delay: TimeAmount, context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        guard index < count else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) {
            self.writeChunk("chunk \(index)\n", context: context)
            self.streamChunks(index + 1, of: count, every: delay, context: context)
        }
    }

    private func pumpLarge(context: ChannelHandlerContext) {
        guard largeRemaining > 0 else { return }
        while largeRemaining > 0, context.channel.isWritable {
            let count = min(64 << 10, largeRemaining)
            largeRemaining -= count
            var buffer = context.channel.allocator.buffer(capacity: count)
            buffer.writeRepeatingByte(UInt8(ascii: "a"), count: count)
            let stats = stats
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer)))).whenSuccess {
                stats.update { $0.largeBytesWritten += count }
            }
        }
        if largeRemaining == 0 {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            context.flush()
        }
    }
}

/// A loopback TCP listener that never accepts, with its accept queue filled: the kernel drops
/// further SYNs, so a client's connect neither succeeds nor fails until it gives up.
final class FullBacklogListener {
    let port: Int
    private let listener: Int32
    private var fillers: [Int32] = []

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = Loopback.address(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = Loopback.withSockaddr(&address) {
            bind(listener, $0, length) == 0 && listen(listener, 0) == 0 && getsockname(listener, $0, &length) == 0
        }
        guard listener >= 0, bound else {
            let reason = String(cString: strerror(errno))
            if listener >= 0 { Glibc.close(listener) }
            throw ListenError(reason: reason)
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        // A backlog of 0 queues one connection; a few more make sure the queue is full.
        for _ in 0..<4 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = Loopback.withSockaddr(&address) { connect(filler, $0, length) }
            fillers.append(filler)
        }
        // Let the handshakes of the queued ones complete before a client tries.
        usleep(50_000)
    }

    func close() {
        for filler in fillers { Glibc.close(filler) }
        Glibc.close(listener)
    }
}

struct ListenError: Error {
    var reason: String
}
