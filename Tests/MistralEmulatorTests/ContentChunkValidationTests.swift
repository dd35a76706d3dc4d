import JSON
import Testing

@testable import MistralEmulator

/// Message content as a list of chunks, checked chunk by chunk on every endpoint as Mistral's
/// FastAPI front does: each endpoint's union of chunk types, each chunk's fields, nothing more.
@Suite("Content chunks in request messages")
struct ContentChunkValidationTests {
    static let agent = "ag_0123456789abcdef0123456789abcdef"

    /// Where a content list goes, and where its first chunk is reported.
    struct Place: CustomTestStringConvertible, Sendable {
        var name: String
        var path: String
        var body: @Sendable (JSONValue) -> JSONValue
        /// `loc` of the content's first chunk.
        var chunkLoc: [JSONValue]
        var testDescription: String { name }
    }

    static let places: [Place] = [
        Place(
            name: "chat user", path: "/v1/chat/completions",
            body: { ["model": "mistral-small-latest", "messages": [["role": "user", "content": $0]]] },
            chunkLoc: ["body", "messages", 0, "user", "content", 0]),
        Place(
            name: "agents completions user", path: "/v1/agents/completions",
            body: { ["agent_id": .string(agent), "messages": [["role": "user", "content": $0]]] },
            chunkLoc: ["body", "messages", 0, "user", "content", 0]),
        Place(
            name: "chat assistant", path: "/v1/chat/completions",
            body: {
                [
                    "model": "mistral-small-latest",
                    "messages": [
                        ["role": "user", "content": "hi"], ["role": "assistant", "content": $0, "prefix": true],
                    ],
                ]
            },
            chunkLoc: ["body", "messages", 1, "assistant", "content", 0]),
        Place(
            name: "agents completions tool", path: "/v1/agents/completions",
            body: {
                [
                    "agent_id": .string(agent),
                    "messages": [
                        ["role": "user", "content": "hi"],
                        [
                            "role": "assistant",
                            "tool_calls": [["id": "abcDEF123", "function": ["name": "f", "arguments": "{}"]]],
                        ],
                        ["role": "tool", "tool_call_id": "abcDEF123", "content": $0],
                    ],
                ]
            },
            chunkLoc: ["body", "messages", 2, "tool", "content", 0]),
    ]

    /// One of each chunk type `ContentChunk` declares, in every form the spec allows.
    static let everyChatChunk: JSONValue = [
        ["type": "text", "text": "look"],
        ["type": "image_url", "image_url": "https://e.x/a.png"],
        ["type": "image_url", "image_url": ["url": "data:image/png;base64,AAAA"]],
        ["type": "image_url", "image_url": ["url": "https://e.x/b.png", "detail": "high"]],
        ["type": "document_url", "document_url": "https://e.x/a.pdf"],
        ["type": "document_url", "document_url": "https://e.x/b.pdf", "document_name": "b.pdf"],
        ["type": "input_audio", "input_audio": "UklGRg=="],
        ["type": "file", "file_id": "123e4567-e89b-12d3-a456-426614174000"],
        ["type": "reference", "reference_ids": [1, "a"]],
        ["type": "thinking", "thinking": [["type": "text", "text": "hmm"]], "closed": true],
    ]

    @Test(arguments: places)
    func everyDeclaredChunkTypeIsAccepted(_ place: Place) async throws {
        try await withEmulator { server in
            let response = try server.send(place.path, json: place.body(Self.everyChatChunk))
            #expect(response.status == 200, "\(response.text)")
            let plain = try server.send(place.path, json: place.body("just a string"))
            #expect(plain.status == 200, "\(plain.text)")
        }
    }

    struct Refusal: Sendable {
        var name: String
        var chunk: JSONValue
        var type: String
        /// Appended to the chunk's own `loc`.
        var loc: [JSONValue]
    }

    static let chatRefusals: [Refusal] = [
        Refusal(
            name: "unknown type", chunk: ["type": "audio_url", "audio_url": "x"], type: "union_tag_invalid", loc: []),
        Refusal(name: "no type", chunk: ["text": "hi"], type: "union_tag_not_found", loc: []),
        Refusal(name: "not an object", chunk: "hi", type: "model_attributes_type", loc: []),
        Refusal(
            name: "tool_reference is output only",
            chunk: ["type": "tool_reference", "tool": "web_search", "title": "t"], type: "union_tag_invalid", loc: []),
        Refusal(
            name: "extra field on text", chunk: ["type": "text", "text": "a", "cache": true], type: "extra_forbidden",
            loc: ["text", "cache"]),
        Refusal(name: "text without text", chunk: ["type": "text"], type: "missing", loc: ["text", "text"]),
        Refusal(
            name: "text as number", chunk: ["type": "text", "text": 1], type: "string_type", loc: ["text", "text"]),
        Refusal(
            name: "image detail unknown", chunk: ["type": "image_url", "image_url": ["url": "u", "detail": "ultra"]],
            type: "enum", loc: ["image_url", "image_url", "detail"]),
        Refusal(
            name: "image object extra field", chunk: ["type": "image_url", "image_url": ["url": "u", "alt": "x"]],
            type: "extra_forbidden", loc: ["image_url", "image_url", "alt"]),
        Refusal(
            name: "image object without url", chunk: ["type": "image_url", "image_url": ["detail": "low"]],
            type: "missing", loc: ["image_url", "image_url", "url"]),
        Refusal(
            name: "image without image_url", chunk: ["type": "image_url"], type: "missing",
            loc: ["image_url", "image_url"]),
        Refusal(
            name: "document without url", chunk: ["type": "document_url", "document_name": "a.pdf"], type: "missing",
            loc: ["document_url", "document_url"]),
        Refusal(
            name: "document extra field", chunk: ["type": "document_url", "document_url": "u", "pages": 2],
            type: "extra_forbidden", loc: ["document_url", "pages"]),
        Refusal(
            name: "audio as OpenAI's object",
            chunk: ["type": "input_audio", "input_audio": ["data": "UklGRg==", "format": "wav"]], type: "string_type",
            loc: ["input_audio", "input_audio"]),
        Refusal(
            name: "file id not a uuid", chunk: ["type": "file", "file_id": "file-abc"], type: "uuid_parsing",
            loc: ["file", "file_id"]),
        Refusal(
            name: "file extra field",
            chunk: ["type": "file", "file_id": "123e4567-e89b-12d3-a456-426614174000", "name": "a"],
            type: "extra_forbidden", loc: ["file", "name"]),
        Refusal(
            name: "reference ids not a list", chunk: ["type": "reference", "reference_ids": 1], type: "list_type",
            loc: ["reference", "reference_ids"]),
        Refusal(
            name: "thinking as a string", chunk: ["type": "thinking", "thinking": "hmm"], type: "list_type",
            loc: ["thinking", "thinking"]),
        Refusal(
            name: "thinking extra field",
            chunk: ["type": "thinking", "thinking": [], "reasoning_content": "x"], type: "extra_forbidden",
            loc: ["thinking", "reasoning_content"]),
        Refusal(
            name: "thinking holds an unknown chunk",
            chunk: ["type": "thinking", "thinking": [["type": "image_url", "image_url": "u"]]],
            type: "union_tag_invalid", loc: ["thinking", "thinking", 0]),
    ]

    /// Each refused chunk goes second, after a valid one, so that `loc` is seen to name its index.
    @Test(arguments: places)
    func badChunksAreRefusedWith422(_ place: Place) async throws {
        try await withEmulator { server in
            var loc = place.chunkLoc
            loc[loc.count - 1] = 1
            for refusal in Self.chatRefusals {
                let body = place.body([["type": "text", "text": "ok"], refusal.chunk])
                let refused = try server.send(place.path, json: body)
                #expect(refused.status == 422, "\(refusal.name): \(refused.text)")
                let expected = JSONValue.array(loc + refusal.loc).jsonText
                #expect(issues(refused).map(\.type) == [refusal.type], "\(refusal.name): \(refused.text)")
                #expect(issues(refused).map(\.loc) == [expected], "\(refusal.name): \(refused.text)")
            }
        }
    }

    @Test func systemContentTakesOnlyTextAndThinking() async throws {
        try await withEmulator { server in
            func body(_ chunk: JSONValue) -> JSONValue {
                [
                    "model": "mistral-small-latest",
                    "messages": [["role": "system", "content": [chunk]], ["role": "user", "content": "hi"]],
                ]
            }
            let text = try server.send("/v1/chat/completions", json: body(["type": "text", "text": "be brief"]))
            #expect(text.status == 200)
            let thinking = try server.send(
                "/v1/chat/completions", json: body(["type": "thinking", "thinking": [["type": "text", "text": "t"]]]))
            #expect(thinking.status == 200)
            let image = try server.send("/v1/chat/completions", json: body(["type": "image_url", "image_url": "u"]))
            #expect(image.status == 422)
            #expect(issues(image).map(\.type) == ["union_tag_invalid"])
            #expect(issues(image).map(\.loc) == [#"["body","messages",0,"system","content",0]"#])
        }
    }

    /// `message.input` entries take `MessageInputContentChunks`: text, image_url, tool_file,
    /// document_url and thinking; the other chat chunk types are refused there.
    @Test func conversationEntriesTakeTheirOwnChunkUnion() async throws {
        func body(_ content: JSONValue, typed: Bool = true) -> JSONValue {
            var entry: JSONObject = ["role": "user", "content": content]
            if typed { entry["type"] = "message.input" }
            return ["agent_id": .string(Self.agent), "stream": false, "inputs": [.object(entry)]]
        }
        try await withEmulator { server in
            let accepted: JSONValue = [
                ["type": "text", "text": "look"],
                ["type": "image_url", "image_url": ["url": "https://e.x/a.png", "detail": "low"]],
                ["type": "tool_file", "tool": "image_generation", "file_id": "f1", "file_type": "png"],
                ["type": "document_url", "document_url": "https://e.x/a.pdf", "document_name": "a.pdf"],
                ["type": "thinking", "thinking": [["type": "text", "text": "hmm"]]],
            ]
            for typed in [true, false] {
                let response = try server.send("/v1/conversations", json: body(accepted, typed: typed))
                #expect(response.status == 200, "\(response.text)")
            }
            #expect(try server.send("/v1/conversations", json: body("plain")).status == 200)

            let refusals: [(chunk: JSONValue, type: String, loc: String)] = [
                (
                    ["type": "input_audio", "input_audio": "UklGRg=="], "union_tag_invalid",
                    #"["body","inputs",0,"content",1]"#
                ),
                (
                    ["type": "file", "file_id": "123e4567-e89b-12d3-a456-426614174000"], "union_tag_invalid",
                    #"["body","inputs",0,"content",1]"#
                ),
                (["type": "nope"], "union_tag_invalid", #"["body","inputs",0,"content",1]"#),
                (
                    ["type": "text", "text": "x", "bad": 1], "extra_forbidden",
                    #"["body","inputs",0,"content",1,"bad"]"#
                ),
                (
                    ["type": "image_url", "image_url": ["url": "u", "detail": "ultra"]], "enum",
                    #"["body","inputs",0,"content",1,"image_url","detail"]"#
                ),
                (
                    ["type": "tool_file", "tool": "image_generation"], "missing",
                    #"["body","inputs",0,"content",1,"file_id"]"#
                ),
            ]
            for refusal in refusals {
                let content: JSONValue = [["type": "text", "text": "ok"], refusal.chunk]
                let response = try server.send("/v1/conversations", json: body(content))
                #expect(response.status == 422, "\(refusal.chunk.jsonText): \(response.text)")
                #expect(issues(response).map(\.type) == [refusal.type], "\(response.text)")
                #expect(issues(response).map(\.loc) == [refusal.loc], "\(response.text)")
            }
        }
    }

    @Test func reasoningContentOnAnAssistantMessageIsRefusedEverywhere() async throws {
        let messages: JSONValue = [
            ["role": "user", "content": "hi"], ["role": "assistant", "content": "a", "reasoning_content": "r"],
            ["role": "user", "content": "and?"],
        ]
        try await withEmulator { server in
            let bodies: [(String, JSONValue)] = [
                ("/v1/chat/completions", ["model": "mistral-small-latest", "messages": messages]),
                ("/v1/agents/completions", ["agent_id": .string(Self.agent), "messages": messages]),
            ]
            for (path, body) in bodies {
                let response = try server.send(path, json: body)
                #expect(response.status == 422)
                #expect(issues(response).map(\.type) == ["extra_forbidden"])
                #expect(issues(response).map(\.loc) == [#"["body","messages",1,"assistant","reasoning_content"]"#])
            }
            let conversation: JSONValue = [
                "agent_id": .string(Self.agent),
                "inputs": [
                    ["type": "message.input", "role": "user", "content": "hi"],
                    ["type": "message.output", "role": "assistant", "content": "a", "reasoning_content": "r"],
                    ["type": "message.input", "role": "user", "content": "and?"],
                ],
            ]
            let response = try server.send("/v1/conversations", json: conversation)
            #expect(response.status == 422)
            #expect(issues(response).map(\.loc) == [#"["body","inputs",1,"reasoning_content"]"#])
        }
    }
}
