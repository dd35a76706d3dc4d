/// One request or response header field.
public struct HTTPHeader: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// What to send and how long each phase of the transfer may take.
public struct HTTPRequest: Sendable {
    public var url: String
    /// "GET" or "POST" (any other token is sent as a custom method).
    public var method: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// TCP (and TLS) connect, enforced by curl.
    public var connectTimeout: Duration
    /// From the start until the response head has arrived.
    public var firstByteTimeout: Duration
    /// Longest gap between body bytes; not counted while the transfer is paused because the
    /// consumer of the body lags.
    public var idleTimeout: Duration
    /// The whole transfer, body included.
    public var totalTimeout: Duration

    public init(
        url: String, method: String = "POST", headers: [HTTPHeader] = [], body: [UInt8] = [],
        connectTimeout: Duration = .seconds(10), firstByteTimeout: Duration = .seconds(30),
        idleTimeout: Duration = .seconds(60), totalTimeout: Duration = .seconds(120)
    ) {
        self.url = url
        self.method = method
        self.headers = headers
        self.body = body
        self.connectTimeout = connectTimeout
        self.firstByteTimeout = firstByteTimeout
        self.idleTimeout = idleTimeout
        self.totalTimeout = totalTimeout
    }
}
