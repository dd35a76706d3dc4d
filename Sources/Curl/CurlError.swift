internal import CCurl

/// Why a transfer failed. `message` is curl's explanation (or ours for the deadlines we track);
/// it never contains request headers or the body, since the API key travels in a header.
public struct CurlError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case couldNotResolveHost, couldNotConnect, tls,
            connectTimeout, firstByteTimeout, idleTimeout, totalTimeout,
            connectionLost,  // reset / closed / partial body
            cancelled, other
    }

    /// What went wrong, in terms a caller can act on (retry, report a timeout, ...).
    public var kind: Kind
    /// curl's explanation, or which of our deadlines fired.
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(kind): \(message)" }

    static let cancelled = CurlError(.cancelled, "transfer cancelled")
    static let shutDown = CurlError(.cancelled, "curl client shut down")
}

extension CurlError.Kind {
    /// Classifies a transfer's result code. The connect timeout is the only timeout curl itself
    /// enforces (the others are deadlines of the curl thread), so an operation timeout means connect.
    init(_ code: CURLcode) {
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            self = .couldNotResolveHost
        case CURLE_COULDNT_CONNECT:
            self = .couldNotConnect
        case CURLE_OPERATION_TIMEDOUT:
            self = .connectTimeout
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE, CURLE_USE_SSL_FAILED, CURLE_SSL_ENGINE_NOTFOUND,
            CURLE_SSL_ENGINE_SETFAILED, CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_SHUTDOWN_FAILED,
            CURLE_SSL_CRL_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CLIENTCERT:
            self = .tls
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE, CURLE_GOT_NOTHING,
            CURLE_HTTP2, CURLE_HTTP2_STREAM:
            self = .connectionLost
        default:
            self = .other
        }
    }
}

/// The funnel for every `CURLcode`; `errorBuffer` holds curl's detailed message when there is one.
func check(_ code: CURLcode, _ errorBuffer: UnsafePointer<CChar>? = nil) throws(CurlError) {
    guard code != CURLE_OK else { return }
    throw curlError(code, errorBuffer)
}

/// The funnel for every `CURLMcode`.
func check(_ code: CURLMcode) throws(CurlError) {
    guard code != CURLM_OK else { return }
    throw CurlError(.other, String(cString: curl_multi_strerror(code)))
}

func curlError(_ code: CURLcode, _ errorBuffer: UnsafePointer<CChar>?) -> CurlError {
    var message = errorBuffer.map { String(cString: $0) } ?? ""
    if message.isEmpty { message = String(cString: curl_easy_strerror(code)) }
    return CurlError(CurlError.Kind(code), message)
}
