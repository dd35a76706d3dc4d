import AgentProtocol
import AgentRunner
import Synchronization

/// Bounds one agent's upstream calls: `max_concurrent` run, up to `queue` wait in arrival
/// order, and anything beyond is refused at once with `overloaded`.
///
/// A place is reserved synchronously, as each request line is read, so pipelined requests
/// are admitted in the order they arrived whatever order their tasks run in; the request's
/// task then waits for its slot and gives it back when done.
final class ConcurrencyLimiter: Sendable {
    /// A place in the queue. `granted` is set when a slot was handed to it before its task
    /// came to wait.
    private struct QueueEntry {
        let ticket: UInt64
        var granted = false
        var continuation: CheckedContinuation<Void, any Error>?
    }

    private struct State {
        var capacity: Int
        var queueLimit: Int
        var running = 0
        var queue: [QueueEntry] = []
        var nextTicket: UInt64 = 0

        var waiting: Int { queue.count { !$0.granted } }
    }

    private let state: Mutex<State>

    init(capacity: Int, queueLimit: Int) {
        state = Mutex(State(capacity: capacity, queueLimit: queueLimit))
    }

    /// Slots in use, including those handed to queued requests not yet resumed.
    var running: Int { state.withLock { $0.running } }
    var waiting: Int { state.withLock { $0.waiting } }

    /// Takes a slot, or a place in the queue; throws `overloaded` when the queue is full.
    func reserve(agent: String) throws(ErrorInfo) -> Reservation {
        let ticket: UInt64? = try state.withLock { state throws(ErrorInfo) in
            if state.running < state.capacity, state.waiting == 0 {
                state.running += 1
                return nil
            }
            guard state.waiting < state.queueLimit else {
                throw ErrorInfo(
                    code: .overloaded,
                    message: "agent \(agent) is at max_concurrent \(state.capacity) with \(state.queueLimit) queued",
                    retryable: true)
            }
            state.nextTicket += 1
            state.queue.append(QueueEntry(ticket: state.nextTicket))
            return state.nextTicket
        }
        return Reservation(limiter: self, ticket: ticket)
    }

    /// Waits until the queued `ticket` holds a slot. Throws `timeout` at `deadline`, or
    /// CancellationError; either way the place is given up.
    fileprivate func waitForSlot(ticket: UInt64, agent: String, deadline: ContinuousClock.Instant) async throws {
        // Only queued requests pay for a timer.
        let timer = Task {
            try await Task.sleep(until: deadline, clock: .continuous)
            abandon(
                ticket: ticket,
                because: ErrorInfo(
                    code: .timeout, message: "request timed out waiting for agent \(agent) (max_concurrent)",
                    retryable: true))
        }
        defer { timer.cancel() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome: Result<Void, any Error>? = state.withLock { state in
                    guard let index = state.queue.firstIndex(where: { $0.ticket == ticket }) else {
                        return .failure(CancellationError())  // abandoned before its task came to wait
                    }
                    if state.queue[index].granted {
                        state.queue.remove(at: index)
                        return .success(())
                    }
                    if Task.isCancelled {
                        state.queue.remove(at: index)
                        return .failure(CancellationError())
                    }
                    state.queue[index].continuation = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            abandon(ticket: ticket, because: CancellationError())
        }
    }

    /// Gives up a queued place; a slot granted to it meanwhile goes to the next in line.
    fileprivate func abandon(ticket: UInt64, because error: any Error) {
        let (entry, handedOn) = state.withLock { state -> (QueueEntry?, QueueEntry?) in
            guard let index = state.queue.firstIndex(where: { $0.ticket == ticket }) else { return (nil, nil) }
            let entry = state.queue.remove(at: index)
            return (entry, entry.granted ? Self.passSlot(&state) : nil)
        }
        entry?.continuation?.resume(throwing: error)
        handedOn?.continuation?.resume()
    }

    /// Hands a finished request's slot to the longest waiter, or frees it.
    fileprivate func release() {
        let next = state.withLock { Self.passSlot(&$0) }
        next?.continuation?.resume()
    }

    /// Gives the slot just freed to the first queued place not yet granted one (removing it
    /// from the queue when its task is already waiting), or returns it to the pool.
    private static func passSlot(_ state: inout State) -> QueueEntry? {
        guard state.running <= state.capacity, let index = state.queue.firstIndex(where: { !$0.granted }) else {
            state.running -= 1
            return nil
        }
        guard state.queue[index].continuation != nil else {
            state.queue[index].granted = true
            return nil
        }
        return state.queue.remove(at: index)
    }

    /// A reload changed the limits: more capacity admits waiters now; less takes effect as
    /// running calls finish.
    func resize(capacity: Int, queueLimit: Int) {
        let admitted = state.withLock { state -> [QueueEntry] in
            state.capacity = capacity
            state.queueLimit = queueLimit
            var admitted: [QueueEntry] = []
            while state.running < state.capacity, let index = state.queue.firstIndex(where: { !$0.granted }) {
                state.running += 1
                if state.queue[index].continuation != nil {
                    admitted.append(state.queue.remove(at: index))
                } else {
                    state.queue[index].granted = true
                }
            }
            return admitted
        }
        for entry in admitted { entry.continuation?.resume() }
    }

    /// One request's claim on the limiter, from admission until it ends.
    final class Reservation: Admission {
        private enum Claim {
            case slot
            case queued(UInt64)
            case none
        }

        private let limiter: ConcurrencyLimiter
        private let claim: Mutex<Claim>

        fileprivate init(limiter: ConcurrencyLimiter, ticket: UInt64?) {
            self.limiter = limiter
            claim = Mutex(ticket.map(Claim.queued) ?? .slot)
        }

        /// Returns once the request holds a slot.
        func waitForSlot(agent: String, deadline: ContinuousClock.Instant) async throws {
            guard case .queued(let ticket) = claim.withLock({ $0 }) else { return }
            do {
                try await limiter.waitForSlot(ticket: ticket, agent: agent, deadline: deadline)
                claim.withLock { $0 = .slot }
            } catch {
                claim.withLock { $0 = .none }
                throw error
            }
        }

        /// Gives back the slot or the queued place. Idempotent.
        func finish() {
            let previous = claim.withLock { claim -> Claim in
                defer { claim = .none }
                return claim
            }
            switch previous {
            case .slot: limiter.release()
            case .queued(let ticket): limiter.abandon(ticket: ticket, because: CancellationError())
            case .none: break
            }
        }
    }
}
