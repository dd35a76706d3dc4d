import ArgumentParser
import Dispatch
import MistralEmulator

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension EmulatorConfiguration.StreamWrites: ExpressibleByArgument {}

@main
struct MistralEmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mistral-emulator",
        abstract: "An offline Mistral API for tests, benchmarks and local runs.",
        discussion: "Prints 'listening on HOST:PORT' as its first line, then serves until SIGTERM or SIGINT.")

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on; 0 takes a free port.")
    var port = 0

    @Option(
        name: .customLong("api-key"),
        help: "Bearer token to require (default: $MISTRAL_API_KEY, else any non-empty token).")
    var apiKey: String?

    @Flag(help: "Accept a user message right after a tool message (mistral-common since 2026-04-27).")
    var allowUserAfterTool = false

    @Option(
        name: .customLong("stream-writes"),
        help:
            "How an unpaced stream is written: per-event (a write and flush per SSE event, as Mistral) or batched (one write)."
    )
    var streamWrites: EmulatorConfiguration.StreamWrites = .perEvent

    func run() async throws {
        let key = apiKey ?? getenv("MISTRAL_API_KEY").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        // Handlers first: a supervisor may signal as soon as it has read the address line.
        let (signals, sources) = Self.terminationSignals()
        let server = try await MistralEmulatorServer.start(
            EmulatorConfiguration(
                host: host, port: port, apiKey: key, strictToolAfterUser: !allowUserAfterTool,
                streamWrites: streamWrites))
        print("listening on \(host):\(server.port)")
        fflush(nil)  // all streams: the first line must reach a pipe reader at once
        for await _ in signals { break }
        sources.forEach { $0.cancel() }
        try await server.shutdown()
    }

    /// An element per SIGTERM or SIGINT, which no longer terminate the process by themselves.
    static func terminationSignals() -> (AsyncStream<Void>, [any DispatchSourceSignal]) {
        let (signals, continuation) = AsyncStream<Void>.makeStream()
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield() }
            source.resume()
            return source
        }
        return (signals, sources)
    }
}
