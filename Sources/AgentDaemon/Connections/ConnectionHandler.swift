import AgentProtocol
import AgentRunner
import Glibc
import JSON
import NIOCore
import NIOPosix
import Synchronization

/// The requests in flight on one connection, by id, so `cancel` lines and a disconnect can
/// reach them; and the request tasks still running, so the connection closes only after their
/// last events.
final class ConnectionState: Sendable {
    private let inFlight = Mutex<[RequestID: RequestHandle]>([:])

    private struct Running {
        var count = 0
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let running = Mutex(Running())

    /// Each request runs as one unstructured task, not as a child of the connection's task
    /// group that awaits it: a task of its own so that its handle can cancel it with a reason,
    /// and no second task, which cost every held stream 2.8 KiB (BENCHMARKS.md, fix 22).
    func launch(on executor: EventLoopExecutor, _ work: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        running.withLock { $0.count += 1 }
        return Task(executorPreference: executor) {
            await work()
            self.running.withLock { running in
                running.count -= 1
                return running.count == 0 ? running.waiter.take() : nil
            }?.resume()
        }
    }

    /// Returns once every launched request task has ended.
    func requestsEnded() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let idle = running.withLock { running in
                guard running.count > 0 else { return true }
                running.waiter = waiter
                return false
            }
            if idle { waiter.resume() }
        }
    }

    /// False when a request with this id is already in flight here.
    func register(_ id: RequestID, _ handle: RequestHandle) -> Bool {
        inFlight.withLock { requests in
            guard requests[id] == nil else { return false }
            requests[id] = handle
            return true
        }
    }

    /// Forgets `handle`'s request; a later request that reused the id is left alone.
    func finish(_ id: RequestID, _ handle: RequestHandle) {
        inFlight.withLock { requests in
            if requests[id] === handle { requests[id] = nil }
        }
    }

    /// False when no request with this id is in flight here.
    func cancel(_ id: RequestID, reason: ErrorInfo) -> Bool {
        guard let handle = inFlight.withLock({ $0[id] }) else { return false }
        handle.cancel(reason)
        return true
    }

    func cancelAll(reason: ErrorInfo) {
        for handle in inFlight.withLock({ Array($0.values) }) { handle.cancel(reason) }
    }

    var count: Int { inFlight.withLock { $0.count } }
}

/// Writes event lines to a connection, waiting while the client is not reading.
struct ChannelSink: EventSink {
    let writer: NIOAsyncChannelOutboundWriter<ByteBuffer>

    /// One buffer for the whole batch: one `write(2)`.
    func send(_ events: [JSONValue]) async throws {
        try await writer.write(ByteBuffer(bytes: Event.lines(events)))
    }
}

/// What a connection's lines are for.
enum ConnectionRoute: Sendable {
    case agent(AgentRuntime)
    /// The control socket: its commands, and `chat` for any agent.
    case control(ControlCommands)
}

/// Serves one accepted connection until the client closes it: decodes lines, runs requests
/// concurrently, answers cancels, and cancels whatever is left when the client disconnects.
struct ConnectionHandler: Sendable {
    let route: ConnectionRoute
    let runner: RequestRunner
    let tracker: ConnectionTracker
    let decoder: RequestDecoder
    let audit: AuditLog

    /// `executor` runs the connection's requests: the task calling this prefers it already, and
    /// the request tasks, which are unstructured, are given it.
    func serve(_ connection: AcceptedConnection, on executor: EventLoopExecutor) async {
        let channel = connection.channel
        let state = ConnectionState()
        let peer = await Self.peerIdentity(of: channel.channel)
        guard let registration = tracker.open(state, channel: channel.channel) else {
            audit.connectionRefused(limit: tracker.limit)
            // Over max_connections: one clear refusal, then close. Nothing has been read, so the
            // channel may not be active yet, and a write before that would be dropped.
            try? await channel.executeThenClose { _, outbound in
                try await connection.active.get()
                try await ChannelSink(writer: outbound).send(
                    Event.error(
                        id: nil,
                        ErrorInfo(
                            code: .overloaded, message: "too many connections (max_connections \(tracker.limit))",
                            retryable: true)))
            }
            return
        }
        defer { tracker.close(registration) }
        // A full disconnect closes the channel (EPOLLHUP); a half-close only ends the input,
        // and the requests already sent still get their answers.
        channel.channel.closeFuture.whenComplete { _ in state.cancelAll(reason: .clientDisconnected) }

        try? await channel.executeThenClose { inbound, outbound in
            let sink = ChannelSink(writer: outbound)
            await withTaskCancellationHandler {
                do {
                    for try await item in inbound {
                        switch item {
                        case .tooLarge(let limit):
                            try await sink.send(
                                Event.error(
                                    id: nil,
                                    ErrorInfo(
                                        code: .requestTooLarge,
                                        message: "request line exceeds max_request_bytes (\(limit) bytes); discarded")))
                        case .line(let bytes):
                            try await handle(line: bytes, state: state, peer: peer, sink: sink, executor: executor)
                        }
                    }
                } catch {
                    // The input failed (reset) or the client stopped taking events: nothing more to read.
                }
                await state.requestsEnded()
            } onCancel: {
                state.cancelAll(reason: .clientDisconnected)
            }
        }
    }

    /// Answers a line at once, or starts the request it carries, which runs concurrently with
    /// later lines.
    private func handle(
        line: ByteBuffer, state: ConnectionState, peer: PeerIdentity?, sink: ChannelSink, executor: EventLoopExecutor
    ) async throws {
        switch decoder.decode(line.readableBytesView) {
        case .failure(let error):
            try await sink.send(Event.error(id: error.id, error.info))
        case .success(.cancel(let id)):
            if !state.cancel(id, reason: .cancelledByClient) {
                try await sink.send(
                    Event.error(
                        id: id,
                        ErrorInfo(
                            code: .unknownRequest, message: "no request with id \(id) is in flight on this connection"))
                )
            }
        case .success(.chat(let request)):
            guard case .agent(let agent) = route else {
                try await sink.send(
                    Event.error(
                        id: request.id,
                        ErrorInfo(
                            code: .badRequest,
                            message: "command: required on the control socket (\(ControlCommands.names))")))
                return
            }
            try await admit(
                request, to: agent, state: state, peer: peer, checksAccess: true, sink: sink, executor: executor)
        case .success(.control(let id, let command, let body)):
            // The decoder takes commands on the control socket only.
            guard case .control(let control) = route else { return }
            if command == "chat" {
                switch control.chatTarget(id: id, body: body, decoder: decoder) {
                case .failure(let error):
                    try await sink.send(Event.error(id: id, error.info))
                    return
                case .success(let (request, agent)):
                    // The control socket is the administrator's: no `allow` applies, yet the
                    // peer still owns the sessions it uses.
                    try await admit(
                        request, to: agent, state: state, peer: peer, checksAccess: false, sink: sink,
                        executor: executor)
                }
                return
            }
            let reply = await control.run(id: id, command: command, body: body, peer: peer)
            try await sink.send(reply)
        }
    }

    private func admit(
        _ request: ChatRequest, to agent: AgentRuntime, state: ConnectionState, peer: PeerIdentity?, checksAccess: Bool,
        sink: ChannelSink, executor: EventLoopExecutor
    ) async throws {
        if tracker.isShuttingDown {
            try await sink.send(
                Event.error(
                    id: request.id, ErrorInfo(code: .shuttingDown, message: "agentd is shutting down", retryable: true))
            )
            return
        }
        if agent.isRemoved {
            try await sink.send(
                Event.error(
                    id: request.id,
                    ErrorInfo(code: .unknownAgent, message: "agent \(agent.name) was removed by a reload")))
            return
        }
        if checksAccess, let peer, await !peer.isAllowed(by: agent.definition.allow) {
            let user = await peer.names().user
            audit.forbidden(agent: agent.name, peer: peer, user: user)
            agent.metrics.refused(.forbidden)
            try await sink.send(
                Event.error(
                    id: request.id,
                    ErrorInfo(
                        code: .forbidden,
                        message: "uid \(peer.uid) (\(user ?? "unknown user")) is not allowed to use agent \(agent.name)"
                    )))
            return
        }
        // The limiter place is taken here, in line order, so pipelined requests are admitted
        // in the order they arrived.
        let reservation: ConcurrencyLimiter.Reservation
        do {
            reservation = try agent.limiter.reserve(agent: agent.name)
        } catch {
            agent.count {
                $0.requests += 1
                $0.errors += 1
            }
            agent.metrics.refused(error.code)
            try await sink.send(Event.error(id: request.id, error))
            return
        }
        let handle = RequestHandle()
        guard state.register(request.id, handle) else {
            reservation.finish()
            try await sink.send(
                Event.error(
                    id: request.id,
                    ErrorInfo(
                        code: .badRequest,
                        message: "id: a request with id \(request.id) is already in flight on this connection")))
            return
        }
        let runner = runner
        let tracker = tracker
        tracker.started(handle)
        let task = state.launch(on: executor) {
            await agent.serve(
                request, with: runner, reservation: reservation, handle: handle, peer: peer?.runnerPeer,
                sink: sink, beforeTerminal: { state.finish(request.id, handle) })
            tracker.finished(handle)
            state.finish(request.id, handle)
        }
        handle.attach(task)
    }

    /// `struct ucred` of SO_PEERCRED; Glibc hides its own declaration behind _GNU_SOURCE.
    struct PeerCredentials: Sendable {
        var pid: Int32
        var uid: UInt32
        var gid: UInt32
    }

    static func peerIdentity(of channel: any Channel) async -> PeerIdentity? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: .socket, name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
        guard let credentials = try? await future.get() else { return nil }
        return PeerIdentity(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
    }
}
