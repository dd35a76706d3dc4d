import AgentCore
import Glibc
import Synchronization

/// An agent's listening socket, as the registry sees it: where it is bound, and how to stop it.
protocol AgentListener: Sendable {
    var binding: SocketBinding { get }
    /// Stops accepting and removes the socket file; connections already open carry on.
    func stop() async
    /// Returns once every connection accepted here has ended.
    func connectionsEnded() async
}

/// The agents in service and their sockets; applies a freshly loaded agents directory.
///
/// Last-known-good per file: a file that fails keeps its previous definition in service
/// (`stale`). Unchanged agents keep their socket untouched; changed ones keep it unless its
/// path, mode or group changed; removed ones stop accepting and lose their socket file while
/// their open connections finish.
final class AgentRegistry: Sendable {
    struct Entry: Sendable {
        let runtime: AgentRuntime
        let listener: any AgentListener
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let config: DaemonConfig
    private let metrics: DaemonMetrics
    private let bindAgent: @Sendable (AgentRuntime, SocketBinding) async throws -> any AgentListener

    /// `bindAgent` binds an agent's socket and serves it; the tests give one that binds nothing.
    init(
        config: DaemonConfig, metrics: DaemonMetrics,
        bindAgent: @escaping @Sendable (AgentRuntime, SocketBinding) async throws -> any AgentListener
    ) {
        self.config = config
        self.metrics = metrics
        self.bindAgent = bindAgent
    }

    func runtime(named name: String) -> AgentRuntime? { entries.withLock { $0[name]?.runtime } }

    var all: [Entry] { entries.withLock { $0.values.sorted { $0.runtime.name < $1.runtime.name } } }

    /// The largest request line any agent accepts: the control socket's bound, since `chat`
    /// lines carry requests for any agent.
    var largestRequestBytes: Int {
        entries.withLock { $0.values.map(\.runtime.definition.limits.maxRequestBytes).max() }
            ?? Limits.defaultMaxRequestBytes
    }

    func socketBinding(for definition: AgentDefinition) -> SocketBinding {
        SocketBinding(
            path: definition.socket.path ?? "\(config.socketDir)/agents/\(definition.name).sock",
            mode: definition.socket.mode,
            group: (definition.socket.group ?? config.socketGroup).flatMap { name in getgrnam(name)?.pointee.gr_gid })
    }

    /// Brings the served agents in line with `directory`.
    func apply(_ directory: AgentDirectory) async -> ReloadReport {
        var report = ReloadReport(time: Double(time(nil)))
        report.errors = directory.diagnostics
        let current = entries.withLock { $0 }
        let loadedNames = Set(directory.agents.map(\.name))
        let failedNames = Set(directory.failures.keys.compactMap(Self.agentName(ofFile:)))

        // Removals first: a socket path a removed agent gives up may be what a new or changed
        // agent binds.
        for (name, entry) in current where !loadedNames.contains(name) {
            if failedNames.contains(name) {
                entry.runtime.markStale()
                continue
            }
            entry.runtime.markRemoved()
            await entry.listener.stop()
            entries.withLock { _ = $0.removeValue(forKey: name) }
            report.removed.append(name)
        }
        for (definition, outcome) in await bindNewAgents(directory.agents.filter { current[$0.name] == nil }) {
            switch outcome {
            case .success(let entry):
                entries.withLock { $0[definition.name] = entry }
                report.added.append(definition.name)
            case .failure(let error):
                report.errors.append(Diagnostic(file: definition.file, line: 1, column: 1, message: "\(error)"))
            }
        }

        for definition in directory.agents {
            guard let entry = current[definition.name] else { continue }
            let binding = socketBinding(for: definition)
            if entry.runtime.definition == definition {
                entry.runtime.replace(with: definition)  // clears a `stale` mark left by an earlier failure
                report.unchanged.append(definition.name)
                continue
            }
            if entry.listener.binding != binding {
                do {
                    let listener = try await rebind(entry, to: binding)
                    entries.withLock { $0[definition.name] = Entry(runtime: entry.runtime, listener: listener) }
                } catch {
                    // Last known good: the agent keeps its previous definition and socket.
                    report.errors.append(Diagnostic(file: definition.file, line: 1, column: 1, message: "\(error)"))
                    entry.runtime.markStale()
                    continue
                }
            }
            entry.runtime.replace(with: definition)
            report.changed.append(definition.name)
        }

        report.added.sort()
        report.changed.sort()
        report.removed.sort()
        report.unchanged.sort()
        return report
    }

    /// Moves an agent to a new socket binding. A new path is bound before the old socket goes,
    /// so a failure leaves the agent where it was; the same path must be freed first, and a
    /// failure then puts the old binding back.
    private func rebind(_ entry: Entry, to binding: SocketBinding) async throws -> any AgentListener {
        guard entry.listener.binding.path == binding.path else {
            let listener = try await bindAgent(entry.runtime, binding)
            await entry.listener.stop()
            return listener
        }
        await entry.listener.stop()
        do {
            return try await bindAgent(entry.runtime, binding)
        } catch {
            let restored = try await bindAgent(entry.runtime, entry.listener.binding)
            entries.withLock { $0[entry.runtime.name] = Entry(runtime: entry.runtime, listener: restored) }
            throw error
        }
    }

    /// Binds the sockets of new agents a few at a time: each bind waits on an event loop, and
    /// one after the other they dominate the start with a thousand agents.
    private func bindNewAgents(
        _ definitions: [AgentDefinition]
    ) async -> [(AgentDefinition, Result<Entry, any Error>)] {
        let parallelBinds = 16
        return await withTaskGroup(of: (AgentDefinition, Result<Entry, any Error>).self) { group in
            var results: [(AgentDefinition, Result<Entry, any Error>)] = []
            for (index, definition) in definitions.enumerated() {
                if index >= parallelBinds, let result = await group.next() { results.append(result) }
                group.addTask {
                    let runtime = AgentRuntime(
                        definition: definition, metrics: self.metrics.agent(named: definition.name))
                    do {
                        let listener = try await self.bindAgent(runtime, self.socketBinding(for: definition))
                        return (definition, .success(Entry(runtime: runtime, listener: listener)))
                    } catch {
                        return (definition, .failure(error))
                    }
                }
            }
            for await result in group { results.append(result) }
            return results
        }
    }

    /// Stops every listener (shutdown); open connections carry on until closed.
    func stopAll() async {
        for entry in all { await entry.listener.stop() }
    }

    /// The agent a file defines: its stem, when the stem is a valid name.
    static func agentName(ofFile path: String) -> String? {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        for suffix in [".yaml", ".yml"] where file.hasSuffix(suffix) {
            return String(file.dropLast(suffix.count))
        }
        return nil
    }
}
