import Foundation
import JSON
import MCP
import Testing
import Tools

@testable import MCPServers

@Suite struct MCPToolCatalogTests {
    let server = MCPServerConfig(name: "docs", command: ["/bin/true"])
    let schema: Value = ["type": "object", "properties": ["q": ["type": "string"]]]

    @Test func toolsAreOfferedAsServerUnderscoreUnderscoreTool() {
        let (tools, problems) = MCPToolCatalog.offered(
            [Tool(name: "search", description: "Find pages", inputSchema: schema)], by: server)
        #expect(problems.isEmpty)
        #expect(tools.map(\.qualifiedName) == ["docs__search"])
        #expect(tools.first?.description == "Find pages")
        #expect(tools.first?.inputSchema == ["properties": ["q": ["type": "string"]], "type": "object"])
    }

    @Test func badNamesNonObjectSchemasAndDuplicatesAreLeftOutWithAProblem() {
        let listed = [
            Tool(name: "has space", description: nil, inputSchema: schema),
            Tool(name: String(repeating: "x", count: 60), description: nil, inputSchema: schema),
            Tool(name: "stringly", description: nil, inputSchema: "object"),
            Tool(name: "ok", description: nil, inputSchema: schema),
            Tool(name: "ok", description: nil, inputSchema: schema),
        ]
        let (tools, problems) = MCPToolCatalog.offered(listed, by: server)
        #expect(tools.map(\.name) == ["ok"])
        #expect(problems.count == 4, "\(problems)")
        #expect(problems.contains { $0.contains("stringly") && $0.contains("not a JSON object") })
    }

    @Test func theAllowListFiltersAndNamesWhatTheServerLacks() {
        var filtered = server
        filtered.tools = ["read", "gone"]
        let (tools, problems) = MCPToolCatalog.offered(
            [
                Tool(name: "search", description: nil, inputSchema: schema),
                Tool(name: "read", description: nil, inputSchema: schema),
            ], by: filtered)
        #expect(tools.map(\.name) == ["read"])
        #expect(problems == ["tool 'gone' of the tools allow-list is not offered by the server"])
    }

    @Test func textIsKeptAndOtherContentSummarisedWithTypeAndSize() {
        let text = MCPToolCatalog.text(of: [
            .text(text: "hello", annotations: nil, _meta: nil),
            .image(data: "AAAA", mimeType: "image/png", annotations: nil, _meta: nil),
            .resource(resource: .binary(Data(count: 6), uri: "file:///a", mimeType: "application/pdf")),
        ])
        #expect(text == "hello\n[image image/png, 3 bytes]\n[resource file:///a, application/pdf, 6 bytes]")
    }

    @Test func argumentsConvertBothWays() {
        let arguments: JSONValue = ["n": 3, "f": 1.5, "s": "x", "b": true, "l": [.null]]
        #expect(
            MCPToolCatalog.json(MCPToolCatalog.value(arguments)) == [
                "b": true, "f": 1.5, "l": [.null], "n": 3, "s": "x",
            ])
    }
}
