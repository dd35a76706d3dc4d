import AgentCore
import Logging
import Synchronization

/// The audit trail (CONTRACT §6): refused peers, connections refused over `max_connections`,
/// and who asked for each reload. Metadata keys become journal fields: `agent` → `AGENT=`,
/// `peer.uid` → `PEER_UID=`, so `journalctl -u agentd PEER_UID=1000` finds a user's refusals.
final class AuditLog: Sendable {
    private let logger: Logger
    /// When the last over-limit line was logged, and the refusals since.
    private let overLimit = Mutex<(lastLogged: ContinuousClock.Instant?, refused: Int)>((nil, 0))

    init(logger: Logger) {
        self.logger = logger
    }

    /// A request refused with `forbidden`: its peer is not in the agent's `allow`.
    func forbidden(agent: String, peer: PeerIdentity, user: String?) {
        logger.notice(
            "Peer not allowed: request refused (forbidden)",
            metadata: Self.peerFields(peer).merging(["agent": "\(agent)", "peer.user": "\(user ?? "-")"]) { $1 })
    }

    /// A connection refused over `max_connections`. Logged at most once a second: a flood of
    /// refusals is one line a second whose `refused` counts them all since the previous line.
    func connectionRefused(limit: Int) {
        let now = ContinuousClock.now
        let refused: Int? = overLimit.withLock { state in
            state.refused += 1
            if let last = state.lastLogged, now - last < .seconds(1) { return nil }
            defer { state = (now, 0) }
            return state.refused
        }
        guard let refused else { return }
        logger.warning(
            "Connections refused over max_connections",
            metadata: ["refused": "\(refused)", "max_connections": "\(limit)"])
    }

    /// The control `reload` command, from `peer` (nil when SO_PEERCRED was not available).
    func reloadRequested(byControlPeer peer: PeerIdentity?) {
        var fields: Logger.Metadata = ["reload.by": "control"]
        if let peer { fields.merge(Self.peerFields(peer)) { $1 } }
        logger.notice("Reload requested", metadata: fields)
    }

    /// SIGHUP (`systemctl reload agentd`, `kill -HUP`): the kernel does not say who sent it.
    func reloadRequested(bySignal name: String) {
        logger.notice("Reload requested", metadata: ["reload.by": "\(name)"])
    }

    private static func peerFields(_ peer: PeerIdentity) -> Logger.Metadata {
        ["peer.uid": "\(peer.uid)", "peer.gid": "\(peer.gid)", "peer.pid": "\(peer.pid)"]
    }
}
