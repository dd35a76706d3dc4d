import Glibc
import NIOCore
import NIOPosix

/// Where and how a socket is bound; a reload rebinds an agent only when this changes.
struct SocketBinding: Sendable, Equatable {
    var path: String
    var mode: UInt32
    var group: gid_t?
}

/// One listening Unix socket and the task that accepts on it.
final class Listener: AgentListener {
    let binding: SocketBinding
    private let inode: UInt64
    private let serverChannel: any Channel
    private let acceptLoop: Task<Void, Never>

    private init(binding: SocketBinding, inode: UInt64, serverChannel: any Channel, acceptLoop: Task<Void, Never>) {
        self.binding = binding
        self.inode = inode
        self.serverChannel = serverChannel
        self.acceptLoop = acceptLoop
    }

    /// Binds `address` and serves each connection with `handler`, concurrently, on the event
    /// loop that owns the connection.
    static func start(
        _ address: SocketBinding, on eventLoops: ServingEventLoops, maxLineBytes: @escaping @Sendable () -> Int,
        handler: ConnectionHandler
    ) async throws -> Listener {
        let bound = try UnixSocket.listen(path: address.path, mode: address.mode, group: address.group)
        let server: NIOAsyncChannel<AcceptedConnection, Never>
        do {
            server = try await ServerBootstrap(group: eventLoops.group)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(bound.descriptor) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let activation = ActivationSignal(eventLoop: channel.eventLoop)
                        try channel.pipeline.syncOperations.addHandlers(
                            activation, ByteToMessageHandler(LineFramer(maxLineBytes: maxLineBytes)))
                        return AcceptedConnection(
                            channel: try wrapFinishingWhenDropped(channel), active: activation.active)
                    }
                }
        } catch {
            close(bound.descriptor)
            UnixSocket.remove(path: address.path, inode: bound.inode)
            throw error
        }
        // NIO adopts the socket by listening again with its default backlog (128), and its
        // `.backlog` option only applies to sockets it binds itself: a burst of connects beyond
        // 128 then failed with EAGAIN. Listening once more restores the daemon's backlog.
        Glibc.listen(bound.descriptor, UnixSocket.backlog)
        let acceptLoop = Task {
            _ = try? await server.executeThenClose { connections in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in connections {
                            let executor = eventLoops.executor(for: connection.channel.channel.eventLoop)
                            group.addTask(executorPreference: executor) {
                                await handler.serve(connection, on: executor)
                            }
                        }
                    } catch {
                        // The listening socket was closed: stop accepting, let open connections finish.
                    }
                }
            }
        }
        return Listener(binding: address, inode: bound.inode, serverChannel: server.channel, acceptLoop: acceptLoop)
    }

    /// Returns once every connection accepted here has ended.
    func connectionsEnded() async {
        await acceptLoop.value
    }

    /// Stops accepting and removes the socket file; connections already open carry on.
    func stop() async {
        UnixSocket.remove(path: binding.path, inode: inode)
        try? await serverChannel.close()
    }
}

/// An accepted connection, handed over before NIO has necessarily registered it.
///
/// When a reload or shutdown closes the listener while NIO is still setting up a connection it
/// accepted, NIO drops the connection instead of handing it over (swift-nio issue 2813). An
/// `NIOAsyncChannel` made with `init(wrappingChannelSynchronously:)` traps when dropped
/// unfinished, which took the whole daemon down; one made with `init(synchronouslyWrapping:)`
/// finishes instead, and this class's deinit closes the connection, which would otherwise stay
/// open with nobody reading it. A connection that was served is closed already.
final class AcceptedConnection: Sendable {
    let channel: NIOAsyncChannel<InboundLine, ByteBuffer>
    /// Completes once the channel is active: writes made before that are dropped.
    let active: EventLoopFuture<Void>

    init(channel: NIOAsyncChannel<InboundLine, ByteBuffer>, active: EventLoopFuture<Void>) {
        self.channel = channel
        self.active = active
    }

    deinit {
        channel.channel.close(promise: nil)
    }
}

/// Wraps an accepted channel with NIO's deprecated `init(synchronouslyWrapping:)` on purpose:
/// its writer finishes when dropped, where the current initialiser traps (see
/// `AcceptedConnection`). No replacement exists until NIO hands back or closes the connections
/// it drops (swift-nio PR 3111); the deprecated witness below is called through this protocol
/// so that this one use is the only place that knows, instead of a warning in every build.
private protocol FinishingWhenDropped {
    static func wrapFinishingWhenDropped(_ channel: any Channel) throws -> Self
}

extension NIOAsyncChannel: FinishingWhenDropped where Inbound == InboundLine, Outbound == ByteBuffer {
    @available(*, deprecated, message: "NIOAsyncChannel(synchronouslyWrapping:), see FinishingWhenDropped")
    fileprivate static func wrapFinishingWhenDropped(_ channel: any Channel) throws -> Self {
        try Self(synchronouslyWrapping: channel)
    }
}

private func wrapFinishingWhenDropped<Wrapped: FinishingWhenDropped>(_ channel: any Channel) throws -> Wrapped {
    try Wrapped.wrapFinishingWhenDropped(channel)
}

/// Completes `active` when an accepted channel becomes active (NIO registers it on its loop
/// after the listener has handed it over), or fails it if the channel goes first.
final class ActivationSignal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<Void>
    var active: EventLoopFuture<Void> { promise.futureResult }

    init(eventLoop: any EventLoop) {
        promise = eventLoop.makePromise()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { promise.succeed() }
    }

    func channelActive(context: ChannelHandlerContext) {
        promise.succeed()
        context.fireChannelActive()
    }

    /// Later completions are no-ops: this only settles a channel closed before it was active.
    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(ChannelError.ioOnClosedChannel)
    }
}
