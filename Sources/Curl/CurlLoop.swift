internal import CCurl
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// curl_global_init is not thread-safe and must run once: a Swift global is initialised once,
/// lazily and atomically.
private let globalInitResult: CURLcode = curl_global_init(agentd_curl_global_default)

/// The dedicated thread that owns the multi handle. Every curl call on the multi handle and its
/// easy handles happens on this thread; tasks hand it commands through a locked queue and wake
/// its `curl_multi_poll` with `curl_multi_wakeup`.
final class CurlLoop: @unchecked Sendable {
    enum Command {
        case start(Transfer)
        case cancel(Transfer)
        /// The consumer drained a paused transfer's buffer.
        case resume(Transfer)
    }

    private struct Queue: ~Copyable {
        var commands: [Command] = []
        /// A wakeup is already on its way: later commands need not send another.
        var wakePending = false
        var running = true
    }

    private let multi: UnsafeMutableRawPointer
    private let queue = Mutex(Queue())
    private var thread = pthread_t()

    // Curl thread only.
    /// Monotonic nanoseconds, read around each `curl_multi_perform` rather than per callback.
    private(set) var now: UInt64 = 0
    private var active: [Transfer] = []
    /// Transfers whose head arrived during the current `curl_multi_perform`.
    private var headsArrived: [Transfer] = []
    /// No deadline of an active transfer is earlier than this (it may be stale-early, never late).
    private var nextDeadline = UInt64.max

    /// Idle connections kept for reuse.
    static let cachedConnections = 256

    init() throws(CurlError) {
        try check(globalInitResult)
        guard let multi = curl_multi_init() else { throw CurlError(.other, "curl_multi_init failed") }
        self.multi = multi
        // HTTP/2 streams to one host share a connection (the default since 7.62; stated for clarity).
        // The connection cache's default size follows the number of transfers in flight, so
        // the connections of a burst were closed as it ended and the next burst had to connect
        // (and handshake TLS) again; a fixed size keeps them for it.
        do {
            try check(agentd_multi_setopt_long(multi, CURLMOPT_PIPELINING, agentd_curlpipe_multiplex))
            try check(agentd_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, Self.cachedConnections))
        } catch {
            curl_multi_cleanup(multi)
            throw error
        }
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<CurlLoop>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
        guard created == 0 else {
            Unmanaged<CurlLoop>.fromOpaque(context).release()
            curl_multi_cleanup(multi)
            throw CurlError(.other, "cannot start the curl thread (error \(created))")
        }
    }

    /// Hands a command to the curl thread; false once the loop has shut down.
    @discardableResult
    func enqueue(_ command: Command) -> Bool {
        queue.withLock { queue in
            guard queue.running else { return false }
            queue.commands.append(command)
            if !queue.wakePending {
                queue.wakePending = true
                // Under the lock, so the multi handle cannot be cleaned up meanwhile.
                curl_multi_wakeup(multi)
            }
            return true
        }
    }

    /// Cancels every transfer and joins the thread. Idempotent.
    func shutdown() {
        let first = queue.withLock { queue in
            guard queue.running else { return false }
            queue.running = false
            curl_multi_wakeup(multi)
            return true
        }
        guard first else { return }
        if pthread_equal(pthread_self(), thread) != 0 {
            pthread_detach(thread)
        } else {
            pthread_join(thread, nil)
        }
    }

    /// Called from a header callback, which curl runs only inside `curl_multi_perform` (agentd
    /// never pauses a transfer during its head): the head goes to its waiter after that call.
    func headArrived(_ transfer: Transfer) {
        headsArrived.append(transfer)
    }

    /// Before finished transfers are collected: a transfer whose whole reply came in one
    /// `curl_multi_perform` must hand over its head before its end.
    private func deliverHeads() {
        for transfer in headsArrived { transfer.deliverHead() }
        headsArrived.removeAll(keepingCapacity: true)
    }

    /// A transfer's deadline was set (not merely extended): the poll must wake for it.
    func deadlineSet(_ deadline: UInt64) {
        nextDeadline = min(nextDeadline, deadline)
    }

    // MARK: The thread

    private func run() {
        var commands: [Command] = []
        var running: Int32 = 0
        while true {
            let stop = queue.withLock { queue in
                swap(&queue.commands, &commands)
                queue.wakePending = false
                return !queue.running
            }
            now = monotonicNow()
            for command in commands { handle(command) }
            commands.removeAll(keepingCapacity: true)
            if stop { break }

            let performed = curl_multi_perform(multi, &running)
            deliverHeads()
            if performed != CURLM_OK { failAll(CurlError(.other, String(cString: curl_multi_strerror(performed)))) }
            collectFinished()
            now = monotonicNow()
            if now >= nextDeadline { expireDeadlines() }

            // curl_multi_poll also wakes for curl's own timers (connect timeout, retries).
            let timeout = nextDeadline == .max ? Int32.max : Int32(clamping: (nextDeadline - now + 999_999) / 1_000_000)
            let polled = curl_multi_poll(multi, nil, 0, timeout, nil)
            if polled != CURLM_OK { failAll(CurlError(.other, String(cString: curl_multi_strerror(polled)))) }
        }
        failAll(.shutDown)
        curl_multi_cleanup(multi)
    }

    private func handle(_ command: Command) {
        switch command {
        case .start(let transfer):
            start(transfer)
        case .cancel(let transfer):
            if transfer.easy != nil { finish(transfer, .failed(.cancelled)) }
        case .resume(let transfer):
            guard let easy = transfer.easy else { return }
            deadlineSet(transfer.resumed(at: now))
            // May call the write callback right away with the data curl held back.
            let code = curl_easy_pause(easy, agentd_curlpause_cont)
            if code != CURLE_OK { finish(transfer, .failed(curlError(code, transfer.errorBuffer))) }
        }
    }

    private func start(_ transfer: Transfer) {
        guard transfer.shared.withLock({ $0.end == nil }) else { return }
        do throws(CurlError) {
            try transfer.configure()
            try check(curl_multi_add_handle(multi, transfer.easy))
        } catch {
            transfer.releaseEasy()
            transfer.complete(.failed(error))
            return
        }
        transfer.activeIndex = active.count
        active.append(transfer)
        deadlineSet(transfer.deadline().at)
    }

    /// Removes the easy handle (closing its connection if the transfer was still running) and
    /// ends the transfer.
    private func finish(_ transfer: Transfer, _ end: Transfer.End) {
        curl_multi_remove_handle(multi, transfer.easy)
        transfer.releaseEasy()
        let index = transfer.activeIndex
        active.swapAt(index, active.count - 1)
        active[index].activeIndex = index
        active.removeLast()
        transfer.activeIndex = -1
        transfer.complete(end)
    }

    private func collectFinished() {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard message.pointee.msg == CURLMSG_DONE else { continue }
            let code = message.pointee.data.result
            var pointer: UnsafeMutableRawPointer?
            guard agentd_easy_getinfo_pointer(message.pointee.easy_handle, CURLINFO_PRIVATE, &pointer) == CURLE_OK,
                let pointer
            else { continue }
            let transfer = Unmanaged<Transfer>.fromOpaque(pointer).takeUnretainedValue()
            finish(transfer, code == CURLE_OK ? .finished : .failed(curlError(code, transfer.errorBuffer)))
        }
    }

    private func expireDeadlines() {
        var expired: [(Transfer, CurlError.Kind)] = []
        nextDeadline = .max
        for transfer in active {
            let deadline = transfer.deadline()
            if deadline.at <= now {
                expired.append((transfer, deadline.kind))
            } else {
                nextDeadline = min(nextDeadline, deadline.at)
            }
        }
        for (transfer, kind) in expired { finish(transfer, .failed(transfer.timeoutError(kind))) }
    }

    private func failAll(_ error: CurlError) {
        while let transfer = active.last { finish(transfer, .failed(error)) }
    }
}

private func monotonicNow() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
