import AgentProtocol
import LLM
import Testing

@testable import AgentDaemon

@Suite struct MetricsTests {
    private func exposition(_ metrics: DaemonMetrics, inFlight: Int = 0, queued: Int = 0) -> String {
        String(
            decoding: metrics.exposition(
                DaemonMetrics.LiveState(connections: 2, agents: ["a": (inFlight, queued)])),
            as: UTF8.self)
    }

    @Test func everySeriesOfTheContractIsExposedWithBoundedLabels() {
        let metrics = DaemonMetrics()
        let agent = metrics.agent(named: "a")
        #expect(metrics.agent(named: "a") === agent)
        agent.upstreamResponded(status: 429)
        agent.upstreamRetrying()
        agent.upstreamResponded(status: 200)
        agent.firstText(after: .milliseconds(30))
        agent.toolRan("disk_free", ok: true)
        agent.toolRan("disk_free", ok: false)
        agent.ended(
            .done(
                Completion(
                    text: "hi", toolCalls: [], finishReason: "stop",
                    usage: Usage(promptTokens: 30, completionTokens: 5, cachedTokens: 10), model: nil)),
            after: .milliseconds(40))
        agent.ended(.failed(ErrorInfo(code: .timeout, message: "late")), after: .seconds(200))
        agent.refused(.forbidden)
        metrics.reloaded(ok: true)
        metrics.reloaded(ok: false)
        metrics.setSessions(7)
        metrics.setMCPServer("docs", up: true)
        let text = exposition(metrics, inFlight: 3, queued: 1)
        for line in [
            #"agentd_requests_total{agent="a",outcome="done"} 1"#,
            #"agentd_requests_total{agent="a",outcome="timeout"} 1"#,
            #"agentd_requests_total{agent="a",outcome="forbidden"} 1"#,
            #"agentd_requests_total{agent="a",outcome="bad_request"} 0"#,
            #"agentd_request_duration_seconds_bucket{agent="a",le="0.05"} 1"#,
            #"agentd_request_duration_seconds_bucket{agent="a",le="120.0"} 1"#,
            #"agentd_request_duration_seconds_bucket{agent="a",le="+Inf"} 2"#,
            #"agentd_time_to_first_text_seconds_bucket{agent="a",le="0.01"} 0"#,
            #"agentd_time_to_first_text_seconds_bucket{agent="a",le="0.05"} 1"#,
            #"agentd_tokens_total{agent="a",kind="prompt"} 30"#,
            #"agentd_tokens_total{agent="a",kind="completion"} 5"#,
            #"agentd_tokens_total{agent="a",kind="cached"} 10"#,
            #"agentd_upstream_responses_total{agent="a",status="429"} 1"#,
            #"agentd_upstream_responses_total{agent="a",status="200"} 1"#,
            #"agentd_retries_total{agent="a"} 1"#,
            #"agentd_tool_calls_total{agent="a",tool="disk_free",ok="true"} 1"#,
            #"agentd_tool_calls_total{agent="a",tool="disk_free",ok="false"} 1"#,
            #"agentd_in_flight{agent="a"} 3.0"#,
            #"agentd_queue_depth{agent="a"} 1.0"#,
            "agentd_connections 2.0",
            "agentd_sessions 7.0",
            #"agentd_mcp_server_up{server="docs"} 1.0"#,
            #"agentd_reloads_total{result="ok"} 1"#,
            #"agentd_reloads_total{result="failed"} 1"#,
        ] {
            #expect(text.contains(line + "\n"), "missing \(line)")
        }
        // An agent no longer served reads as idle, not as its last sample.
        #expect(
            String(decoding: metrics.exposition(DaemonMetrics.LiveState(connections: 0, agents: [:])), as: UTF8.self)
                .contains(#"agentd_in_flight{agent="a"} 0.0"#))
    }

    @Test func aRareStatusGetsItsOwnSeriesOnce() {
        let metrics = DaemonMetrics()
        let agent = metrics.agent(named: "a")
        agent.upstreamResponded(status: 418)
        agent.upstreamResponded(status: 418)
        #expect(exposition(metrics).contains(#"agentd_upstream_responses_total{agent="a",status="418"} 2"#))
    }

    @Test func eachFamilyIsOneBlockWithEveryAgentsSeries() {
        let metrics = DaemonMetrics()
        metrics.agent(named: "b").upstreamRetrying()
        metrics.agent(named: "a").upstreamRetrying()
        let lines = String(
            decoding: metrics.exposition(DaemonMetrics.LiveState(connections: 0, agents: [:])), as: UTF8.self
        ).split(separator: "\n")
        #expect(lines.filter { $0 == "# TYPE agentd_retries_total counter" }.count == 1)
        #expect(lines.filter { $0.hasPrefix("# HELP agentd_retries_total ") }.count == 1)
        let type = lines.firstIndex(of: "# TYPE agentd_retries_total counter")!
        #expect(
            Array(lines[(type + 1)...].prefix(2)) == [
                #"agentd_retries_total{agent="a"} 1"#, #"agentd_retries_total{agent="b"} 1"#,
            ])
        // An agent that has served nothing yet still shows its series, at zero.
        _ = metrics.agent(named: "idle")
        let withIdle = String(
            decoding: metrics.exposition(DaemonMetrics.LiveState(connections: 0, agents: [:])), as: UTF8.self)
        #expect(withIdle.contains(#"agentd_requests_total{agent="idle",outcome="done"} 0"#))
        #expect(withIdle.contains(#"agentd_in_flight{agent="idle"} 0.0"#))
        // Every family's TYPE line appears once, whatever the number of agents.
        let types = lines.filter { $0.hasPrefix("# TYPE ") }
        #expect(Set(types).count == types.count)
    }
}
