import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The serial executor of one `SessionStore`: a dedicated thread that runs the store's jobs
/// one at a time, in order.
///
/// Every SQLite call blocks (a commit waits for fsync), so none may run on a NIO event loop,
/// which would stall every connection of that loop, nor on the two-thread cooperative pool.
/// A default actor is not enough: since SE-0417 it runs on the caller's preferred task
/// executor, which may be an event loop. An actor whose `unownedExecutor` is this thread
/// always runs here, whoever awaits it.
final class StoreThread: SerialExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    /// Counts enqueued jobs plus one post by `shutdown`.
    private let wakeups: UnsafeMutablePointer<sem_t>

    init() {
        wakeups = .allocate(capacity: 1)
        sem_init(wakeups, 0, 0)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<StoreThread>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
        // Without a thread the store cannot work at all; this happens only when the process is
        // out of threads or memory at startup.
        precondition(created == 0, "cannot start the session store thread (error \(created))")
        pthread_detach(thread)
    }

    deinit {
        sem_destroy(wakeups)
        wakeups.deallocate()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        sem_post(wakeups)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread end once the jobs already enqueued have run. Called when the store is
    /// released, when no job for it can arrive any more.
    func shutdown() {
        sem_post(wakeups)
    }

    private func run() {
        while true {
            while sem_wait(wakeups) != 0 {}  // EINTR
            // Each job's post finds its job queued; only the shutdown post finds none.
            let next = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            guard let next else { return }
            next.runSynchronously(on: asUnownedSerialExecutor())
        }
    }
}
