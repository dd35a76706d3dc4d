import AgentCore
import LLM
import Synchronization
import Testing

@testable import AgentDaemon

/// A socket binder that binds nothing: it records what it was asked to bind, and refuses the
/// paths a test names, as a bind(2) that fails would.
private final class FakeBinder: Sendable {
    final class FakeListener: AgentListener {
        let binding: SocketBinding
        private let stopped = Mutex(false)

        init(binding: SocketBinding) { self.binding = binding }

        var isStopped: Bool { stopped.withLock { $0 } }
        func stop() async { stopped.withLock { $0 = true } }
        func connectionsEnded() async {}
    }

    struct Refused: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path): bind: Address already in use" }
    }

    private let state = Mutex<(bound: [FakeListener], refused: Set<String>)>(([], []))

    func refuse(_ path: String) { state.withLock { _ = $0.refused.insert(path) } }

    var bound: [FakeListener] { state.withLock { $0.bound } }

    func bind(_ runtime: AgentRuntime, _ binding: SocketBinding) throws -> any AgentListener {
        try state.withLock { state in
            guard !state.refused.contains(binding.path) else { throw Refused(path: binding.path) }
            let listener = FakeListener(binding: binding)
            state.bound.append(listener)
            return listener
        }
    }
}

@Suite struct ReloadDiffTests {
    private let binder = FakeBinder()
    private let registry: AgentRegistry

    init() {
        var config = DaemonConfig()
        config.socketDir = "/run/test-agentd"
        let binder = binder
        registry = AgentRegistry(config: config, metrics: DaemonMetrics()) { runtime, binding in
            try binder.bind(runtime, binding)
        }
    }

    private func agent(_ name: String, model: String = "mistral-small-latest", socketPath: String? = nil)
        -> AgentDefinition
    {
        AgentDefinition(
            name: name, file: "/agents.d/\(name).yaml", mode: .normal, upstream: .chatCompletions(model: model),
            socket: SocketSettings(path: socketPath, mode: 0o660))
    }

    private func failure(_ name: String) -> [String: [Diagnostic]] {
        ["/agents.d/\(name).yaml": [Diagnostic(file: "/agents.d/\(name).yaml", line: 2, column: 1, message: "bad")]]
    }

    @Test func newAgentsAreAddedWithASocketEach() async {
        let report = await registry.apply(AgentDirectory(agents: [agent("a"), agent("b")], failures: [:]))
        #expect(report.added == ["a", "b"])
        #expect(report.ok)
        #expect(
            binder.bound.map(\.binding.path).sorted() == [
                "/run/test-agentd/agents/a.sock", "/run/test-agentd/agents/b.sock",
            ])
        #expect(registry.runtime(named: "a")?.state == .serving)
    }

    @Test func anUnchangedAgentKeepsItsSocketUntouched() async {
        _ = await registry.apply(AgentDirectory(agents: [agent("a")], failures: [:]))
        let report = await registry.apply(AgentDirectory(agents: [agent("a")], failures: [:]))
        #expect(report.unchanged == ["a"])
        #expect(binder.bound.count == 1)
        #expect(binder.bound[0].isStopped == false)
    }

    @Test func aChangedDefinitionIsSwappedInOnTheSameSocket() async {
        _ = await registry.apply(AgentDirectory(agents: [agent("a")], failures: [:]))
        let runtime = registry.runtime(named: "a")
        let report = await registry.apply(
            AgentDirectory(agents: [agent("a", model: "mistral-large-latest")], failures: [:]))
        #expect(report.changed == ["a"])
        #expect(binder.bound.count == 1, "the socket did not change, so it is not rebound")
        #expect(registry.runtime(named: "a") === runtime, "requests in flight keep their runtime")
        #expect(runtime?.definition.modelOrAgentID == "mistral-large-latest")
    }

    @Test func aFileThatBreaksKeepsItsLastGoodDefinitionAsStale() async {
        _ = await registry.apply(AgentDirectory(agents: [agent("a")], failures: [:]))
        let report = await registry.apply(AgentDirectory(agents: [], failures: failure("a")))
        #expect(report.errors.map(\.line) == [2])
        #expect(report.removed.isEmpty)
        #expect(registry.runtime(named: "a")?.state == .stale)
        #expect(registry.runtime(named: "a")?.definition.modelOrAgentID == "mistral-small-latest")
        #expect(binder.bound[0].isStopped == false)

        let fixed = await registry.apply(AgentDirectory(agents: [agent("a")], failures: [:]))
        #expect(fixed.unchanged == ["a"])
        #expect(registry.runtime(named: "a")?.state == .serving, "the same file loading again clears stale")
    }

    @Test func aRemovedAgentStopsAcceptingAndIsMarkedRemoved() async {
        _ = await registry.apply(AgentDirectory(agents: [agent("a"), agent("b")], failures: [:]))
        let runtime = registry.runtime(named: "a")
        let report = await registry.apply(AgentDirectory(agents: [agent("b")], failures: [:]))
        #expect(report.removed == ["a"])
        #expect(registry.runtime(named: "a") == nil)
        #expect(runtime?.state == .removed, "its open connections refuse new requests")
        #expect(binder.bound.first { $0.binding.path.hasSuffix("/a.sock") }?.isStopped == true)
    }

    @Test func aSocketChangeThatFailsToBindKeepsTheOldSocketAndGoesStale() async {
        _ = await registry.apply(AgentDirectory(agents: [agent("a")], failures: [:]))
        binder.refuse("/srv/taken.sock")
        let report = await registry.apply(
            AgentDirectory(agents: [agent("a", model: "other", socketPath: "/srv/taken.sock")], failures: [:]))
        #expect(report.changed.isEmpty)
        #expect(report.errors.first?.message.contains("/srv/taken.sock") == true)
        let runtime = registry.runtime(named: "a")
        #expect(runtime?.state == .stale)
        #expect(runtime?.definition.modelOrAgentID == "mistral-small-latest")
        #expect(binder.bound.count == 1 && binder.bound[0].isStopped == false, "the old socket still serves")
    }

    @Test func aSocketChangeThatBindsMovesTheAgent() async {
        _ = await registry.apply(AgentDirectory(agents: [agent("a")], failures: [:]))
        let report = await registry.apply(
            AgentDirectory(agents: [agent("a", socketPath: "/srv/new.sock")], failures: [:]))
        #expect(report.changed == ["a"])
        #expect(binder.bound.map(\.binding.path) == ["/run/test-agentd/agents/a.sock", "/srv/new.sock"])
        #expect(binder.bound[0].isStopped && !binder.bound[1].isStopped)
    }

    @Test func aNewAgentWhoseSocketCannotBeBoundIsAnErrorNotAnAgent() async {
        binder.refuse("/run/test-agentd/agents/a.sock")
        let report = await registry.apply(AgentDirectory(agents: [agent("a"), agent("b")], failures: [:]))
        #expect(report.added == ["b"])
        #expect(report.errors.map(\.file) == ["/agents.d/a.yaml"])
        #expect(registry.runtime(named: "a") == nil)
    }

    @Test func oneReloadAddsChangesBreaksAndRemovesAtOnce() async {
        _ = await registry.apply(
            AgentDirectory(agents: [agent("keep"), agent("change"), agent("break"), agent("gone")], failures: [:]))
        let report = await registry.apply(
            AgentDirectory(
                agents: [agent("keep"), agent("change", model: "m2"), agent("new")], failures: failure("break")))
        #expect(report.added == ["new"])
        #expect(report.changed == ["change"])
        #expect(report.removed == ["gone"])
        #expect(report.unchanged == ["keep"])
        #expect(report.errors.count == 1)
        #expect(registry.all.map(\.runtime.name) == ["break", "change", "keep", "new"])
    }
}

@Suite struct AgentRuntimeStateTests {
    private let runtime = AgentRuntime(
        definition: AgentDefinition(
            name: "a", file: "/agents.d/a.yaml", mode: .normal, upstream: .chatCompletions(model: "m")),
        metrics: DaemonMetrics().agent(named: "a"))

    @Test func servingGoesStaleAndBack() {
        #expect(runtime.state == .serving)
        runtime.markStale()
        #expect(runtime.state == .stale)
        runtime.replace(with: runtime.definition)
        #expect(runtime.state == .serving)
    }

    @Test func removedIsFinal() {
        runtime.markRemoved()
        runtime.markStale()
        #expect(runtime.state == .removed)
        runtime.replace(with: runtime.definition)
        #expect(runtime.state == .removed)
        #expect(runtime.isRemoved)
    }

    @Test func listsServingAsOkAndStaleAsStale() {
        #expect(runtime.listing(socketPath: "/s")["state"] == "ok")
        runtime.markStale()
        #expect(runtime.listing(socketPath: "/s")["state"] == "stale")
    }
}
