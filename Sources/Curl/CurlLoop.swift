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
/// it through an eventfd.
///
/// curl is driven by its socket API: curl says which sockets to watch (socket callback) and when
/// its next timer is due (timer callback); the thread waits for them in an epoll set and hands
/// each ready socket to `curl_multi_socket_action`, which works on that socket's transfer alone.
/// `curl_multi_perform` and `curl_multi_poll` visit every transfer and socket on each wake-up:
/// with 2,000 paced streams each chunk cost agentd 270 µs of CPU that way.
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
    private let epoll: Int32
    private let wakeup: Wakeup

    // Curl thread only.
    /// Monotonic nanoseconds, read around each wait rather than per callback.
    private(set) var now: UInt64 = 0
    private var active: [Transfer] = []
    /// Transfers whose head arrived since the thread last handed heads over.
    private var headsArrived: [Transfer] = []
    /// No deadline of an active transfer is earlier than this (it may be stale-early, never late).
    private var nextDeadline = UInt64.max
    /// When curl's own timer (connect timeouts, a resumed transfer, a new one) is due; nil: none.
    private var curlTimer: UInt64?
    /// What epoll watches each of curl's sockets for, and whether curl still wants it. A socket
    /// curl stops watching, a finished transfer's kept-alive connection, stays in the epoll set
    /// until an event comes for it: the next transfer on the connection usually wants the same,
    /// so a request costs one `epoll_ctl` instead of an add and a delete.
    private var watched: [Int32: Watch] = [:]
    /// Transfers whose socket could not be watched, failed after the curl call that asked.
    private var unwatchable: [(Transfer, reason: String)] = []

    private struct Watch {
        var events: UInt32
        var wanted: Bool
    }

    /// Idle connections kept for reuse.
    static let cachedConnections = 256

    init() throws(CurlError) {
        try check(globalInitResult)
        let epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        let wakeup = Wakeup()
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: wakeup.descriptor))
        guard epoll >= 0, wakeup.descriptor >= 0, epoll_ctl(epoll, EPOLL_CTL_ADD, wakeup.descriptor, &event) == 0,
            let multi = curl_multi_init()
        else {
            let reason = String(cString: strerror(errno))
            if epoll >= 0 { close(epoll) }
            throw CurlError(.other, "cannot set up the curl thread's event loop: \(reason)")
        }
        self.multi = multi
        self.epoll = epoll
        self.wakeup = wakeup
        // HTTP/2 streams to one host share a connection (the default since 7.62; stated for clarity).
        // The connection cache's default size follows the number of transfers in flight, so
        // the connections of a burst were closed as it ended and the next burst had to connect
        // (and handshake TLS) again; a fixed size keeps them for it.
        // The loop outlives the multi handle, so the callbacks' pointer to it needs no retain.
        let me = Unmanaged.passUnretained(self).toOpaque()
        do {
            try check(agentd_multi_setopt_long(multi, CURLMOPT_PIPELINING, agentd_curlpipe_multiplex))
            try check(agentd_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, Self.cachedConnections))
            try check(agentd_multi_setopt_socket_callback(multi, socketCallback))
            try check(agentd_multi_setopt_pointer(multi, CURLMOPT_SOCKETDATA, me))
            try check(agentd_multi_setopt_timer_callback(multi, timerCallback))
            try check(agentd_multi_setopt_pointer(multi, CURLMOPT_TIMERDATA, me))
        } catch {
            curl_multi_cleanup(multi)
            close(epoll)
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
            close(epoll)
            throw CurlError(.other, "cannot start the curl thread (error \(created))")
        }
    }

    /// Hands a command to the curl thread; false once the loop has shut down.
    @discardableResult
    func enqueue(_ command: Command) -> Bool {
        let (accepted, wake) = queue.withLock { queue in
            guard queue.running else { return (false, false) }
            queue.commands.append(command)
            let wake = !queue.wakePending
            queue.wakePending = true
            return (true, wake)
        }
        // After the lock is given back: the thread's first act on waking is to take it.
        if wake { wakeup.signal() }
        return accepted
    }

    /// Cancels every transfer and joins the thread. Idempotent.
    func shutdown() {
        let first = queue.withLock { queue in
            guard queue.running else { return false }
            queue.running = false
            return true
        }
        guard first else { return }
        wakeup.signal()
        if pthread_equal(pthread_self(), thread) != 0 {
            pthread_detach(thread)
        } else {
            pthread_join(thread, nil)
        }
    }

    /// The eventfd that `enqueue` and `shutdown` write to wake the thread's `epoll_wait`.
    ///
    /// Closed when the last reference goes, not when the thread ends: a caller signals it after
    /// giving the queue's lock back (signalled under the lock, the woken thread could find the
    /// lock still held and wait for it, two futex calls and a switch; seen under strace), and
    /// the loop it is calling keeps it open until then.
    private final class Wakeup: Sendable {
        /// Below zero if the eventfd could not be made.
        let descriptor = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))

        deinit { if descriptor >= 0 { close(descriptor) } }

        func signal() {
            var one: UInt64 = 1
            _ = write(descriptor, &one, 8)
        }

        func clear() {
            var value: UInt64 = 0
            _ = read(descriptor, &value, 8)
        }
    }

    /// Called from a header callback, which curl runs only inside `curl_multi_socket_action`
    /// (agentd never pauses a transfer during its head): the head goes to its waiter once every
    /// socket that was ready together has been handled, so their wake-ups of event loops batch.
    func headArrived(_ transfer: Transfer) {
        headsArrived.append(transfer)
    }

    /// Before finished transfers are collected: a transfer whose whole reply came in one
    /// `curl_multi_socket_action` must hand over its head before its end.
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
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        /// Why the loop stopped on its own, when it did.
        var failure: CurlError?
        while true {
            let stop = queue.withLock { queue in
                swap(&queue.commands, &commands)
                queue.wakePending = false
                return !queue.running
            }
            now = monotonicNow()
            for command in commands { handle(command) }
            commands.removeAll(keepingCapacity: true)
            failUnwatchable()
            if stop { break }

            // A new or resumed transfer sets the timer to now.
            if let due = curlTimer, due <= monotonicNow() {
                curlTimer = nil
                act(on: agentd_curl_socket_timeout, 0)
            }
            deliverHeads()
            collectFinished()
            now = monotonicNow()
            if now >= nextDeadline { expireDeadlines() }

            let wakeAt = min(nextDeadline, curlTimer ?? .max)
            let timeout = wakeAt == .max ? -1 : Int32(clamping: (wakeAt - min(now, wakeAt) + 999_999) / 1_000_000)
            let count = epoll_wait(epoll, &events, Int32(events.count), timeout)
            if count < 0, errno != EINTR {
                // The thread can wait no more: new transfers are refused, queued and running ones
                // fail with the reason, at the top of the loop.
                failure = CurlError(.other, "the curl thread cannot wait: \(String(cString: strerror(errno)))")
                queue.withLock { $0.running = false }
                continue
            }
            now = monotonicNow()
            for event in events.prefix(Int(max(count, 0))) {
                let socket = event.data.fd
                if socket == wakeup.descriptor {
                    wakeup.clear()
                    continue
                }
                ready(socket, event.events)
            }
            deliverHeads()
            collectFinished()
        }
        failAll(failure ?? .shutDown)
        curl_multi_cleanup(multi)
        close(epoll)
    }

    /// Lets curl work on `socket` (or its timers, for `CURL_SOCKET_TIMEOUT`).
    private func act(on socket: Int32, _ mask: Int32) {
        var running: Int32 = 0
        let code = curl_multi_socket_action(multi, socket, mask, &running)
        if code != CURLM_OK { failAll(CurlError(.other, String(cString: curl_multi_strerror(code)))) }
        failUnwatchable()
    }

    /// curl's socket callback: watch `socket` for what curl wants, or no longer.
    /// `new`: curl has not seen the socket since it last stopped watching it (no
    /// `curl_multi_assign` mark), so an entry of ours for its number may be stale.
    fileprivate func watch(_ socket: Int32, _ what: Int32, easy: UnsafeMutableRawPointer?, new: Bool) {
        let events: UInt32
        switch what {
        case CURL_POLL_IN: events = EPOLLIN.rawValue
        case CURL_POLL_OUT: events = EPOLLOUT.rawValue
        case CURL_POLL_INOUT: events = EPOLLIN.rawValue | EPOLLOUT.rawValue
        default:
            watched[socket]?.wanted = false
            return
        }
        let current = watched[socket]
        watched[socket] = Watch(events: events, wanted: true)
        if new { curl_multi_assign(multi, socket, Unmanaged.passUnretained(self).toOpaque()) }
        if !new, let current, current.wanted, current.events == events { return }
        // A socket no longer wanted may have been closed since, and its number reused: the
        // registration epoll kept went with the close, so MOD finds none and ADD is right.
        var event = epoll_event(events: events, data: epoll_data_t(fd: socket))
        let first = current == nil ? EPOLL_CTL_ADD : EPOLL_CTL_MOD
        var registered = epoll_ctl(epoll, first, socket, &event) == 0
        if !registered, errno == ENOENT || errno == EEXIST {
            registered = epoll_ctl(epoll, first == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket, &event) == 0
        }
        guard !registered else { return }
        // Its transfer would wait for an event that never comes; it fails once curl returns.
        let reason = String(cString: strerror(errno))
        watched[socket] = nil
        var pointer: UnsafeMutableRawPointer?
        if let easy, agentd_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &pointer) == CURLE_OK, let pointer {
            unwatchable.append((Unmanaged<Transfer>.fromOpaque(pointer).takeUnretainedValue(), reason))
        }
    }

    /// Ends the transfers whose socket epoll refused to watch (curl's calls are over by now).
    private func failUnwatchable() {
        for (transfer, reason) in unwatchable where transfer.easy != nil {
            finish(transfer, .failed(CurlError(.other, "cannot watch the upstream connection: \(reason)")))
        }
        unwatchable.removeAll()
    }

    /// An event for `socket`: curl's to act on, or, for a socket curl no longer watches, the
    /// time to take it out of the epoll set.
    private func ready(_ socket: Int32, _ events: UInt32) {
        guard watched[socket]?.wanted == true else {
            watched[socket] = nil
            var event = epoll_event()
            epoll_ctl(epoll, EPOLL_CTL_DEL, socket, &event)
            return
        }
        var mask: Int32 = 0
        if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue) != 0 { mask |= CURL_CSELECT_IN }
        if events & EPOLLOUT.rawValue != 0 { mask |= CURL_CSELECT_OUT }
        if events & EPOLLERR.rawValue != 0 { mask |= CURL_CSELECT_ERR }
        act(on: socket, mask)
    }

    /// curl's timer callback: when to call `curl_multi_socket_action` for its timers.
    fileprivate func setTimer(milliseconds: Int) {
        curlTimer = milliseconds < 0 ? nil : monotonicNow() + UInt64(milliseconds) * 1_000_000
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

private func socketCallback(
    easy: UnsafeMutableRawPointer?, socket: curl_socket_t, what: Int32, loop: UnsafeMutableRawPointer?,
    socketData: UnsafeMutableRawPointer?
) -> Int32 {
    Unmanaged<CurlLoop>.fromOpaque(loop!).takeUnretainedValue().watch(
        socket, what, easy: easy, new: socketData == nil)
    return 0
}

private func timerCallback(multi: UnsafeMutableRawPointer?, milliseconds: Int, loop: UnsafeMutableRawPointer?) -> Int32
{
    Unmanaged<CurlLoop>.fromOpaque(loop!).takeUnretainedValue().setTimer(milliseconds: milliseconds)
    return 0
}

private func monotonicNow() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
