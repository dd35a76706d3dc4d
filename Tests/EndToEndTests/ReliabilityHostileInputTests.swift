import Foundation
import Glibc
import JSON
import TestSupport
import Testing

/// Issue 7, hostile input on the sockets: whatever a client writes, it gets one error per
/// line (or a reply), the connection stays usable and agentd keeps serving. Extends the
/// malformed-line cases of DaemonProtocolTests.
@Suite(.serialized, .blocksItsThread) struct ReliabilityHostileLineTests {
    let harness: DaemonHarness

    init() throws {
        harness = try DaemonHarness(agents: [
            "chat.yaml": Agents.chat,
            "small.yaml": Agents.chat.replacingOccurrences(
                of: "idle_timeout: 2s", with: "idle_timeout: 2s\n  max_request_bytes: 1024"),
        ])
        try harness.start()
    }

    func expectUsable(_ client: LineClient, sourceLocation: SourceLocation = #_sourceLocation) {
        let events = client.request(["id": "after", "input": "still usable"])
        #expect(events.last?["text"] == "Echo: still usable", sourceLocation: sourceLocation)
    }

    @Test(arguments: ["[", "{\"a\":", "[{\"a\":"])
    func twoHundredThousandDeepNestingIsABadRequest(opener: String) throws {
        for socket in ["agent", "control"] {
            let client = try socket == "agent" ? harness.connect("chat") : LineClient(path: harness.controlPath)
            let line = String(repeating: opener, count: 200_000)
            client.send(line)
            let error = try #require(client.next(within: 30))
            // `[{"a":` repeated is over the default 1 MiB line limit, so refused before parsing.
            let expected: JSONValue = line.utf8.count > 1 << 20 ? "request_too_large" : "bad_request"
            #expect(error["error"]?["code"] == expected)
            if socket == "agent" { expectUsable(client) }
        }
    }

    @Test func deepNestingInsideAValidRequestIsABadRequest() throws {
        let client = try harness.connect("chat")
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        client.send(#"{"id":"deep","input":"x","options":{"stop":"# + deep + "}}")
        #expect(client.next(within: 30)?["error"]?["code"] == "bad_request")
        expectUsable(client)
    }

    @Test(arguments: [
        #"{"id":1e400,"input":"x"}"#,
        #"{"id":99999999999999999999999999,"input":"x"}"#,
        #"{"id":-9223372036854775809,"input":"x"}"#,
        #"{"id":"n","input":"x","options":{"temperature":1e999}}"#,
        #"{"id":"n","input":"x","options":{"max_tokens":1e30}}"#,
        #"{"id":"n","input":"x","options":{"max_tokens":18446744073709551616}}"#,
        #"{"id":"n","input":"x","options":{"random_seed":-1}}"#,
        #"{"id":"n","input":"x","options":{"temperature":-0.0e-99999}}"#,
    ])
    func hugeNumbersGetOneAnswerAndTheConnectionStaysUsable(line: String) throws {
        let client = try harness.connect("chat")
        client.send(line)
        let first = try #require(client.next())
        // Either refused naming the field, or served: never a crash or silence.
        if first["type"] == "error" {
            #expect(first["error"]?["code"] == "bad_request", "\(first.jsonText)")
        } else {
            #expect(client.events(until: first["id"] ?? .null).last?["type"] == "done")
        }
        expectUsable(client)
    }

    @Test(arguments: [
        #"{"input":"x","input":"y"}"#,
        #"{"id":"d","messages":[{"role":"user","role":"system","content":"x"}]}"#,
        #"{"id":"d","input":"x","options":{"temperature":0.1,"temperature":0.2}}"#,
        #"{"cancel":"a","cancel":"b"}"#,
    ])
    func duplicateKeysAtAnyDepthAreBadRequests(line: String) throws {
        let client = try harness.connect("chat")
        client.send(line)
        let error = try #require(client.next())
        #expect(error["error"]?["code"] == "bad_request")
        #expect(error["error"]?["message"]?.stringValue?.contains("duplicate") == true, "\(error.jsonText)")
        expectUsable(client)
    }

    @Test func invalidUTF8InEveryPositionIsABadRequest() throws {
        let client = try harness.connect("chat")
        let cases: [[UInt8]] = [
            [0xC0, 0x80],  // overlong NUL
            [0xED, 0xA0, 0x80],  // a UTF-16 surrogate
            [0xF4, 0x90, 0x80, 0x80],  // beyond U+10FFFF
            [0xE2, 0x82],  // truncated
        ]
        for bytes in cases {
            client.send(raw: Array(#"{"id":"u","input":"x","options":{"stop":""#.utf8) + bytes + Array("\"}}\n".utf8))
            #expect(client.next()?["error"]?["code"] == "bad_request")
            client.send(raw: Array(#"{"id":""#.utf8) + bytes + Array(#"","input":"x"}"#.utf8) + [10])
            #expect(client.next()?["error"]?["code"] == "bad_request")
        }
        // A lone surrogate escape is valid JSON syntax but not a Unicode scalar.
        client.send(#"{"id":"s","input":"\ud800"}"#)
        let answer = try #require(client.next())
        #expect(answer["error"]?["code"] == "bad_request" || answer["type"] == "start", "\(answer.jsonText)")
        if answer["type"] == "start" { _ = client.events(until: "s") }
        expectUsable(client)
    }

    @Test func nulBytesOutsideStringsAndWhitespaceLinesAreHandled() throws {
        let client = try harness.connect("chat")
        client.send(raw: [0, 0, 0, 10])
        #expect(client.next()?["error"]?["code"] == "bad_request")
        client.send(raw: Array(#"{"id":"n","input":"x"}"#.utf8) + [0, 10])
        #expect(client.next()?["error"]?["code"] == "bad_request")
        // CRLF endings are JSON whitespace.
        client.send(raw: Array(#"{"id":"crlf","input":"crlf"}"#.utf8) + [13, 10])
        #expect(client.events(until: "crlf").last?["text"] == "Echo: crlf")
        expectUsable(client)
    }

    @Test func linesOverAnAgentsOwnLimitAreRefusedOneByOne() throws {
        let client = try harness.connect("small")
        var burst: [UInt8] = []
        for index in 0..<20 {
            burst +=
                Array(#"{"id":\#(index),"input":""#.utf8)
                + Array(repeating: UInt8(ascii: "y"), count: 4000 + index * 997)
            burst += Array("\"}\n".utf8)
        }
        client.send(raw: burst)
        var refused = 0
        while refused < 20, let event = client.next(within: 10) {
            #expect(event["error"]?["code"] == "request_too_large")
            refused += 1
        }
        #expect(refused == 20)
        expectUsable(client)
    }

    @Test func aTenMegabyteLineWithoutNewlineIsRefusedWhileItStreams() throws {
        let client = try harness.connect("chat")
        let chunk = [UInt8](repeating: UInt8(ascii: "z"), count: 1 << 20)
        client.send(raw: Array(#"{"input":""#.utf8))
        for _ in 0..<10 { client.send(raw: chunk) }
        // Refused before its end arrives: the daemon does not wait to buffer all of it.
        #expect(client.next(within: 10)?["error"]?["code"] == "request_too_large")
        client.send(raw: Array("\"}\n".utf8))
        expectUsable(client)
    }

    @Test func randomBinaryGarbageNeverSilencesTheConnection() throws {
        let client = try harness.connect("chat")
        var generator = SystemRandomNumberGenerator()
        var garbage = (0..<256 * 1024).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // Make sure the last garbage line ends before the probe.
        garbage.append(10)
        client.send(raw: garbage)
        let lines = garbage.split(separator: 10, omittingEmptySubsequences: false).dropLast()
        var answers = 0
        while answers < lines.count, let event = client.next(within: 10) {
            #expect(event["type"] == "error")
            answers += 1
        }
        // Blank garbage lines may be skipped; every other line is answered.
        #expect(answers >= lines.filter { !$0.isEmpty }.count)
        expectUsable(client)
    }
}

/// Issue 7, hostile agent files: a reload meets bombs, huge files, FIFOs, directories,
/// symlink loops and a vanished directory; the good agents keep serving and the bad files
/// are reported, never hung on.
@Suite(.serialized, .blocksItsThread) struct ReliabilityHostileAgentFileTests {
    let harness: DaemonHarness

    init() throws {
        harness = try DaemonHarness(agents: ["keep.yaml": Agents.chat])
        try harness.start()
    }

    func reloadReport() throws -> JSONValue {
        try #require(try harness.control(["id": "r", "command": "reload"])["reload"])
    }

    func errorMessage(for file: String, in report: JSONValue) -> String? {
        report["errors"]?.arrayValue?.first { $0["file"]?.stringValue?.hasSuffix("/\(file)") == true }?["message"]?
            .stringValue
    }

    func expectKeepServes(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let events = try harness.connect("keep").request(["id": "k", "input": "kept"])
        #expect(events.last?["text"] == "Echo: kept", sourceLocation: sourceLocation)
    }

    @Test func aBillionLaughsIsRefusedQuickly() throws {
        var yaml = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        for level in 1..<10 {
            let previous = "*a\(level - 1)"
            yaml += "a\(level): &a\(level) [\(Array(repeating: previous, count: 10).joined(separator: ", "))]\n"
        }
        yaml += "model: *a9\n"
        harness.directory.write("agents.d/bomb.yaml", yaml)
        let started = monotonicNow()
        let report = try reloadReport()
        #expect(monotonicNow() - started < 10_000)
        #expect(errorMessage(for: "bomb.yaml", in: report) != nil, "\(report.jsonText)")
        try expectKeepServes()
    }

    @Test func hugeFilesFifosDirectoriesAndDevicesAreErrorsNotHangs() throws {
        let agents = harness.agentsDir
        harness.directory.write(
            "agents.d/huge.yaml", "model: mistral-small-latest\n# " + String(repeating: "x", count: 3 << 20) + "\n")
        #expect(mkfifo("\(agents)/fifo.yaml", 0o644) == 0)
        #expect(mkdir("\(agents)/dir.yaml", 0o755) == 0)
        #expect(symlink("/dev/zero", "\(agents)/zero.yaml") == 0)
        #expect(symlink("\(agents)/loop.yaml", "\(agents)/loop.yaml") == 0)
        #expect(symlink("\(agents)/missing-target", "\(agents)/dangling.yaml") == 0)
        let report = try reloadReport()
        #expect(errorMessage(for: "huge.yaml", in: report)?.contains("larger than 1 MiB") == true)
        #expect(errorMessage(for: "dir.yaml", in: report)?.contains("directory") == true)
        #expect(errorMessage(for: "zero.yaml", in: report)?.contains("larger than 1 MiB") == true)
        #expect(errorMessage(for: "loop.yaml", in: report) != nil)
        #expect(errorMessage(for: "dangling.yaml", in: report) != nil)
        // A FIFO without a writer reads as empty (O_NONBLOCK): an error or an empty file, never a hang.
        #expect(report["added"]?.arrayValue?.contains("fifo") != true)
        #expect(report["added"] == [])
        try expectKeepServes()
    }

    @Test func symlinkedAgentFilesAreFollowed() throws {
        harness.directory.write("shared/linked.yaml", Agents.chat)
        #expect(symlink("../shared/linked.yaml", "\(harness.agentsDir)/linked.yaml") == 0)
        #expect(try reloadReport()["added"] == ["linked"])
        #expect(
            try harness.connect("linked").request(["id": 1, "input": "via link"]).last?["text"] == "Echo: via link")
    }

    @Test func unreadableFilesAreReportedWhenNotRoot() throws {
        // Tests usually run as root, who reads any file; then there is nothing to observe here.
        guard geteuid() != 0 else { return }
        harness.directory.write("agents.d/secret.yaml", Agents.chat)
        chmod("\(harness.agentsDir)/secret.yaml", 0)
        #expect(errorMessage(for: "secret.yaml", in: try reloadReport())?.contains("Permission denied") == true)
        try expectKeepServes()
    }

    @Test func agentsDirectoryVanishingDuringAReloadKeepsEveryAgentServing() throws {
        let held = try harness.connect("keep")
        #expect(rename(harness.agentsDir, "\(harness.directory.path)/moved") == 0)
        let ready = try harness.reload()
        #expect(ready.contains("STATUS="))
        #expect(!ready.contains("STATUS=Serving 0"), "\(ready)")
        #expect(held.request(["id": "h", "input": "held"]).last?["text"] == "Echo: held")
        try expectKeepServes()
        let status = try harness.control(["id": 1, "command": "status"])["status"]
        #expect(status?["last_reload"]?["ok"] == false)
        // Back again: the next reload is clean.
        #expect(rename("\(harness.directory.path)/moved", harness.agentsDir) == 0)
        _ = try harness.reload()
        #expect(try harness.control(["id": 2, "command": "status"])["status"]?["last_reload"]?["ok"] == true)
        try expectKeepServes()
    }
}
