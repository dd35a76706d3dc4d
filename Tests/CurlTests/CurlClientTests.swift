internal import CCurl
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import Curl

/// The whole body, or the error that ended it.
private func collect(_ response: HTTPResponse) async throws(CurlError) -> [UInt8] {
    var body: [UInt8] = []
    for try await chunk in response { body += chunk }
    return body
}

/// The CurlError `body` throws, or nil if it succeeds (or throws something else).
private func failure(_ body: () async throws -> Void) async -> CurlError? {
    do {
        try await body()
        return nil
    } catch {
        return error as? CurlError
    }
}

/// Runs tasks on one NIO event loop's thread, one job after another.
private final class OneLoopExecutor: TaskExecutor {
    let loop: any EventLoop

    init(loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Runs each job at once on the thread that enqueues it: a task resumed by the curl thread then
/// runs inside the call that resumed it, before curl goes on.
private final class InlineExecutor: TaskExecutor {
    func enqueue(_ job: consuming ExecutorJob) {
        UnownedJob(job).runSynchronously(on: asUnownedTaskExecutor())
    }
}

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A server and a client for one test; both stop when it ends.
private func withServer(_ body: (TestServer, CurlClient) async throws -> Void) async throws {
    let server = try await TestServer.start()
    let client = try CurlClient()
    defer { client.shutdown() }
    do {
        try await body(server, client)
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}

@Suite struct CurlClientTests {
    @Test func postSendsMethodHeadersAndBodyWithoutExpect() async throws {
        try await withServer { server, client in
            let body = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 % 251) }
            let request = HTTPRequest(
                url: server.baseURL + "/echo",
                headers: [
                    HTTPHeader("Authorization", "Bearer sk-test"), HTTPHeader("Content-Type", "application/json"),
                ],
                body: body)
            let response = try await client.send(request)
            #expect(response.status == 200)
            #expect(response.header("x-TEST-server") == "yes")
            let echoed = try await collect(response)
            let separator = echoed.firstRange(of: [UInt8(ascii: "\n"), UInt8(ascii: "\n")])!
            let head = text(Array(echoed[..<separator.lowerBound])).lowercased()
            #expect(head.hasPrefix("post\n"))
            #expect(head.contains("authorization: bearer sk-test"))
            #expect(head.contains("content-type: application/json"))
            #expect(head.contains("content-length: 100000"))
            #expect(!head.contains("expect"))
            #expect(Array(echoed[separator.upperBound...]) == body)
        }
    }

    @Test func getStreamsEveryChunk() async throws {
        try await withServer { server, client in
            let response = try await client.send(
                HTTPRequest(url: server.baseURL + "/stream?n=5&delay=10", method: "GET"))
            let expected = (0..<5).map { "chunk \($0)\n" }.joined()
            #expect(text(try await collect(response)) == expected)
        }
    }

    @Test func aBodyReadWithItsHeadIsAvailableWhenSendReturns() async throws {
        try await withServer { server, client in
            // The head's waiter resumes once curl is done with the read, not from the header
            // callback, which runs before curl has handed over the body bytes read with it.
            try await withTaskExecutorPreference(InlineExecutor()) {
                let response = try await client.send(HTTPRequest(url: server.baseURL + "/ok", method: "GET"))
                #expect(response.isBodyAvailable)
                #expect(text(try await collect(response)) == "ok")
            }
        }
    }

    @Test func aHeadWithoutItsBodyLeavesTheBodyUnavailable() async throws {
        try await withServer { server, client in
            let response = try await client.send(HTTPRequest(url: server.baseURL + "/stall-after-head", method: "GET"))
            #expect(!response.isBodyAvailable)
            response.cancel()
            #expect(response.isBodyAvailable, "the end, a cancellation, is there to read")
        }
    }

    @Test func malformedHeaderIsRefusedWithoutEchoingIt() async throws {
        try await withServer { server, client in
            let request = HTTPRequest(
                url: server.baseURL + "/ok", headers: [HTTPHeader("Authorization", "Bearer sk-secret\r\nX-Evil: 1")])
            let error = await failure { _ = try await client.send(request) }
            #expect(error?.kind == .other)
            #expect(error.map { !$0.description.contains("sk-secret") } == true)
        }
    }

    @Test func sequentialRequestsReuseOneConnection() async throws {
        try await withServer { server, client in
            for _ in 0..<3 {
                let response = try await client.send(HTTPRequest(url: server.baseURL + "/ok", method: "GET"))
                #expect(text(try await collect(response)) == "ok")
            }
            #expect(server.stats.current.accepted == 1)
        }
    }

    @Test func connectionsOfABurstAreKeptForTheNextOne() async throws {
        try await withServer { server, client in
            for _ in 0..<2 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<20 {
                        group.addTask {
                            let response = try await client.send(
                                HTTPRequest(url: server.baseURL + "/stream?n=2&delay=20", method: "GET"))
                            _ = try await collect(response)
                        }
                    }
                    try await group.waitForAll()
                }
            }
            #expect(server.stats.current.accepted == 20)
        }
    }

    @Test func fiftyConcurrentTransfersComplete() async throws {
        try await withServer { server, client in
            let expected = (0..<3).map { "chunk \($0)\n" }.joined()
            let bodies = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let response = try await client.send(
                            HTTPRequest(url: server.baseURL + "/stream?n=3&delay=5", method: "GET"))
                        return text(try await collect(response))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(bodies == Array(repeating: expected, count: 50))
        }
    }

    @Test func slowConsumerPausesTheTransferWithoutIdleTimeout() async throws {
        // Reading the rest takes 64 pause-and-resume rounds, each needing the reading task to run.
        // On Swift's pool, which other suites' blocking waits fill, rounds came 6-18 s apart under
        // ASan (traced: curl resumed within 1 ms of each drain), past the total timeout; on a
        // thread of its own the task runs whenever the kernel gives it a core.
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ownThread = OneLoopExecutor(loop: loop.next())
        try await withServer { server, client in
            let size = 16 << 20
            // The idle timeout is half the consumer's nap: a paused transfer must not time out.
            // (Not short either: once reading resumes, the in-process server must keep up within it,
            // and under TSan, with other suites running, 150 ms and then 400 ms were missed.)
            let request = HTTPRequest(
                url: server.baseURL + "/large?bytes=\(size)", method: "GET", idleTimeout: .milliseconds(1500))
            let response = try await client.send(request)
            try await Task.sleep(for: .milliseconds(3000))
            let writtenWhileNotReading = server.stats.current.largeBytesWritten
            // Without back-pressure curl would swallow it all; with it, about 256 KiB plus socket buffers.
            #expect(
                writtenWhileNotReading < 4 << 20,
                "the server wrote \(writtenWhileNotReading) bytes while the client read nothing")
            let received = try await Task(executorPreference: ownThread) {
                var received = 0
                for try await chunk in response { received += chunk.count }
                return received
            }.value
            #expect(received == size)
        }
        try await loop.shutdownGracefully()
    }

    /// A body already received is handed out without waiting; the iterator must still let other
    /// tasks on the consumer's thread run now and then.
    @Test func readingABodyThatIsAllThereLetsOtherTasksOnTheThreadRun() async throws {
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let oneThread = OneLoopExecutor(loop: loop.next())
        try await withServer { server, client in
            let size = 200_000  // below the pause threshold: curl takes it all
            let request = HTTPRequest(url: server.baseURL + "/large?bytes=\(size)", method: "GET")
            let chunksBeforeTheOtherTaskRan = try await Task(executorPreference: oneThread) { () -> Int? in
                let response = try await client.send(request)
                #expect(await server.stats.wait { $0.largeBytesWritten == size })
                try await Task.sleep(for: .milliseconds(200))
                let otherTaskRan = Atomic(false)
                // Queued behind this task on the same thread: it runs only when this one lets go.
                Task(executorPreference: oneThread) { otherTaskRan.store(true, ordering: .relaxed) }
                var chunks = 0
                for try await _ in response {
                    if otherTaskRan.load(ordering: .relaxed) { return chunks }
                    chunks += 1
                }
                return nil
            }.value
            let ranAfter = try #require(chunksBeforeTheOtherTaskRan, "the other task ran only after the body ended")
            #expect(ranAfter <= HTTPResponse.Iterator.chunksBetweenYields)
        }
        try await loop.shutdownGracefully()
    }

    @Test func stallAfterTheHeadIsAnIdleTimeout() async throws {
        try await withServer { server, client in
            let request = HTTPRequest(
                url: server.baseURL + "/stall-body", method: "GET", idleTimeout: .milliseconds(200))
            let started = ContinuousClock.now
            let response = try await client.send(request)
            var chunks: [[UInt8]] = []
            let error = await failure {
                for try await chunk in response { chunks.append(chunk) }
            }
            #expect(error?.kind == .idleTimeout)
            #expect(chunks.joined().elementsEqual("first\n".utf8))
            let elapsed = ContinuousClock.now - started
            // The upper bound only tells the 200 ms deadline from the 60 s default on a loaded machine.
            #expect(elapsed >= .milliseconds(200) && elapsed < .seconds(10))
        }
    }

    @Test func noHeadIsAFirstByteTimeout() async throws {
        try await withServer { server, client in
            let request = HTTPRequest(url: server.baseURL + "/stall-head", firstByteTimeout: .milliseconds(200))
            let started = ContinuousClock.now
            let error = await failure { _ = try await client.send(request) }
            #expect(error?.kind == .firstByteTimeout)
            // The bound only tells the 200 ms deadline from the 30 s default on a loaded machine.
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }

    /// curl enforces the connect timeout through its timer callback alone: nothing happens on
    /// the socket of a connection that is never accepted. Were the loop to lose curl's timer, the
    /// transfer would end at agentd's first-byte deadline instead, with that error.
    @Test func connectThatIsNeverAcceptedHitsTheConnectTimeout() async throws {
        let listener = try FullBacklogListener()
        defer { listener.close() }
        let client = try CurlClient()
        defer { client.shutdown() }
        // Not a whole number of milliseconds: curl's timer is then never due exactly when the
        // loop is told about it.
        let request = HTTPRequest(
            url: "http://127.0.0.1:\(listener.port)/", method: "GET", connectTimeout: .microseconds(37_300),
            firstByteTimeout: .seconds(60))
        let error = await failure { _ = try await client.send(request) }
        #expect(error?.kind == .connectTimeout, "\(String(describing: error))")
    }

    @Test func endlessStreamHitsTheTotalTimeout() async throws {
        try await withServer { server, client in
            let request = HTTPRequest(url: server.baseURL + "/forever", method: "GET", totalTimeout: .milliseconds(300))
            // The total bounds the head as well: under a sanitizer, with the whole suite running,
            // the head sometimes came after the 300 ms.
            let error = await failure { _ = try await collect(try await client.send(request)) }
            #expect(error?.kind == .totalTimeout)
        }
    }

    @Test func closeMidBodyIsConnectionLost() async throws {
        try await withServer { server, client in
            let response = try await client.send(HTTPRequest(url: server.baseURL + "/reset", method: "GET"))
            let error = await failure { _ = try await collect(response) }
            #expect(error?.kind == .connectionLost)
        }
    }

    enum CancelWay: CaseIterable, Sendable { case cancelTask, cancelMethod, dropResponse }

    @Test(arguments: CancelWay.allCases)
    func cancellingMidStreamClosesTheConnection(way: CancelWay) async throws {
        try await withServer { server, client in
            let firstChunk = AsyncStream<Void>.makeStream()
            let reader = Task { () async throws -> Void in
                // One chunk, then silence: only the client's cancellation can end this connection.
                let response = try await client.send(HTTPRequest(url: server.baseURL + "/stall-body", method: "GET"))
                for try await _ in response {
                    firstChunk.continuation.yield()
                    switch way {
                    case .cancelTask: continue
                    case .cancelMethod: response.cancel()
                    case .dropResponse: return
                    }
                }
            }
            for await _ in firstChunk.stream { break }
            if way == .cancelTask { reader.cancel() }
            let result = await reader.result
            if way != .dropResponse {
                #expect(throws: CurlError(.cancelled, "transfer cancelled")) { try result.get() }
            }
            #expect(await server.stats.wait { $0.closed == 1 }, "the server did not see the connection close")
        }
    }

    @Test func cancellingWhileAwaitingTheHeadClosesTheConnection() async throws {
        try await withServer { server, client in
            let sender = Task { () async throws -> HTTPResponse in
                try await client.send(HTTPRequest(url: server.baseURL + "/stall-head"))
            }
            #expect(await server.stats.wait { $0.accepted == 1 })
            sender.cancel()
            let error = await failure { _ = try await sender.value }
            #expect(error?.kind == .cancelled)
            #expect(await server.stats.wait { $0.closed == 1 }, "the server did not see the connection close")
        }
    }

    @Test func shutdownCancelsTransfersAndRefusesNewOnes() async throws {
        try await withServer { server, client in
            let response = try await client.send(HTTPRequest(url: server.baseURL + "/stall-body", method: "GET"))
            client.shutdown()
            client.shutdown()
            let error = await failure { _ = try await collect(response) }
            #expect(error?.kind == .cancelled)
            let refused = await failure { _ = try await client.send(HTTPRequest(url: server.baseURL + "/ok")) }
            #expect(refused?.kind == .cancelled)
            #expect(await server.stats.wait { $0.closed == 1 })
        }
    }

    @Test func closedPortIsCouldNotConnect() async throws {
        let listener = try await ServerBootstrap(group: testEventLoopGroup).bind(host: "127.0.0.1", port: 0).get()
        let port = listener.localAddress!.port!
        try await listener.close()
        let client = try CurlClient()
        defer { client.shutdown() }
        let error = await failure { _ = try await client.send(HTTPRequest(url: "http://127.0.0.1:\(port)/")) }
        #expect(error?.kind == .couldNotConnect)
    }

    @Test func curlCodesMapToKinds() {
        let table: [(CURLcode, CurlError.Kind)] = [
            (CURLE_COULDNT_RESOLVE_HOST, .couldNotResolveHost), (CURLE_COULDNT_RESOLVE_PROXY, .couldNotResolveHost),
            (CURLE_COULDNT_CONNECT, .couldNotConnect), (CURLE_OPERATION_TIMEDOUT, .connectTimeout),
            (CURLE_SSL_CONNECT_ERROR, .tls), (CURLE_PEER_FAILED_VERIFICATION, .tls),
            (CURLE_RECV_ERROR, .connectionLost), (CURLE_SEND_ERROR, .connectionLost),
            (CURLE_PARTIAL_FILE, .connectionLost), (CURLE_GOT_NOTHING, .connectionLost),
            (CURLE_URL_MALFORMAT, .other),
        ]
        for (code, kind) in table { #expect(CurlError.Kind(code) == kind, "code \(code.rawValue)") }
    }

    @Test func invalidDomainIsCouldNotResolveHost() async throws {
        let client = try CurlClient()
        defer { client.shutdown() }
        let error = await failure { _ = try await client.send(HTTPRequest(url: "http://nonexistent.invalid/")) }
        #expect(error?.kind == .couldNotResolveHost)
    }
}
