import AgentProtocol
import JSON

/// Reads the human message out of a Mistral error body, whatever its vintage: `message` as a
/// string, an object or a list; `detail` as a string or a list of `{loc, msg, type}`; `code` as
/// a string or an integer; or a body that is not JSON at all.
enum ErrorBody {
    static let maxMessageLength = 500

    static func message(from body: [UInt8]) -> String? {
        if let value = try? JSONParser.parse(bytes: body), let message = message(from: value) {
            return bounded(message)
        }
        let text = String(decoding: body, as: UTF8.self).trimmingWhitespace
        guard !text.isEmpty else { return nil }
        return bounded(String(text.unicodeScalars.map { $0.value < 0x20 ? " " : Character($0) }))
    }

    static func message(from value: JSONValue) -> String? {
        switch value {
        case .string(let text): return text.isEmpty ? nil : text
        case .array(let elements):
            let parts = elements.compactMap(message(from:))
            return parts.isEmpty ? nil : parts.joined(separator: "; ")
        case .object(let object):
            var text =
                object["message"].flatMap(message(from:)) ?? object["msg"].flatMap(message(from:))
                ?? object["detail"].flatMap(message(from:)) ?? object["error"].flatMap(message(from:))
            if let location = object["loc"]?.arrayValue {
                let path = location.map { $0.stringValue ?? $0.jsonText }.joined(separator: ".")
                text = text.map { "\(path): \($0)" }
            }
            if let type = object["type"]?.stringValue, text != nil, object["loc"] != nil {
                text! += " (\(type))"
            }
            if let code = object["code"], !code.isNull, let described = text {
                text = "\(described) (code \(code.stringValue ?? code.jsonText))"
            }
            return text
        default: return nil
        }
    }

    private static func bounded(_ text: String) -> String {
        text.count <= maxMessageLength ? text : String(text.prefix(maxMessageLength)) + "…"
    }
}

/// How an HTTP status from Mistral reaches the client (CONTRACT §4).
enum UpstreamStatus {
    /// Statuses worth sending again, after a pause.
    static func isRetried(_ status: Int) -> Bool { [429, 500, 502, 503, 504].contains(status) }

    static func errorInfo(status: Int, body: [UInt8], upstream: Upstream) -> ErrorInfo {
        let detail = ErrorBody.message(from: body).map { ": \($0)" } ?? ""
        switch status {
        case 401, 403:
            return ErrorInfo(
                code: .upstreamAuth, message: "Mistral refused the API key (HTTP \(status))\(detail)", status: status
            )
        case 429:
            return ErrorInfo(
                code: .upstreamRateLimited, message: "Mistral's rate limit was reached\(detail)", retryable: true,
                status: status
            )
        case 404 where upstream.isAgent:
            return ErrorInfo(
                code: .agentError, message: "Mistral does not know this agent (HTTP 404)\(detail)", status: status
            )
        case 408:
            return ErrorInfo(
                code: .timeout, message: "Mistral timed out (HTTP 408)\(detail)", retryable: true, status: status
            )
        case 500...:
            return ErrorInfo(
                code: .upstreamUnavailable, message: "Mistral is unavailable (HTTP \(status))\(detail)",
                retryable: true, status: status
            )
        default:
            return ErrorInfo(
                code: .upstreamRejected, message: "Mistral rejected the request (HTTP \(status))\(detail)",
                status: status
            )
        }
    }
}

extension Upstream {
    var isAgent: Bool {
        switch self {
        case .chatCompletions: false
        case .conversations, .agentCompletions: true
        }
    }
}

extension String {
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[start...end])
    }
}
