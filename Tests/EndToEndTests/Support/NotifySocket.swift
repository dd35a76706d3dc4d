import Foundation
import Glibc

/// A test-owned `NOTIFY_SOCKET`: receives what the daemon tells "systemd".
///
/// A thread reads datagrams as they arrive, as systemd does: the daemon's sd_notify blocks
/// once the socket's small datagram queue is full.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let descriptor: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var reader: Thread?
    private var claimed = 0

    init(path: String) {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        let socketDescriptor = descriptor
        _ = withUnixAddress(path) { bind(socketDescriptor, $0, $1) }
        let thread = Thread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(socketDescriptor, &buffer, buffer.count, 0)
                guard count > 0, let self else { return }
                let message = String(decoding: buffer[0..<count], as: UTF8.self)
                self.lock.withLock { self.received.append(message) }
            }
        }
        reader = thread
        thread.start()
    }

    deinit {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }

    /// Every message received so far.
    var messages: [String] { lock.withLock { received } }

    /// Waits for a message after the last one a `wait` returned that contains `assignment`
    /// (e.g. "READY=1"); returns the whole message.
    func wait(for assignment: String, within seconds: Double = 20) -> String? {
        let deadline = monotonicNow() + seconds * 1000
        repeat {
            let found: String? = lock.withLock {
                guard
                    let index = received[claimed...].firstIndex(where: {
                        $0.split(separator: "\n").contains { $0 == assignment }
                    })
                else { return nil }
                claimed = index + 1
                return received[index]
            }
            if let found { return found }
            usleep(5_000)
        } while monotonicNow() < deadline
        return nil
    }
}
