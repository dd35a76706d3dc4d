import AgentCore
import Glibc
import Testing

@testable import AgentDaemon

@Suite struct PeerIdentityTests {
    private let me = PeerIdentity(pid: getpid(), uid: getuid(), gid: getgid())

    @Test func namesComeFromTheUserAndGroupDatabases() async throws {
        let user = try #require(Accounts.userName(of: getuid()))
        let group = try #require(Accounts.groupName(of: getgid()))
        let names = await me.names()
        #expect(names.user == user)
        #expect(names.groups.contains(group))
        #expect(Accounts.userName(of: 4_000_000_000) == nil)
    }

    @Test func allowAdmitsByUserOrGroupAndRefusesOthers() async throws {
        let user = try #require(Accounts.userName(of: getuid()))
        let group = try #require(Accounts.groupName(of: getgid()))
        #expect(await me.isAllowed(by: nil))
        #expect(await me.isAllowed(by: AccessList(users: [user])))
        #expect(await me.isAllowed(by: AccessList(groups: [group])))
        #expect(await !me.isAllowed(by: AccessList(users: ["no-such-user-\(getpid())"], groups: ["no-such-group"])))
        let stranger = PeerIdentity(pid: 1, uid: 4_000_000_000, gid: 4_000_000_000)
        #expect(await !stranger.isAllowed(by: AccessList(users: [user], groups: [group])))
        #expect(await stranger.names().user == nil)
    }
}
