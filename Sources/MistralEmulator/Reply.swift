import JSON

/// What the server writes for one request: computed up front, then played out on the event loop.
struct Reply: Sendable {
    enum Body: Sendable {
        case bytes([UInt8])
        /// Complete SSE events (`data: …\n\n` or `event: …\ndata: …\n\n`), one write each when paced.
        case events([[UInt8]])
    }

    enum Interruption: Sendable, Equatable {
        /// Head and first content chunk, then a TCP reset.
        case reset
        /// Head and first content chunk, then silence with the connection open.
        case stall
        /// No response head at all.
        case stallHead
        /// The response head, then silence: the body never starts.
        case stallAfterHead
    }

    var status: Int
    var headers: [(name: String, value: String)] = []
    var contentType = "application/json"
    var body: Body
    var delayMilliseconds = 0
    var chunkIntervalMilliseconds = 0
    var interruption: Interruption?

    static func json(_ status: Int, _ value: JSONValue) -> Reply {
        var bytes: [UInt8] = []
        value.write(to: &bytes)
        return Reply(status: status, body: .bytes(bytes))
    }

    /// Mistral's usual error body: `{"object":"error","message":…,"type":…,"param":null,"code":…}`.
    static func mistralError(_ status: Int, _ message: String, type: String, code: String?) -> Reply {
        json(
            status,
            [
                "object": "error", "message": .string(message), "type": .string(type), "param": nil,
                "code": code.map(JSONValue.string) ?? nil,
            ])
    }

    /// The Agents API's variant: `"object":"Error"` and an integer code.
    static func conversationError(_ status: Int, _ message: String, type: String, code: Int64) -> Reply {
        json(
            status,
            ["object": "Error", "message": .string(message), "type": .string(type), "param": nil, "code": .int(code)])
    }

    /// FastAPI's 422 body.
    static func validationFailure(_ issues: [ValidationIssue]) -> Reply {
        json(422, ["detail": .array(issues.map(\.json))])
    }
}

/// SSE framing.
enum SSE {
    static func data(_ value: JSONValue) -> [UInt8] {
        var bytes = Array("data: ".utf8)
        value.write(to: &bytes)
        bytes.append(contentsOf: "\n\n".utf8)
        return bytes
    }

    static func event(_ name: String, _ value: JSONValue) -> [UInt8] {
        var bytes = Array("event: \(name)\ndata: ".utf8)
        value.write(to: &bytes)
        bytes.append(contentsOf: "\n\n".utf8)
        return bytes
    }

    static let done = Array("data: [DONE]\n\n".utf8)
}
