import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import AgentDaemon

@Suite struct EventLoopExecutorTests {
    @Test func tasksPreferringALoopsExecutorRunOnThatLoop() async throws {
        let loops = ServingEventLoops(threads: 2)
        for loop in loops.group.makeIterator() {
            let onLoop = await Task(executorPreference: loops.executor(for: loop)) {
                var everyStep = loop.inEventLoop
                for _ in 0..<3 {
                    // Resumed from a timer thread: it must come back to the same loop.
                    try? await Task.sleep(for: .milliseconds(1))
                    everyStep = everyStep && loop.inEventLoop
                }
                return everyStep
            }.value
            #expect(onLoop)
        }
        try await loops.group.shutdownGracefully()
    }

    /// NIO polls for I/O only once no task is pending; a task that always has more to do must
    /// not keep the loop from its sockets.
    @Test func aTaskThatNeverWaitsLeavesTheLoopFreeForIO() async throws {
        let loops = ServingEventLoops(threads: 1)
        let loop = loops.group.next()
        let listenerGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: listenerGroup).bind(host: "127.0.0.1", port: 0).get()

        let stop = Atomic(false)
        let turns = Atomic(0)
        let busy = Task(executorPreference: loops.executor(for: loop)) {
            while !stop.load(ordering: .relaxed) {
                turns.add(1, ordering: .relaxed)
                await Task.yield()
            }
        }
        while turns.load(ordering: .relaxed) < 1000 { try await Task.sleep(for: .milliseconds(1)) }

        // The connect completes only when the loop polls and sees the socket writable; its
        // timeout is a timer, which NIO runs between tasks.
        let connected: Result<any Channel, any Error>
        do {
            connected = .success(
                try await ClientBootstrap(group: loop).connectTimeout(.seconds(5))
                    .connect(to: listener.localAddress!).get())
        } catch {
            connected = .failure(error)
        }
        stop.store(true, ordering: .relaxed)
        await busy.value
        #expect(throws: Never.self) { try connected.get() }

        try? await connected.get().close()
        try await listener.close()
        try await listenerGroup.shutdownGracefully()
        try await loops.group.shutdownGracefully()
    }
}
