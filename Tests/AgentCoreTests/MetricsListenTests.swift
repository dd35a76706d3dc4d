import Foundation
import Testing

@testable import AgentCore

@Suite("metrics.listen")
struct MetricsListenTests {
    @Test("a bare port listens on loopback; an address is taken as written")
    func addresses() throws {
        #expect(try MetricsListen.parse("9464").get() == MetricsListen(host: "127.0.0.1", port: 9464))
        #expect(try MetricsListen.parse(":9464").get() == MetricsListen(host: "127.0.0.1", port: 9464))
        #expect(try MetricsListen.parse("localhost:9464").get() == MetricsListen(host: "127.0.0.1", port: 9464))
        #expect(try MetricsListen.parse("127.0.0.1:0").get() == MetricsListen(host: "127.0.0.1", port: 0))
        #expect(try MetricsListen.parse("0.0.0.0:9464").get() == MetricsListen(host: "0.0.0.0", port: 9464))
        #expect(try MetricsListen.parse("[::1]:9464").get() == MetricsListen(host: "::1", port: 9464))
        #expect(try MetricsListen.parse("[::]:9464").get().description == "[::]:9464")
    }

    @Test(
        "names, bad ports and stray text are refused",
        arguments: [
            "", "metrics.example.com:9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
            "256.0.0.1:80", "1.2.3:80", "[::1]", "[::1]9464", "[zz]:80", "::1:9464", "9464/metrics",
        ])
    func refused(_ text: String) {
        #expect(throws: MetricsListen.ListenError.self) { try MetricsListen.parse(text).get() }
    }

    @Test("a bad address is a config diagnostic at its line and column")
    func diagnostic() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/agentd.yaml"
        try write("log_level: info\nmetrics: {listen: \"metrics.example:80\"}\n", to: file)
        let diagnostics = try #require(DaemonConfig.load(path: file, explicit: true).failure)
        let diagnostic = try #require(diagnostics.diagnostics.first)
        #expect(diagnostic.line == 2)
        #expect(diagnostic.column == 19)
        #expect(diagnostic.message.hasPrefix("metrics.listen: expected PORT, :PORT, IPV4:PORT or [IPV6]:PORT"))
        #expect(diagnostic.message.hasSuffix("got 'metrics.example:80'"))

        try write("metrics: {listen: \"0.0.0.0:9464\"}\n", to: file)
        #expect(try DaemonConfig.load(path: file, explicit: true).get().metricsListen?.host == "0.0.0.0")
        #expect(try DaemonConfig.load(path: "/dev/null", explicit: true).get().metricsListen == nil)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let failure) = self { failure } else { nil }
    }
}
