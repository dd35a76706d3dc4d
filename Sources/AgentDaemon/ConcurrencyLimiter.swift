import AgentProtocol
import Synchronization

/// Bounds one agent's upstream calls: `max_concurrent` run, up to `queue` wait in arrival
/// order, and anything beyond is refused at once with `overloaded`.
final class ConcurrencyLimiter: Sendable {
    private struct Waiter {
        let ticket: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var capacity: Int
        var queueLimit: Int
        var running = 0
        var waiters: [Waiter] = []
        var nextTicket: UInt64 = 0
    }

    private let state: Mutex<State>

    init(capacity: Int, queueLimit: Int) {
        state = Mutex(State(capacity: capacity, queueLimit: queueLimit))
    }

    var running: Int { state.withLock { $0.running } }
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Waits for a slot. Throws `overloaded` when the queue is full, `timeout` when `deadline`
    /// passes in the queue, or CancellationError when the task is cancelled while waiting.
    func acquire(agent: String, deadline: ContinuousClock.Instant) async throws {
        let ticket: UInt64? = try state.withLock { state throws(ErrorInfo) in
            if state.running < state.capacity {
                state.running += 1
                return nil
            }
            guard state.waiters.count < state.queueLimit else {
                throw ErrorInfo(
                    code: .overloaded,
                    message: "agent \(agent) is at max_concurrent \(state.capacity) with \(state.queueLimit) queued",
                    retryable: true)
            }
            state.nextTicket += 1
            return state.nextTicket
        }
        guard let ticket else { return }
        // Only queued requests pay for a timer.
        let timer = Task {
            try await Task.sleep(until: deadline, clock: .continuous)
            let waiter = removeWaiter(ticket)
            waiter?.continuation.resume(
                throwing: ErrorInfo(
                    code: .timeout, message: "request timed out waiting for agent \(agent) (max_concurrent)",
                    retryable: true))
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let cancelledAlready = state.withLock { state in
                    if Task.isCancelled { return true }
                    state.waiters.append(Waiter(ticket: ticket, continuation: continuation))
                    return false
                }
                if cancelledAlready { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let waiter = removeWaiter(ticket)
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func removeWaiter(_ ticket: UInt64) -> Waiter? {
        state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.ticket == ticket }) else { return nil }
            return state.waiters.remove(at: index)
        }
    }

    /// Hands the slot to the longest waiter, or frees it.
    func release() {
        let next = state.withLock { state -> Waiter? in
            if state.running <= state.capacity, !state.waiters.isEmpty {
                return state.waiters.removeFirst()
            }
            state.running -= 1
            return nil
        }
        next?.continuation.resume()
    }

    /// A reload changed the limits: more capacity admits waiters now; less takes effect as
    /// running calls finish.
    func resize(capacity: Int, queueLimit: Int) {
        let admitted = state.withLock { state -> [Waiter] in
            state.capacity = capacity
            state.queueLimit = queueLimit
            var admitted: [Waiter] = []
            while state.running < state.capacity, !state.waiters.isEmpty {
                state.running += 1
                admitted.append(state.waiters.removeFirst())
            }
            return admitted
        }
        for waiter in admitted { waiter.continuation.resume() }
    }
}
