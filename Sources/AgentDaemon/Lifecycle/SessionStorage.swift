import AgentCore
import Glibc
import Logging
import Sessions
import Synchronization

/// The daemon's side of sessions (contract §9): the store opened at start, the daemon-wide
/// limits that a reload re-reads from agentd.yaml, and the background sweep of expired
/// sessions.
final class SessionStorage: Sendable {
    let store: SessionStore
    let locks = SessionLocks()
    private let limits: Mutex<SessionLimits>
    /// agentd.yaml as named at start, re-read by reloads for `sessions`.
    private let configFile: String?

    /// Opens `<state_dir>/sessions.sqlite3`; a database that cannot be opened is a warning and
    /// sessions are kept in memory, never a failed start.
    init(config: DaemonConfig, configFile: String?, logger: Logger) {
        store = SessionStore(stateDirectory: config.stateDir)
        limits = Mutex(config.sessions)
        self.configFile = configFile
        switch store.backing {
        case .file(let path):
            logger.info("Sessions stored on disk", metadata: ["path": "\(path)"])
        case .memory(fallbackReason: nil):
            logger.info("Sessions kept in memory only (state_dir: memory)")
        case .memory(fallbackReason: let reason?):
            logger.warning(
                "Cannot open the sessions database: sessions are kept in memory until a restart",
                metadata: ["state_dir": "\(config.stateDir)", "error": "\(reason)"])
        }
    }

    /// Where a server tool runs when it names no `cwd`: the state directory, which the store
    /// has made, or `/` when sessions live in memory and there may be none.
    var workingDirectory: String {
        switch store.backing {
        case .file(let path): UnixSocket.parentDirectory(of: path)
        case .memory: "/"
        }
    }

    /// Whose sessions a control client's are when its credentials cannot be read: the
    /// daemon's own uid, as the runner uses for a request without a peer.
    static var daemonUID: UInt32 { getuid() }

    /// The daemon's session limits now; agents' `sessions:` override them.
    var defaults: SessionLimits { limits.withLock { $0 } }

    /// Re-reads `sessions` from agentd.yaml (contract §6). An invalid file keeps the limits in
    /// force and its diagnostics join the reload's report, like a failed agent file.
    func reread(logger: Logger) -> [Diagnostic] {
        switch DaemonConfig.load(path: configFile, explicit: configFile != nil) {
        case .success(let config):
            let changed = limits.withLock { limits in
                defer { limits = config.sessions }
                return limits != config.sessions
            }
            if changed { logger.notice("Session limits changed by the reload") }
            return []
        case .failure(let list):
            for diagnostic in list.diagnostics {
                logger.error(
                    "Invalid daemon config; its session limits stay as they were",
                    metadata: ["diagnostic": "\(diagnostic)", "file": "\(diagnostic.file)"])
            }
            return list.diagnostics
        }
    }

    /// Removes expired sessions every `interval` until cancelled. Reads already treat them as
    /// gone; this reclaims their space. The store runs on its own thread, off the event loops.
    func sweep(every interval: Duration, logger: Logger) -> Task<Void, Never> {
        let store = store
        return Task {
            while (try? await Task.sleep(for: interval)) != nil {
                do {
                    let removed = try await store.sweepExpired()
                    if removed > 0 { logger.debug("Expired sessions removed", metadata: ["count": "\(removed)"]) }
                } catch {
                    logger.warning("Cannot remove expired sessions", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
