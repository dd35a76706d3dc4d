import AgentProtocol
import AgentRunner
import NIOEmbedded
import Synchronization
import Testing

@testable import AgentDaemon

@Suite struct ConnectionTrackerTests {
    @Test func refusesConnectionsBeyondTheLimitUntilOneCloses() {
        let tracker = ConnectionTracker(limit: 2)
        let channels = (0..<4).map { _ in EmbeddedChannel() }
        defer { finish(channels) }
        let first = tracker.open(ConnectionState(), channel: channels[0])
        let second = tracker.open(ConnectionState(), channel: channels[1])
        #expect(first != nil && second != nil)
        #expect(tracker.open(ConnectionState(), channel: channels[2]) == nil)
        tracker.close(first!)
        #expect(tracker.connectionCount == 1)
        #expect(tracker.open(ConnectionState(), channel: channels[3]) != nil)
    }

    @Test func reportsIdleWhenItsLastRequestEnds() {
        let idleReports = Mutex(0)
        let tracker = ConnectionTracker(limit: 10) { tracker in
            #expect(tracker.inFlight == 0)
            idleReports.withLock { $0 += 1 }
        }
        let (first, second) = (RequestHandle(), RequestHandle())
        tracker.started(first)
        tracker.started(second)
        tracker.finished(first)
        #expect(idleReports.withLock { $0 } == 0)
        tracker.finished(second)
        tracker.finished(second)  // a second report of the same end is not a second idle moment
        #expect(idleReports.withLock { $0 } == 1)
    }

    @Test func shutdownCancelsWhatIsLeftWithItsReason() async {
        let tracker = ConnectionTracker(limit: 10)
        let handle = RequestHandle()
        tracker.started(handle)
        #expect(await tracker.waitUntilDrained(within: .milliseconds(50)) == false)
        tracker.beginShutdown()
        #expect(tracker.isShuttingDown)
        tracker.cancelAll(reason: .shuttingDown)
        #expect(handle.cancellationReason == .shuttingDown)
        tracker.finished(handle)
        #expect(await tracker.waitUntilDrained(within: .milliseconds(50)))
    }

    @Test func closeAllClosesEveryConnection() throws {
        let tracker = ConnectionTracker(limit: 10)
        let channel = EmbeddedChannel()
        defer { finish([channel]) }
        try channel.connect(to: .init(unixDomainSocketPath: "/tmp/x")).wait()
        _ = tracker.open(ConnectionState(), channel: channel)
        tracker.closeAll()
        #expect(channel.isActive == false)
    }
}

/// An EmbeddedChannel and its pipeline hold each other until it is finished, and a closed one
/// until its loop has run the close's tasks: left so, these tests' channels were
/// LeakSanitizer's only reports from the unit tests.
private func finish(_ channels: [EmbeddedChannel]) {
    for channel in channels {
        channel.embeddedEventLoop.run()
        _ = try? channel.finish()
    }
}
