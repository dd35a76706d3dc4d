import Foundation
import JSON
import MCP
import Tools

/// A tool an MCP server offers, as the model sees it.
public struct MCPTool: Sendable, Hashable {
    /// The server's own name for it, used in `tools/call`.
    public var name: String
    /// `<server>__<tool>`: the function name the model calls.
    public var qualifiedName: String
    public var description: String
    /// The server's input schema, a JSON object.
    public var inputSchema: JSONValue
}

/// Turns a server's `tools/list` into the tools agents are offered, and a call's result into
/// the text the model sees. Pure functions, tested without a server.
enum MCPToolCatalog {
    /// The tools of `listed` that agents may call, in the server's order, and a problem for
    /// each one left out: a name Mistral cannot take, an input schema that is not an object,
    /// a duplicate, or an allow-listed name the server does not offer.
    static func offered(_ listed: [Tool], by server: MCPServerConfig) -> (tools: [MCPTool], problems: [String]) {
        var tools: [MCPTool] = []
        var problems: [String] = []
        var seen = Set<String>()
        let allowed = server.tools.map(Set.init)
        for tool in listed {
            if let allowed, !allowed.contains(tool.name) { continue }
            let qualified = MCPServerConfig.qualifiedName(server: server.name, tool: tool.name)
            guard MCPServerConfig.isValidFunctionName(qualified) else {
                problems.append("tool '\(tool.name)' left out: '\(qualified)' is not a name Mistral accepts")
                continue
            }
            guard case .object = tool.inputSchema else {
                problems.append("tool '\(tool.name)' left out: its input schema is not a JSON object")
                continue
            }
            guard seen.insert(tool.name).inserted else {
                problems.append("tool '\(tool.name)' left out: listed twice")
                continue
            }
            tools.append(
                MCPTool(
                    name: tool.name, qualifiedName: qualified, description: tool.description ?? tool.title ?? "",
                    inputSchema: json(tool.inputSchema)))
        }
        for name in server.tools ?? []
        where !seen.contains(name) && !problems.contains(where: { $0.contains("'\(name)'") }) {
            problems.append("tool '\(name)' of the tools allow-list is not offered by the server")
        }
        return (tools, problems)
    }

    /// The SDK's JSON value as ours; object keys sorted, so that the same schema always makes
    /// the same upstream request.
    static func json(_ value: Value) -> JSONValue {
        switch value {
        case .null: .null
        case .bool(let bool): .bool(bool)
        case .int(let int): .int(Int64(int))
        case .double(let double): .double(double)
        case .string(let string): .string(string)
        // The SDK decodes strings that look like data: URLs into bytes; they were strings.
        case .data(let mimeType, let data):
            .string("data:\(mimeType ?? "text/plain");base64,\(data.base64EncodedString())")
        case .array(let items): .array(items.map(json))
        case .object(let members):
            .object(JSONObject(members.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) }))
        }
    }

    /// Ours as the SDK's, for a call's arguments.
    static func value(_ json: JSONValue) -> Value {
        switch json {
        case .null: .null
        case .bool(let bool): .bool(bool)
        case .int(let int): Int(exactly: int).map(Value.int) ?? .double(Double(int))
        case .double(let double): .double(double)
        case .string(let string): .string(string)
        case .array(let items): .array(items.map(value))
        case .object(let object):
            .object(Dictionary(object.map { ($0.key, value($0.value)) }, uniquingKeysWith: { first, _ in first }))
        }
    }

    /// What the model sees of a call's content: text as it is; anything else as one line
    /// saying its type and size, since the model takes text only from a tool.
    static func text(of content: [Tool.Content]) -> String {
        content.map { item in
            switch item {
            case .text(let text, _, _):
                return text
            case .image(let data, let mimeType, _, _):
                return "[image \(mimeType), \(decodedSize(data)) bytes]"
            case .audio(let data, let mimeType, _, _):
                return "[audio \(mimeType), \(decodedSize(data)) bytes]"
            case .resource(let resource, _, _):
                let type = resource.mimeType ?? "unknown type"
                if let text = resource.text {
                    return "[resource \(resource.uri), \(type), \(text.utf8.count) bytes]\n\(text)"
                }
                return "[resource \(resource.uri), \(type), \(decodedSize(resource.blob ?? "")) bytes]"
            case .resourceLink(let uri, let name, _, _, let mimeType, _):
                return "[resource link \(name): \(uri)\(mimeType.map { ", \($0)" } ?? "")]"
            }
        }.joined(separator: "\n")
    }

    /// The size of base64 data once decoded, without decoding it.
    private static func decodedSize(_ base64: String) -> Int {
        let bytes = base64.utf8.filter { $0 != UInt8(ascii: "=") && $0 != UInt8(ascii: "\n") }.count
        return bytes * 3 / 4
    }
}
