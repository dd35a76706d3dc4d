import AgentProtocol
import Synchronization
import Testing

@testable import LLM

@Suite("Event handoff")
struct EventHandoffTests {
    private final class Counter: Sendable {
        let value = Mutex(0)
    }

    @Test("a consumer that stops reading holds the producer at the buffer's capacity; order is kept")
    func backPressure() async throws {
        let handoff = EventHandoff(capacity: 4)
        let sent = Counter()
        handoff.attach(
            Task {
                for index in 0..<100 {
                    await handoff.send([.text("\(index)")])
                    sent.value.withLock { $0 += 1 }
                }
                handoff.finish(nil)
            }
        )
        try await Task.sleep(for: .milliseconds(100))
        #expect(sent.value.withLock { $0 } <= 4)
        var received: [LLMEvent] = []
        while let batch = try await handoff.receive() {
            #expect(!batch.isEmpty && batch.count <= 4)
            received += batch
        }
        #expect(received == (0..<100).map { .text("\($0)") })
    }

    @Test("the consumer takes everything buffered at once, batches joined in order")
    func batches() async throws {
        let handoff = EventHandoff(capacity: 4)
        await handoff.send([.text("a"), .text("b")])
        await handoff.send([.text("c")])
        await handoff.send([])
        handoff.finish(nil)
        #expect(try await handoff.receive() == [.text("a"), .text("b"), .text("c")])
        #expect(try await handoff.receive() == nil)
    }

    @Test("the producer's error ends the stream after the buffered events")
    func failure() async throws {
        let handoff = EventHandoff(capacity: 4)
        await handoff.send([.text("a")])
        handoff.finish(ErrorInfo(code: .timeout, message: "slow"))
        #expect(try await handoff.receive() == [.text("a")])
        await #expect(throws: ErrorInfo(code: .timeout, message: "slow")) { try await handoff.receive() }
    }

    @Test("dropping the receiver cancels the producer and releases a waiting send")
    func droppedReceiver() async throws {
        let handoff = EventHandoff(capacity: 1)
        let cancelled = Counter()
        let producer = Task {
            await handoff.send([.text("a")])
            await handoff.send([.text("b")])  // waits while the buffer is full, until the receiver goes
            if Task.isCancelled { cancelled.value.withLock { $0 = 1 } }
        }
        handoff.attach(producer)
        do {
            let receiver = EventHandoffReceiver(handoff)
            _ = receiver
        }
        await producer.value
        #expect(cancelled.value.withLock { $0 } == 1)
        #expect(try await handoff.receive() == nil)
    }
}
