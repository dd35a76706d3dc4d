import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Issue 20 end to end: the User-Agent upstream sees, the metrics of CONTRACT §6 over the
/// control socket and `GET /metrics`, and the audit trail on stderr (the journal's fields).
@Suite(.serialized, .blocksItsThread) struct OperationsTests {
    @Test func everyUpstreamRequestSaysAgentdAndItsVersion() throws {
        let harness = try DaemonHarness(agents: ["chat.yaml": Agents.chat])
        try harness.start()
        #expect(try harness.connect("chat").request(["id": 1, "input": "hi"]).last?["type"] == "done")
        let version = try #require(try harness.control(["id": 1, "command": "status"])["status"]?["version"])
        #expect(try harness.emulator.stats()["last_user_agent"]?.stringValue == "agentd/\(version.stringValue ?? "?")")
        #expect(harness.stop() == 0)
    }

    @Test func metricsCountRequestsRefusalsAndReloadsOverControlAndHTTP() throws {
        let harness = try DaemonHarness(
            agents: ["chat.yaml": Agents.chat, "guarded.yaml": Agents.chat + "\nallow: {users: [nobody]}\n"],
            config: "metrics: {listen: \"127.0.0.1:0\"}\n")
        let daemon = try harness.start()
        let chat = try harness.connect("chat")
        for id in 1...2 { #expect(chat.request(["id": .int(Int64(id)), "input": "hello"]).last?["type"] == "done") }
        #expect(chat.request(["id": 3, "input": "hi", "stream": false]).last?["type"] == "done")
        // A stored session shows in agentd_sessions once the gauge is next sampled.
        #expect(chat.request(["id": 4, "input": "remember", "session": "s1"]).last?["type"] == "done")
        let refused = try harness.connect("guarded").request(["id": "f", "input": "let me in"]).last
        #expect(refused?["error"]?["code"] == "forbidden")
        _ = try harness.reload()
        _ = try harness.control(["id": 1, "command": "reload"])

        // A request is counted just after its terminal event is written: poll briefly.
        let expected = [
            #"agentd_requests_total{agent="chat",outcome="done"} 4"#,
            #"agentd_requests_total{agent="guarded",outcome="forbidden"} 1"#,
            #"agentd_time_to_first_text_seconds_count{agent="chat"} 4"#,
            #"agentd_time_to_first_text_seconds_bucket{agent="chat",le="120.0"} 4"#,
            #"agentd_request_duration_seconds_count{agent="chat"} 4"#,
            #"agentd_upstream_responses_total{agent="chat",status="200"} 4"#,
            #"agentd_retries_total{agent="chat"} 0"#,
            #"agentd_reloads_total{result="ok"} 2"#,
            #"agentd_in_flight{agent="chat"} 0.0"#,
            #"agentd_queue_depth{agent="chat"} 0.0"#,
            "agentd_sessions 1.0",
        ]
        var text = ""
        _ = try eventually(within: 15) {
            let reply = try harness.control(["id": 2, "command": "metrics"])
            text = reply["text"]?.stringValue ?? ""
            return reply["type"] == "result" && expected.allSatisfy { text.contains($0 + "\n") }
        }
        for line in expected { #expect(text.contains(line + "\n"), "missing \(line)") }
        #expect(text.contains(#"agentd_tokens_total{agent="chat",kind="completion"} "#))
        #expect(text.contains("# TYPE agentd_time_to_first_text_seconds histogram"))
        #expect(text.contains("agentd_connections "))

        // The same exposition over HTTP, on the port the kernel chose.
        var port: Int?
        _ = eventually {
            port = daemon.stderr.split(separator: "\n").first { $0.contains("Serving metrics") }
                .flatMap { $0.split(separator: ":").last }.flatMap { Int($0) }
            return port != nil
        }
        let (head, body) = try httpGet(port: try #require(port), path: "/metrics")
        #expect(head.hasPrefix("HTTP/1.1 200"))
        #expect(head.lowercased().contains("content-type: text/plain; version=0.0.4; charset=utf-8"))
        #expect(body.contains(#"agentd_requests_total{agent="chat",outcome="done"} 4"#))
        #expect(try httpGet(port: try #require(port), path: "/").head.hasPrefix("HTTP/1.1 404"))

        // The audit trail: the refused peer with its credentials, and who asked for each reload.
        let log = daemon.stderr
        let forbidden = try #require(log.split(separator: "\n").first { $0.contains("Peer not allowed") })
        #expect(forbidden.contains("notice"))
        for field in ["agent=guarded", "peer.uid=\(getuid())", "peer.gid=\(getgid())", "peer.pid=\(getpid())"] {
            #expect(forbidden.contains(field), "\(field) in \(forbidden)")
        }
        #expect(log.contains("Reload requested reload.by=SIGHUP"))
        let byControl = try #require(log.split(separator: "\n").first { $0.contains("reload.by=control") })
        #expect(byControl.contains("peer.uid=\(getuid())"))
        #expect(harness.stop() == 0)
    }

    @Test func connectionsOverMaxConnectionsAreLoggedOnceASecondWithACount() throws {
        let harness = try DaemonHarness(agents: ["chat.yaml": Agents.chat], config: "max_connections: 1\n")
        let daemon = try harness.start()
        let held = try harness.connect("chat")
        #expect(held.request(["id": 1, "input": "hi"]).last?["type"] == "done")
        for _ in 0..<5 {
            let extra = try harness.connect("chat")
            #expect(extra.next(within: 5)?["error"]?["code"] == "overloaded")
        }
        let lines = daemon.stderr.split(separator: "\n").filter { $0.contains("refused over max_connections") }
        // Five refusals within a second: the first is logged at once, the rest wait for the next line.
        #expect(lines.count == 1)
        #expect(lines.first?.contains("refused=1") == true)
        #expect(lines.first?.contains("max_connections=1") == true)
        usleep(1_100_000)
        let late = try harness.connect("chat")
        #expect(late.next(within: 5)?["error"]?["code"] == "overloaded")
        let after = daemon.stderr.split(separator: "\n").filter { $0.contains("refused over max_connections") }
        #expect(after.last?.contains("refused=5") == true)
        #expect(harness.stop() == 0)
    }

    @Test func aBadMetricsAddressIsAConfigError() throws {
        let harness = try DaemonHarness(
            agents: ["chat.yaml": Agents.chat], config: "metrics: {listen: \"example.com:80\"}\n")
        let daemon = try harness.start(waitForReady: false)
        #expect(daemon.waitForExit(within: 10) == 78)
        #expect(daemon.stderr.contains("metrics.listen: expected PORT"))
    }
}
