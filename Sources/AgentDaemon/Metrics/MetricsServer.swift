import AgentCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// `GET /metrics` on `metrics.listen`: the Prometheus text exposition, rendered per scrape.
///
/// HTTP/1.1 with keep-alive, as Prometheus scrapes; anything but `GET /metrics` (or `HEAD`) is
/// 404 or 405. It serves numbers only: no request content, no secret, ever reaches a metric.
struct MetricsServer: Sendable {
    /// The text format version 0.0.4, which Prometheus and `promtool` read.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let channel: any Channel
    /// Where it listens, with the port the kernel chose when `listen` asked for 0.
    let address: MetricsListen

    static func start(
        _ listen: MetricsListen, on group: any EventLoopGroup, render: @escaping @Sendable () -> [UInt8]
    ) async throws -> MetricsServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(render: render))
                }
            }
            .bind(host: listen.host, port: listen.port).get()
        return MetricsServer(
            channel: channel, address: MetricsListen(host: listen.host, port: channel.localAddress?.port ?? listen.port)
        )
    }

    /// Stops listening; scrapes in progress end with their connection.
    func stop() async {
        try? await channel.close()
    }
}

/// One scrape connection.
private final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let render: @Sendable () -> [UInt8]
    private var head: HTTPRequestHead?

    init(render: @escaping @Sendable () -> [UInt8]) {
        self.render = render
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead): head = requestHead
        case .body: break  // a scrape has no body; anything sent is ignored
        case .end:
            guard let requestHead = head else { return }
            head = nil
            respond(to: requestHead, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let status: HTTPResponseStatus
        var body: [UInt8]
        var headers = HTTPHeaders()
        if path != "/metrics" {
            status = .notFound
            body = Array("not found: agentd serves /metrics\n".utf8)
        } else if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            body = Array("GET /metrics\n".utf8)
            headers.add(name: "Allow", value: "GET, HEAD")
        } else {
            status = .ok
            body = render()
        }
        headers.add(
            name: "Content-Type", value: status == .ok ? MetricsServer.contentType : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        if request.method == .HEAD { body = [] }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
            promise: nil)
        if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
        let sent = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let context = NIOLoopBound(context, eventLoop: context.eventLoop)
            sent.whenComplete { _ in context.value.close(promise: nil) }
        }
    }
}
