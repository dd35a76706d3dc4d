import JSON
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The emulated Mistral API as a pure function from a request to a `Reply`, apart from the
/// per-text fault counters and the id serial. The server only plays replies out.
final class EmulatorAPI: Sendable {
    static let knownModels = [
        "mistral-small-latest", "mistral-medium-latest", "mistral-large-latest", "open-mistral-nemo",
        "codestral-latest",
        "mistral-small-2506", "mistral-medium-2505", "mistral-large-2411", "ministral-8b-latest",
        "magistral-medium-latest",
    ]
    /// The model agents answer with.
    static let agentModel = "mistral-medium-latest"

    let configuration: EmulatorConfiguration
    private let schemas = SchemaSet.mistral
    private let faultCounters = Mutex<[String: Int]>([:])
    private let serial = Atomic<UInt64>(0)

    init(configuration: EmulatorConfiguration) {
        self.configuration = configuration
    }

    enum Endpoint: Sendable { case chat, agentsCompletions, conversations, models }

    /// Routes by method and path; unknown paths get 404, known paths with another method 405.
    static func route(method: String, path: String) -> Result<Endpoint, ReplyError> {
        let endpoint: Endpoint
        let expectedMethod: String
        switch path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path {
        case "/v1/chat/completions": (endpoint, expectedMethod) = (.chat, "POST")
        case "/v1/agents/completions": (endpoint, expectedMethod) = (.agentsCompletions, "POST")
        case "/v1/conversations": (endpoint, expectedMethod) = (.conversations, "POST")
        case "/v1/models": (endpoint, expectedMethod) = (.models, "GET")
        default: return .failure(ReplyError(.json(404, ["detail": "Not Found"])))
        }
        guard method == expectedMethod else {
            return .failure(ReplyError(.json(405, ["detail": "Method Not Allowed"])))
        }
        return .success(endpoint)
    }

    /// A reply carried as an error, to leave the request pipeline early.
    struct ReplyError: Error, Sendable {
        var reply: Reply
        init(_ reply: Reply) { self.reply = reply }
    }

    func respond(method: String, path: String, authorization: String?, body: [UInt8]) -> Reply {
        do {
            let endpoint = try Self.route(method: method, path: path).get()
            try authorize(authorization)
            if endpoint == .models { return modelList() }
            let request = try parse(body)
            return try respond(to: request, at: endpoint)
        } catch {
            return error.reply
        }
    }

    private func authorize(_ authorization: String?) throws(ReplyError) {
        let prefix = "Bearer "
        guard let authorization, authorization.hasPrefix(prefix) else {
            throw ReplyError(.json(401, ["detail": "Unauthorized"]))
        }
        let token = authorization.dropFirst(prefix.count)
        let accepted = configuration.apiKey.map { token == $0 } ?? !token.isEmpty
        guard accepted else { throw ReplyError(.json(401, ["detail": "Unauthorized"])) }
    }

    private func parse(_ body: [UInt8]) throws(ReplyError) -> JSONValue {
        guard !body.isEmpty else {
            throw ReplyError(
                .validationFailure([ValidationIssue(type: "missing", loc: ["body"], msg: "Field required", input: nil)])
            )
        }
        do {
            return try JSONParser.parse(bytes: body)
        } catch {
            throw ReplyError(
                .validationFailure([
                    ValidationIssue(
                        type: "json_invalid", loc: ["body", .int(Int64(error.offset))], msg: "JSON decode error",
                        input: [:],
                        ctx: ["error": .string(error.description)])
                ]))
        }
    }

    private func respond(to request: JSONValue, at endpoint: Endpoint) throws(ReplyError) -> Reply {
        let isConversation = endpoint == .conversations
        let streaming = request["stream"] == .bool(true)
        let schemaName =
            switch endpoint {
            case .chat: "ChatCompletionRequest"
            case .agentsCompletions: "AgentsCompletionRequest"
            default: streaming ? "ConversationStreamRequest" : "ConversationRequest"
            }
        let issues = schemas.validate(request, against: schemaName)
        guard issues.isEmpty else { throw ReplyError(.validationFailure(issues)) }

        let model = try checkModelOrAgent(request, endpoint: endpoint)
        let turns =
            isConversation
            ? Turn.fromConversation(request["inputs"] ?? "") : Turn.fromChat(request["messages"]?.arrayValue ?? [])
        do {
            try HistoryRules(strictToolAfterUser: configuration.strictToolAfterUser).check(turns)
            if !isConversation { try checkTools(request) }
        } catch {
            throw ReplyError(historyError(error, conversation: isConversation))
        }

        let lastUserText = turns.last { $0.role == .user }?.text ?? ""
        let directives = Directives(parsing: lastUserText)
        let faults = activeFaults(directives, text: lastUserText)
        let context = ReplyContext(
            endpoint: endpoint, request: request, turns: turns, directives: directives, model: model,
            streaming: streaming, serial: serial.add(1, ordering: .relaxed).newValue)
        return context.reply(faults: faults)
    }

    /// The model a chat names must exist; an agent id must look like one and not be a `dead…` one.
    private func checkModelOrAgent(_ request: JSONValue, endpoint: Endpoint) throws(ReplyError) -> String {
        let model = request["model"]?.stringValue
        let agent = request["agent_id"]?.stringValue
        if endpoint == .conversations {
            switch (model, agent) {
            case (nil, nil):
                throw ReplyError(
                    .conversationError(
                        400, "Either agent_id or model must be set", type: "invalid_request_error", code: 3000))
            case (_?, _?):
                throw ReplyError(
                    .conversationError(
                        400, "Only one of agent_id and model can be set", type: "invalid_request_error", code: 3000))
            default: break
            }
        }
        if let model {
            guard Self.knownModels.contains(model) else {
                throw ReplyError(.mistralError(400, "Invalid model: \(model)", type: "invalid_model", code: "1500"))
            }
            return model
        }
        if let agent, !Self.isKnownAgent(agent) {
            throw ReplyError(
                .mistralError(404, "Agent \(agent) not found", type: "invalid_request_error", code: "3000"))
        }
        return Self.agentModel
    }

    /// `ag_` + 32 lowercase hex or a legacy `ag:…` id; a hex part starting with `dead` is unknown.
    static func isKnownAgent(_ id: String) -> Bool {
        if id.hasPrefix("ag:") { return !id.dropFirst(3).hasPrefix("dead") }
        guard id.hasPrefix("ag_") else { return false }
        let hex = id.utf8.dropFirst(3)
        let isHex = hex.count == 32 && hex.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
        return isHex && !id.dropFirst(3).hasPrefix("dead")
    }

    /// Function names of the tools, and an assistant prefix with a forced tool choice.
    private func checkTools(_ request: JSONValue) throws(HistoryViolation) {
        for tool in request["tools"]?.arrayValue ?? [] {
            if let name = tool["function"]?["name"]?.stringValue { try HistoryRules.checkFunctionName(name) }
        }
        let lastIsPrefix =
            request["messages"]?.arrayValue?.last.map { $0["role"] == "assistant" && $0["prefix"] == .bool(true) }
            ?? false
        let forced: Bool =
            switch request["tool_choice"] {
            case .string("any")?, .string("required")?, .object?: true
            default: false
            }
        if lastIsPrefix, forced {
            throw HistoryViolation(message: "Cannot set an assistant prefix with function calling")
        }
    }

    private func historyError(_ violation: HistoryViolation, conversation: Bool) -> Reply {
        if conversation {
            return .conversationError(
                400, violation.message,
                type: violation.isMessageOrder ? "invalid_request_message_order" : "invalid_request_error", code: 3230)
        }
        return violation.isMessageOrder
            ? .mistralError(400, violation.message, type: "invalid_request_message_order", code: "3230")
            : .mistralError(400, violation.message, type: "invalid_request_error", code: nil)
    }

    /// Counts this request against its text when it carries `*N` faults.
    private func activeFaults(_ directives: Directives, text: String) -> [Directives.Fault] {
        guard directives.hasCountedFault else { return directives.activeFaults(occurrence: 1) }
        let occurrence = faultCounters.withLock { counters in
            counters[text, default: 0] += 1
            return counters[text]!
        }
        return directives.activeFaults(occurrence: occurrence)
    }

    private func modelList() -> Reply {
        let capabilities: JSONValue = [
            "completion_chat": true, "function_calling": true, "reasoning": false, "completion_fim": false,
            "fine_tuning": false,
            "vision": false, "ocr": false, "classification": false, "moderation": false, "audio": false,
            "audio_transcription": false, "audio_transcription_realtime": false, "audio_speech": false,
            "unified_resources": false,
        ]
        let cards: [JSONValue] = Self.knownModels.map { model in
            [
                "id": .string(model), "object": "model", "created": .int(Int64(time(nil))), "owned_by": "mistralai",
                "capabilities": capabilities, "name": .string(model), "description": .string("Emulated \(model)"),
                "max_context_length": 131072, "aliases": [], "deprecation": nil, "deprecation_replacement_model": nil,
                "default_model_temperature": 0.3, "type": "base",
            ]
        }
        return .json(200, ["object": "list", "data": .array(cards)])
    }
}
