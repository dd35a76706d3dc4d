/// Runs reloads one at a time and coalesces the ones asked for meanwhile.
///
/// A reload asked for while another runs waits for the next one, which starts when the running
/// one ends and covers every request that arrived in between: 100 SIGHUPs in a second cause
/// at most two reloads back to back, and every caller gets a report of a reload that began
/// after it asked.
actor ReloadCoordinator {
    private let perform: @Sendable () async -> ReloadReport
    private var requested = 0
    private var completed = 0
    private var running = false
    private var stopped = false
    private var waiters: [(generation: Int, continuation: CheckedContinuation<ReloadReport?, Never>)] = []
    private var idle: [CheckedContinuation<Void, Never>] = []

    init(perform: @escaping @Sendable () async -> ReloadReport) {
        self.perform = perform
    }

    /// Nil once shutdown has begun.
    func reload() async -> ReloadReport? {
        guard !stopped else { return nil }
        requested += 1
        let generation = requested
        if !running {
            running = true
            Task { await self.runPending() }
        }
        return await withCheckedContinuation { waiters.append((generation, $0)) }
    }

    /// Refuses further reloads and returns once the running one, if any, has finished.
    func stop() async {
        stopped = true
        guard running else { return }
        await withCheckedContinuation { idle.append($0) }
    }

    private func runPending() async {
        while completed < requested {
            let generation = requested
            let report = await perform()
            completed = generation
            let ready = waiters.filter { $0.generation <= generation }
            waiters.removeAll { $0.generation <= generation }
            for waiter in ready { waiter.continuation.resume(returning: report) }
            if stopped { break }
        }
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
        waiters = []
        running = false
        for continuation in idle { continuation.resume() }
        idle = []
    }
}
