import AgentProtocol
import Synchronization

/// Passes reply events from the task reading upstream to the consumer through a small bounded
/// buffer. The producer waits while the buffer is full, so a consumer that stops reading stops
/// the upstream read too, and curl pauses the transfer: nothing is buffered without bound.
///
/// Events move in batches: the producer hands over what one read of the upstream decoded, and
/// the consumer takes everything buffered at once. A reply that arrives in one read then costs
/// the consumer one wake-up and the daemon one socket write, not one per event.
final class EventHandoff: Sendable {
    private struct State {
        var buffered: [LLMEvent] = []
        var ending: ErrorInfo?? = nil
        var consumerGone = false
        var producer: Task<Void, Never>?
        var waitingConsumer: CheckedContinuation<Void, Never>?
        var waitingProducer: CheckedContinuation<Void, Never>?
    }

    private let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// The task to cancel when the consumer goes away.
    func attach(_ producer: Task<Void, Never>) {
        let cancelNow = state.withLock { state in
            state.producer = producer
            return state.consumerGone
        }
        if cancelNow { producer.cancel() }
    }

    /// Waits for room, then buffers `events`. Returns at once, dropping them, once the consumer
    /// is gone. A batch larger than the capacity is taken whole once the buffer is empty enough.
    func send(_ events: [LLMEvent]) async {
        guard !events.isEmpty else { return }
        while true {
            let (sent, consumer) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
                guard !state.consumerGone, state.buffered.count < capacity else { return (state.consumerGone, nil) }
                state.buffered.append(contentsOf: events)
                defer { state.waitingConsumer = nil }
                return (true, state.waitingConsumer)
            }
            consumer?.resume()
            if sent { return }
            await withCheckedContinuation { waiter in
                let resumeNow = state.withLock { state in
                    guard !state.consumerGone, state.buffered.count >= capacity else { return true }
                    state.waitingProducer = waiter
                    return false
                }
                if resumeNow { waiter.resume() }
            }
        }
    }

    /// The producer is done: `nil` for success, or the error that ends the stream.
    func finish(_ error: ErrorInfo?) {
        let consumer = state.withLock { state in
            state.ending = .some(error)
            defer { state.waitingConsumer = nil }
            return state.waitingConsumer
        }
        consumer?.resume()
    }

    /// Every buffered event, in order (never an empty batch); nil at the end or once the consumer
    /// is gone (its task cancelled).
    func receive() async throws(ErrorInfo) -> [LLMEvent]? {
        while true {
            let step = state.withLock {
                state -> (Result<[LLMEvent]?, ErrorInfo>?, CheckedContinuation<Void, Never>?) in
                if state.consumerGone { return (.success(nil), nil) }
                if !state.buffered.isEmpty {
                    defer {
                        state.buffered = []
                        state.waitingProducer = nil
                    }
                    return (.success(state.buffered), state.waitingProducer)
                }
                switch state.ending {
                case .some(.some(let error)): return (.failure(error), nil)
                case .some(.none): return (.success(nil), nil)
                case .none: return (nil, nil)
                }
            }
            step.1?.resume()
            if let result = step.0 { return try result.get() }
            await withTaskCancellationHandler {
                await withCheckedContinuation { waiter in
                    let resumeNow = state.withLock { state in
                        guard !state.consumerGone, state.buffered.isEmpty, state.ending == nil else { return true }
                        state.waitingConsumer = waiter
                        return false
                    }
                    if resumeNow { waiter.resume() }
                }
            } onCancel: {
                close()
            }
        }
    }

    /// The consumer went away: cancel the producer (and with it the transfer), wake both sides.
    func close() {
        let (producer, waiters) = state.withLock { state in
            state.consumerGone = true
            state.buffered.removeAll()
            defer {
                state.waitingConsumer = nil
                state.waitingProducer = nil
            }
            return (state.producer, [state.waitingConsumer, state.waitingProducer])
        }
        producer?.cancel()
        for waiter in waiters { waiter?.resume() }
    }
}

/// The consumer's end of a handoff: when the reply stream holding it is dropped, the producer stops.
final class EventHandoffReceiver: Sendable {
    private let handoff: EventHandoff

    init(_ handoff: EventHandoff) {
        self.handoff = handoff
    }

    deinit {
        handoff.close()
    }

    func next() async throws(ErrorInfo) -> [LLMEvent]? {
        try await handoff.receive()
    }
}
