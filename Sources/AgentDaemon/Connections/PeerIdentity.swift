import AgentCore
import AgentRunner
import Glibc
import NIOPosix
import Synchronization

/// Who is on the other end of a connection, from SO_PEERCRED.
///
/// The names that `allow` lists use are looked up on first use and kept for the connection:
/// the lookups read /etc/passwd and /etc/group (or ask nscd), which cost more than a whole
/// request, and most agents have no `allow` list at all. They run on NIO's thread pool for
/// blocking work: with nscd, sssd or LDAP a lookup can wait on the network, and connections are
/// served on event loops, where it would hold up every connection of the loop.
final class PeerIdentity: Sendable {
    let pid: Int32
    let uid: UInt32
    let gid: UInt32
    private let cachedNames = Mutex<Names?>(nil)

    struct Names: Sendable {
        var user: String?
        /// Names of the peer's primary group and of every group its user belongs to.
        var groups: Set<String>
    }

    init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    func names() async -> Names {
        if let cached = cachedNames.withLock({ $0 }) { return cached }
        let (uid, gid) = (uid, gid)
        let names: Names
        do {
            names = try await NIOThreadPool.singleton.runIfActive { Self.lookUpNames(uid: uid, gid: gid) }
        } catch {
            // The pool only refuses work once it has been shut down, which agentd never does.
            names = Self.lookUpNames(uid: uid, gid: gid)
        }
        cachedNames.withLock { $0 = names }
        return names
    }

    private static func lookUpNames(uid: UInt32, gid: UInt32) -> Names {
        let user = Accounts.userName(of: uid)
        var groupIDs: Set<gid_t> = [gid]
        if let user {
            var count: Int32 = 64
            var buffer = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(user, gid, &buffer, &count) == -1 {
                buffer = [gid_t](repeating: 0, count: Int(count))
                _ = getgrouplist(user, gid, &buffer, &count)
            }
            groupIDs.formUnion(buffer.prefix(Int(max(count, 0))))
        }
        return Names(user: user, groups: Set(groupIDs.compactMap { Accounts.groupName(of: $0) }))
    }

    /// `allow` admits a peer named in `users` or belonging to one of `groups`; no `allow` admits
    /// whoever the socket's mode and group let connect.
    func isAllowed(by access: AccessList?) async -> Bool {
        guard let access else { return true }
        let names = await names()
        if let user = names.user, access.users.contains(user) { return true }
        return access.groups.contains { names.groups.contains($0) }
    }

    var runnerPeer: RequestRunner.Peer { .init(pid: pid, uid: uid, gid: gid) }
}
