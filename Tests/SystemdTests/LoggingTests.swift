import Glibc
import Logging
import TestSupport
import Testing

@testable import Systemd

@Suite(.serialized, .blocksItsThread) struct LoggingTests {
    @Test func metadataKeysBecomeJournalFieldNames() {
        #expect(DaemonLogHandler.fieldName("agent") == "AGENT")
        #expect(DaemonLogHandler.fieldName("request.id") == "REQUEST_ID")
        #expect(DaemonLogHandler.fieldName("peer.uid") == "PEER_UID")
    }

    @Test func levelsMapToSyslogPriorities() {
        #expect(DaemonLogHandler.priority(.debug) == 7)
        #expect(DaemonLogHandler.priority(.info) == 6)
        #expect(DaemonLogHandler.priority(.notice) == 5)
        #expect(DaemonLogHandler.priority(.warning) == 4)
        #expect(DaemonLogHandler.priority(.error) == 3)
        #expect(DaemonLogHandler.priority(.critical) == 2)
    }

    @Test func theJournalIsUsedOnlyWhenJournalStreamNamesStderr() {
        defer { unsetenv("JOURNAL_STREAM") }
        var status = stat()
        fstat(STDERR_FILENO, &status)
        setenv("JOURNAL_STREAM", "\(status.st_dev):\(status.st_ino)", 1)
        #expect(LogDestination.stderrIsJournal)
        // Inherited from a parent whose stderr was the journal, but ours is not.
        setenv("JOURNAL_STREAM", "\(status.st_dev):\(status.st_ino + 1)", 1)
        #expect(!LogDestination.stderrIsJournal)
        unsetenv("JOURNAL_STREAM")
        #expect(!LogDestination.stderrIsJournal)
    }

    @Test func notifierIsSilentWithoutNotifySocket() {
        unsetenv("NOTIFY_SOCKET")
        #expect(!SystemdNotifier().isEnabled)
    }

    @Test func monotonicMicrosecondsAdvance() {
        let first = SystemdNotifier.monotonicMicroseconds()
        usleep(2000)
        #expect(SystemdNotifier.monotonicMicroseconds() >= first + 2000)
    }
}
