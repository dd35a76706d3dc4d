import Foundation
import Testing
import Tools

@testable import AgentCore

/// `mcp_servers` in agentd.yaml (§3) and in agent files (§2), with their diagnostics.
@Suite struct MCPConfigTests {
    private func file(_ name: String, _ contents: String) throws -> String {
        let directory = NSTemporaryDirectory() + "mcp-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = "\(directory)/\(name)"
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func messages(_ result: Result<some Any, DiagnosticList>) -> [String] {
        guard case .failure(let list) = result else { return [] }
        return list.diagnostics.map { "\($0.line):\($0.column): \($0.message)" }
    }

    @Test func aServerIsReadWithItsDefaults() throws {
        let path = try file(
            "agentd.yaml",
            """
            mcp_servers:
              docs:
                command: [/bin/cat, --flag]
                env: {TOKEN_FILE: /run/token}
                timeout: 5s
                tools: [search]
              time:
                command: [/bin/true]
            """)
        let config = try DaemonConfig.load(path: path, explicit: true).get()
        #expect(
            config.mcpServers["docs"]
                == MCPServerConfig(
                    name: "docs", command: ["/bin/cat", "--flag"], env: ["TOKEN_FILE": "/run/token"],
                    timeout: .seconds(5), tools: ["search"]))
        #expect(config.mcpServers["time"]?.timeout == MCPServerConfig.defaultTimeout)
        #expect(config.mcpServers["time"]?.tools == nil)
    }

    @Test func badServersAreReportedAtTheirKeys() throws {
        let path = try file(
            "agentd.yaml",
            """
            mcp_servers:
              bad__name:
                command: [/bin/true]
              relative:
                command: [cat]
              nocommand:
                timeout: 5s
              longtool:
                command: [/bin/true]
                tools: [\(String(repeating: "t", count: 62))]
              typo:
                command: [/bin/true]
                tool: [x]
            """)
        let found = messages(DaemonConfig.load(path: path, explicit: true))
        #expect(found.count == 5, "\(found)")
        #expect(found.contains { $0.hasPrefix("2:3:") && $0.contains("without \"__\"") })
        #expect(
            found.contains {
                $0.hasPrefix("5:14:") && $0.contains("command executable \"cat\" is not an absolute path")
            })
        #expect(found.contains { $0.hasPrefix("7:5:") && $0.contains("missing 'command'") })
        #expect(found.contains { $0.contains("is not a name Mistral accepts") })
        #expect(found.contains { $0.contains("unknown key 'tool'") && $0.contains("did you mean 'tools'") })
    }

    @Test func anAgentNamesKnownServersOnly() throws {
        let path = try file(
            "clock.yaml",
            """
            model: mistral-small-latest
            mcp_servers: [time, tiem, time]
            tools:
              - name: time__own
                description: clashes with the server's names
            """)
        let found = messages(AgentLoader.loadFile(path, mcpServers: ["time"]))
        #expect(found.count == 3, "\(found)")
        #expect(found.contains { $0.contains("mcp_servers[0]") && $0.contains("'time__own'") })
        #expect(found.contains { $0.contains("no MCP server 'tiem'") && $0.contains("did you mean 'time'") })
        #expect(found.contains { $0.contains("mcp_servers[2]") && $0.contains("named twice") })
    }

    @Test func theShippedClockExampleLoadsWithItsMCPPartEnabled() throws {
        let shipped = try String(contentsOfFile: Fixtures.shippedAgents + "/clock.yaml", encoding: .utf8)
        #expect(shipped.contains("\n# mcp_servers: [time]\n"))
        let enabled = try file(
            "clock.yaml", shipped.replacingOccurrences(of: "\n# mcp_servers: [time]\n", with: "\nmcp_servers: [time]\n")
        )
        #expect(try AgentLoader.loadFile(enabled, mcpServers: ["time"]).get().mcpServers == ["time"])
    }

    @Test func withoutAgentdYamlNamesAreNotCheckedAndBothModesAcceptTheKey() throws {
        let normal = try file("a.yaml", "model: mistral-small-latest\nmcp_servers: [docs]\n")
        #expect(try AgentLoader.loadFile(normal).get().mcpServers == ["docs"])
        let agent = try file(
            "b.yaml", "mode: agent\nagent_id: ag_0684fe0e0b98773e8000323fc71a3986\nmcp_servers: [docs]\n")
        #expect(try AgentLoader.loadFile(agent, mcpServers: ["docs"]).get().mcpServers == ["docs"])
    }
}
