import Glibc
import NIOPosix
import Testing

extension Trait where Self == BlockingThreadsTrait {
    /// For suites whose tests block the thread they run on (socket reads, process waits,
    /// sleeps): their tests run on threads of their own instead of Swift's cooperative pool.
    ///
    /// The pool has one thread per core. Two end-to-end tests waiting on their daemons used to
    /// hold both threads of a 2-core machine for seconds at a time, and every async test
    /// behind them waited: under a sanitizer, a tool run's 1 s timeout was seen to end after
    /// 38 s and a test's reads to wait 6–18 s each for a thread (RELIABILITY.md §6).
    public static var blocksItsThread: Self { BlockingThreadsTrait() }
}

/// See `Trait.blocksItsThread`.
public struct BlockingThreadsTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? {
        testCase == nil ? nil : self
    }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withTaskExecutorPreference(BlockingThreads.executor) { try await function() }
    }
}

/// As many threads as the cooperative pool has (one per core; two at least), so as many
/// blocking tests run at once as before; they only stop taking the async tests' threads.
private final class BlockingThreads: TaskExecutor {
    static let executor = BlockingThreads(threads: max(2, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    private let pool: NIOThreadPool

    private init(threads: Int) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pool.submit { _ in job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
