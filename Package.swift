// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "agentd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "agentd", targets: ["agentd"]),
        .executable(name: "agentctl", targets: ["agentctl"]),
        .executable(name: "mistral-emulator", targets: ["mistral-emulator"]),
        .executable(name: "agentd-bench", targets: ["agentd-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        // Without its default SubprocessFoundation trait: agentd is Foundation-free.
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", exact: "1.0.2", traits: []),
        // The official MCP SDK (issue 18); it brings Foundation, so only MCPServers imports it.
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk.git", exact: "0.12.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
    ],
    targets: [
        // C libraries from Debian, bound as system libraries.
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // glibc's malloc.h, which the Glibc module does not cover.
        .systemLibrary(name: "CMalloc"),

        // Leaf modules: no agent knowledge.
        .target(name: "Basics"),
        .target(name: "JSON", dependencies: ["Basics"]),
        .target(name: "YAML", dependencies: ["CYAML"]),
        .target(name: "SSE", dependencies: ["Basics"]),
        .target(name: "Curl", dependencies: ["CCurl", "Basics"]),
        .target(name: "Systemd", dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")]),
        .target(name: "Sessions", dependencies: ["CSQLite"]),

        // The contract's vocabulary and the LLM layer.
        .target(name: "AgentProtocol", dependencies: ["JSON", "Basics"]),
        .target(
            name: "LLM",
            dependencies: [
                "JSON", "Basics", "Curl", "SSE", "AgentProtocol", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Running server tools: exec tools as owned child processes; no sockets, no Mistral.
        .target(
            name: "Tools",
            dependencies: [
                "JSON",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "AgentCore", dependencies: ["YAML", "JSON", "LLM", "AgentProtocol", "Tools", "Sessions"]),
        // MCP servers: spawned, supervised, called over the SDK's client. Apart from Tools so
        // that the SDK's Foundation stays out of AgentCore and agentctl.
        .target(
            name: "MCPServers",
            dependencies: [
                "JSON", "Tools",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // One request from its decoded line to its terminal event; no sockets.
        .target(
            name: "AgentRunner",
            dependencies: [
                "AgentCore", "AgentProtocol", "LLM", "Tools", "MCPServers", "JSON", "Basics", "Sessions",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The service: sockets, connections, limits, registry and reload, lifecycle.
        .target(
            name: "AgentDaemon",
            dependencies: [
                "AgentRunner", "AgentCore", "AgentProtocol", "LLM", "JSON", "Basics", "Systemd", "CMalloc", "Sessions",
                "MCPServers",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "MistralEmulator",
            dependencies: [
                "JSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        // Thin executables.
        .executableTarget(
            name: "agentd",
            dependencies: [
                "AgentDaemon", "AgentCore", "Systemd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "agentctl",
            dependencies: [
                "AgentCore", "AgentProtocol", "JSON",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "mistral-emulator",
            dependencies: [
                "MistralEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .executableTarget(
            name: "agentd-bench",
            dependencies: [
                "Basics",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "YAMLTests", dependencies: ["YAML"]),
        .testTarget(name: "SSETests", dependencies: ["SSE", "TestSupport"]),
        // Fixtures are read in place through #filePath.
        .testTarget(
            name: "AgentCoreTests",
            dependencies: ["AgentCore", "YAML", "JSON", "LLM", "Tools", "Sessions", "TestSupport"],
            exclude: ["Fixtures"]),
        // What more than one test target needs.
        .target(
            name: "TestSupport", dependencies: [.product(name: "NIOPosix", package: "swift-nio")],
            path: "Tests/TestSupport"),
        .testTarget(
            name: "CurlTests",
            dependencies: [
                "Basics", "Curl", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "LLMTests", dependencies: ["LLM", "JSON", "AgentProtocol", "MistralEmulator", "TestSupport"]),
        .testTarget(
            name: "MistralEmulatorTests", dependencies: ["MistralEmulator", "JSON", "Basics", "TestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "AgentProtocolTests", dependencies: ["AgentProtocol", "JSON"]),
        .testTarget(
            name: "AgentRunnerTests",
            dependencies: [
                "AgentRunner", "AgentCore", "AgentProtocol", "LLM", "JSON", "Sessions",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SessionsTests", dependencies: ["Sessions"]),
        .testTarget(
            name: "SystemdTests",
            dependencies: ["Systemd", "TestSupport", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "AgentDaemonTests",
            dependencies: [
                "AgentDaemon", "AgentRunner", "AgentCore", "AgentProtocol", "LLM", "JSON",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "EndToEndTests", dependencies: ["JSON", "AgentProtocol", "Basics", "TestSupport"]),
        .testTarget(
            name: "ToolsTests", dependencies: ["Tools", "JSON", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "MCPServersTests",
            dependencies: ["MCPServers", "Tools", "JSON", .product(name: "MCP", package: "swift-sdk")]),
    ],
    swiftLanguageModes: [.v6]
)
