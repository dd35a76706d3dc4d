import CMalloc
import Synchronization

/// Gives the memory freed after a burst of requests back to the system once the daemon is idle.
///
/// glibc keeps freed heap for reuse, so without this agentd's RSS stays at its peak: about
/// 430 MiB after 10,000 streams had ended (agentd-bench). `malloc_trim` walks the heap, so it
/// runs only once no request has been in flight for `delay`, and at most once per
/// `minimumInterval`. An idle period gets a second trim, `minimumInterval` after the first, if
/// it lasts: much of a burst is freed after its last request has ended (connections closing,
/// transfers cancelled on the curl thread), and on a busy machine that came after the first
/// trim, which left 150-240 MiB of 10,000 streams' heap in use (agentd-bench --hold beside a
/// busy loop). After that an idle daemon runs no timer at all.
final class HeapTrimmer: Sendable {
    private struct State {
        var scheduled = false
        var lastTrim: ContinuousClock.Instant?
    }

    private enum Step {
        case stop
        case wait(Duration)
        /// `last`: the idle period's second trim.
        case trim(last: Bool)
    }

    private let state = Mutex(State())
    private let delay: Duration
    private let minimumInterval: Duration
    private let trim: @Sendable () -> Void

    init(
        delay: Duration = .seconds(1), minimumInterval: Duration = .seconds(10),
        trim: @escaping @Sendable () -> Void = { _ = malloc_trim(0) }
    ) {
        self.delay = delay
        self.minimumInterval = minimumInterval
        self.trim = trim
    }

    /// The last request in flight ended: trims after `delay` if `isIdle` still holds then. A
    /// request arriving meanwhile calls the trim off; the next one to end schedules it again.
    func schedule(ifStillIdle isIdle: @escaping @Sendable () -> Bool) {
        let start = state.withLock { state in
            guard !state.scheduled else { return false }
            state.scheduled = true
            return true
        }
        guard start else { return }
        Task {
            var wait = delay
            var trimmed = false
            while true {
                try? await Task.sleep(for: wait)
                switch nextStep(isIdle: isIdle, trimmed: trimmed) {
                case .stop: return
                case .wait(let remaining): wait = remaining
                case .trim(let last):
                    trim()
                    if last { return }
                    trimmed = true
                    wait = minimumInterval
                }
            }
        }
    }

    /// Decided under the lock, so that a request ending concurrently either is seen by
    /// `isIdle` or schedules a trim of its own.
    private func nextStep(isIdle: () -> Bool, trimmed: Bool) -> Step {
        state.withLock { state in
            guard isIdle() else {
                state.scheduled = false
                return .stop
            }
            let now = ContinuousClock.now
            if let last = state.lastTrim, now - last < minimumInterval { return .wait(minimumInterval - (now - last)) }
            state.lastTrim = now
            if trimmed { state.scheduled = false }
            return .trim(last: trimmed)
        }
    }
}
