import Foundation
import TestSupport
import Testing

@testable import AgentCore

/// Runs the built executables, which sit beside the test bundle in the build directory.
@Suite("agentd --check and agentctl validate", .blocksItsThread)
struct CheckCommandTests {
    private static let buildDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent()

    private func run(_ product: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String)
    {
        let executable = Self.buildDirectory.appendingPathComponent(product)
        try #require(FileManager.default.isExecutableFile(atPath: executable.path), "build \(product) first")
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)
        )
    }

    @Test("a misspelt key fails the check at FILE:2:1 with a hint, exit 1")
    func misspeltKey() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/typo.yaml"
        try write("model: mistral-small-latest\ntemprature: 0.5\n", to: file)
        let result = try run("agentd", ["--check", "--config", "/dev/null", "--agents-dir", directory])
        #expect(result.status == 1)
        #expect(result.stderr == "\(file):2:1: error: unknown key 'temprature' (did you mean 'temperature'?)\n")
    }

    @Test("the shipped agents.d passes the check, exit 0")
    func shipped() throws {
        let result = try run("agentd", ["--check", "--config", "/dev/null", "--agents-dir", Fixtures.shippedAgents])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty)
        #expect(result.stdout.contains("support (normal, mistral-small-latest)"))
    }

    @Test("a bad daemon config fails the check; without --check it exits 78")
    func badConfig() throws {
        let config = Fixtures.daemon + "/bad.yaml"
        let check = try run("agentd", ["--check", "--config", config, "--agents-dir", Fixtures.shippedAgents])
        #expect(check.status == 1)
        #expect(check.stderr.contains("\(config):6:1: error: unknown key 'max_conections'"))
        let start = try run("agentd", ["--config", config])
        #expect(start.status == 78)
        #expect(start.stderr.contains("\(config):2:15: error:"))
        let missing = try run(
            "agentd", ["--check", "--config", "/nonexistent/agentd.yaml", "--agents-dir", Fixtures.shippedAgents])
        #expect(missing.status == 1)
    }

    @Test("agentctl validate: 0 for good paths, 65 with diagnostics, 64 for usage errors")
    func validate() throws {
        let good = try run("agentctl", ["validate", Fixtures.shippedAgents, Fixtures.good + "/minimal.yml"])
        #expect(good.status == 0, "\(good.stderr)")
        #expect(good.stdout.contains("minimal (normal, open-mistral-nemo)"))
        let bad = try run("agentctl", ["validate", Fixtures.good, Fixtures.bad + "/unknown-key.yaml"])
        #expect(bad.status == 65)
        #expect(
            bad.stderr
                == "\(Fixtures.bad)/unknown-key.yaml:2:1: error: unknown key 'temprature' (did you mean 'temperature'?)\n"
        )
        let usage = try run("agentctl", ["validate", "--no-such-flag"])
        #expect(usage.status == 64)
    }
}
