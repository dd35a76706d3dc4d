import NIOCore
import NIOPosix
import Synchronization

/// Runs a connection's tasks on the event loop that owns its channel.
///
/// On Swift's global pool every request crossed threads several times: the loop read the line
/// and woke a pool thread, the pool thread's writes hopped back to the loop, and the curl
/// thread's resumptions woke the pool again. On the channel's own loop the reads and writes are
/// direct calls and the only hand-offs left are to and from the curl thread. Whatever runs here
/// must not block: it would hold up every connection the loop owns.
final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    /// NIO runs tasks until none is pending before it polls for I/O again, and a request whose
    /// reply keeps arriving keeps making jobs (the curl thread resumes it, it writes, it waits
    /// for more): without a bound the loop would read none of its sockets, not even a `cancel`
    /// line, until that reply ended.
    static let jobsPerTick = 128
    /// How long jobs over the budget wait. A timer, because NIO offers no way to queue work
    /// behind the next poll: long enough that the loop finds nothing ready, ends the tick and
    /// polls, and short against a request's own latency.
    static let deferral = TimeAmount.microseconds(20)
    /// A deferral that runs out before the tick has ended doubles, up to this. NIO reads the
    /// clock each time it looks for due tasks, so on a thread slow enough that re-arming the
    /// timer takes longer than the timer (ThreadSanitizer: the tick never ended, and a busy
    /// task kept the loop from its sockets for good), a fixed deferral is always due again.
    static let longestDeferral = TimeAmount.milliseconds(10)

    private struct Queue {
        var jobs: [UnownedJob] = []
        /// A drain is on the loop's task queue or timer: jobs enqueued meanwhile wait for it.
        var drainRequested = false
    }

    let eventLoop: any EventLoop
    private let queue = Mutex(Queue())
    // Event loop thread only.
    private var jobsThisTick = 0
    private var deferralThisTick = deferral
    /// Swapped with the queue's array on each drain, as `CurlLoop` does with its commands, so
    /// both keep their capacity.
    private var running: [UnownedJob] = []

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Jobs queue here and the loop runs them in batches: one NIO task per batch rather than
    /// per job.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let requestDrain = queue.withLock { queue in
            queue.jobs.append(job)
            defer { queue.drainRequested = true }
            return !queue.drainRequested
        }
        if requestDrain { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        guard jobsThisTick < Self.jobsPerTick else {
            // One timer at a time: a timer per job would fire within the same tick once there
            // are enough of them, and keep the tick from ending.
            eventLoop.scheduleTask(in: deferralThisTick) { self.drain() }
            deferralThisTick = min(deferralThisTick * 2, Self.longestDeferral)
            return
        }
        // Never reentered: jobs that enqueue more only request the next drain.
        queue.withLock { queue in
            queue.drainRequested = false
            swap(&queue.jobs, &running)
        }
        jobsThisTick += running.count
        for job in running { job.runSynchronously(on: asUnownedTaskExecutor()) }
        running.removeAll(keepingCapacity: true)
    }

    /// Called on the loop's thread once it has run what was pending and is about to poll.
    fileprivate func tickEnded() {
        jobsThisTick = 0
        deferralThisTick = Self.deferral
    }
}

/// The event loops that serve agentd's sockets, and a task executor for each.
final class ServingEventLoops: Sendable {
    let group: MultiThreadedEventLoopGroup
    private let executors: [ObjectIdentifier: EventLoopExecutor]

    init(threads: Int = System.coreCount) {
        let ticks = TickObserver()
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads, metricsDelegate: ticks)
        var executors: [ObjectIdentifier: EventLoopExecutor] = [:]
        for loop in group.makeIterator() { executors[ObjectIdentifier(loop)] = EventLoopExecutor(eventLoop: loop) }
        self.executors = executors
        ticks.observe(executors.values)
    }

    /// The executor of `loop`, one of this group's.
    func executor(for loop: any EventLoop) -> EventLoopExecutor {
        guard let executor = executors[ObjectIdentifier(loop)] else {
            preconditionFailure("\(loop) is not one of agentd's serving event loops")
        }
        return executor
    }

    /// NIO reports the end of each loop tick to a metrics delegate: the only hook where a loop
    /// is between running tasks and polling.
    private final class TickObserver: NIOEventLoopMetricsDelegate {
        /// Weak: each loop holds its delegate and each executor its loop, so strong references
        /// here would keep the loops alive after their group shut down.
        private struct WeakExecutor {
            weak var executor: EventLoopExecutor?
        }

        private let executors = Mutex<[ObjectIdentifier: WeakExecutor]>([:])

        func observe(_ executors: some Sequence<EventLoopExecutor>) {
            let byLoop = Dictionary(uniqueKeysWithValues: executors.map { (ObjectIdentifier($0.eventLoop), $0) })
            self.executors.withLock { $0 = byLoop.mapValues { WeakExecutor(executor: $0) } }
        }

        func processedTick(info: NIOEventLoopTickInfo) {
            executors.withLock { $0[info.eventLoopID]?.executor }?.tickEnded()
        }
    }
}
