import AgentCore
import Glibc

/// Who is on the other end of a connection, from SO_PEERCRED, with the names `allow` lists use.
struct PeerIdentity: Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
    var userName: String?
    /// Names of the peer's primary group and of every group its user belongs to.
    var groupNames: Set<String>

    init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        var groupIDs: Set<gid_t> = [gid]
        if let entry = getpwuid(uid) {
            let name = String(cString: entry.pointee.pw_name)
            userName = name
            var count: Int32 = 64
            var buffer = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(name, gid, &buffer, &count) == -1 {
                buffer = [gid_t](repeating: 0, count: Int(count))
                _ = getgrouplist(name, gid, &buffer, &count)
            }
            groupIDs.formUnion(buffer.prefix(Int(max(count, 0))))
        }
        groupNames = Set(groupIDs.compactMap { getgrgid($0).map { String(cString: $0.pointee.gr_name) } })
    }

    /// `allow` admits a peer named in `users` or belonging to one of `groups`; no `allow` admits
    /// whoever the socket's mode and group let connect.
    func isAllowed(by access: AccessList?) -> Bool {
        guard let access else { return true }
        if let userName, access.users.contains(userName) { return true }
        return access.groups.contains { groupNames.contains($0) }
    }

    var runnerPeer: RequestRunner.Peer { .init(pid: pid, uid: uid, gid: gid) }
}
