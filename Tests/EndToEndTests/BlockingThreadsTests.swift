import Glibc
import TestSupport
import Testing

/// The end-to-end suites block their threads in socket reads and process waits; they must do
/// it on threads of their own, or the async suites beside them wait for a thread (2 on 2 cores).
@Suite(.blocksItsThread) struct BlockingThreadsTests {
    @Test func aSynchronousTestRunsOnAThreadOutsideTheCooperativePool() {
        #expect(currentThreadName().hasPrefix("TP-#"))
    }

    @Test func anAsyncTestResumesThereAfterAnAwait() async throws {
        try await Task.sleep(for: .milliseconds(1))
        #expect(currentThreadName().hasPrefix("TP-#"))
    }
}

@Test func aTestWithoutTheTraitRunsOnTheCooperativePool() {
    #expect(!currentThreadName().hasPrefix("TP-#"))
}

/// The calling thread's name (NIO names its thread pool's threads `TP-#N`).
private func currentThreadName() -> String {
    let descriptor = open("/proc/thread-self/comm", O_RDONLY)
    defer { close(descriptor) }
    var name = [UInt8](repeating: 0, count: 64)
    let count = read(descriptor, &name, name.count)
    return String(decoding: name.prefix(max(0, count)), as: UTF8.self)
}
