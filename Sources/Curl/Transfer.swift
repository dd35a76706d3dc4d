import Basics
internal import CCurl
import Synchronization

/// The status line and header fields of a final (non-1xx) response.
struct ResponseHead: Sendable {
    var status: Int
    var headers: [HTTPHeader]
}

/// One request in flight: the easy handle and its callbacks on the curl thread, and the body
/// buffer that the curl thread fills and the consumer drains.
///
/// Everything outside `shared` belongs to the curl thread (the curl calls and their callbacks);
/// tasks only touch `shared`, under its lock.
final class Transfer: @unchecked Sendable {
    /// Unread bytes above which the transfer pauses until the consumer drains the buffer.
    static let pauseThreshold = 256 << 10

    enum End: Sendable, Equatable {
        case finished
        case failed(CurlError)
    }

    struct Shared: ~Copyable {
        /// Body chunks not yet taken by the consumer.
        var chunks: [[UInt8]] = []
        var bufferedBytes = 0
        /// The curl thread refused a chunk; the consumer owes a `resume` once it drains.
        var paused = false
        /// `start` was handed to the curl thread, so cancelling must hand it `cancel`.
        var submitted = false
        var end: End?
        var headWaiter: CheckedContinuation<Result<ResponseHead, CurlError>, Never>?
        var bodyWaiter: CheckedContinuation<Void, Never>?

        /// Body bytes or the end have arrived: reading would not wait.
        var hasBodyOrEnd: Bool { !chunks.isEmpty || end != nil }
    }

    let request: HTTPRequest
    let loop: CurlLoop
    let shared = Mutex(Shared())

    // Curl thread only.
    var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    let errorBuffer: UnsafeMutablePointer<CChar>
    /// Position in the loop's list of active transfers.
    var activeIndex = -1
    private var head = ResponseHead(status: 0, headers: [])
    private var headComplete = false
    /// The curl thread returned CURL_WRITEFUNC_PAUSE: the idle deadline does not run.
    var pausedForConsumer = false
    private var firstByteDeadline: UInt64 = 0
    private var totalDeadline: UInt64 = 0
    private var lastDataAt: UInt64 = 0
    private let idleNanoseconds: UInt64

    init(_ request: HTTPRequest, loop: CurlLoop) {
        self.request = request
        self.loop = loop
        idleNanoseconds = request.idleTimeout.saturatingNanoseconds
        errorBuffer = .allocate(capacity: Int(agentd_curl_error_size))
        errorBuffer.initialize(repeating: 0, count: Int(agentd_curl_error_size))
    }

    deinit {
        precondition(easy == nil, "a transfer's easy handle outlived it")
        errorBuffer.deallocate()
    }

    // MARK: Task side

    /// Registers the waiter for the response head; false (waiter already resumed) if the
    /// transfer ended before it could start.
    func awaitHead(_ waiter: CheckedContinuation<Result<ResponseHead, CurlError>, Never>) -> Bool {
        let ended: CurlError? = shared.withLock { state in
            if case .failed(let error) = state.end { return error }
            state.headWaiter = waiter
            state.submitted = true
            return nil
        }
        if let ended { waiter.resume(returning: .failure(ended)) }
        return ended == nil
    }

    /// Ends the transfer with `error` unless it already ended; the curl thread then removes the
    /// easy handle, which closes its connection.
    func cancel(_ error: CurlError) {
        typealias Waiters = (
            CheckedContinuation<Result<ResponseHead, CurlError>, Never>?, CheckedContinuation<Void, Never>?, Bool
        )
        let (headWaiter, bodyWaiter, submitted) = shared.withLock { state -> Waiters in
            guard state.end == nil else { return (nil, nil, false) }
            state.end = .failed(error)
            state.chunks = []
            state.bufferedBytes = 0
            return (state.headWaiter.take(), state.bodyWaiter.take(), state.submitted)
        }
        headWaiter?.resume(returning: .failure(error))
        bodyWaiter?.resume()
        if submitted { loop.enqueue(.cancel(self)) }
    }

    enum Step {
        case chunks
        case end(End)
        case wait
    }

    /// Moves every buffered chunk into `into` (which must be empty) without copying bytes.
    func take(into chunks: inout [[UInt8]]) -> Step {
        let (step, resume): (Step, Bool) = shared.withLock { state in
            if !state.chunks.isEmpty {
                swap(&state.chunks, &chunks)
                state.bufferedBytes = 0
                let wasPaused = state.paused
                state.paused = false
                return (.chunks, wasPaused)
            }
            if let end = state.end { return (.end(end), false) }
            return (.wait, false)
        }
        if resume { loop.enqueue(.resume(self)) }
        return step
    }

    var hasBodyOrEnd: Bool {
        shared.withLock { $0.hasBodyOrEnd }
    }

    /// Suspends until a chunk or the end arrives (returns at once if one already has).
    func waitForBody() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let ready = shared.withLock { state in
                guard !state.hasBodyOrEnd else { return true }
                state.bodyWaiter = waiter
                return false
            }
            if ready { waiter.resume() }
        }
    }

    // MARK: Curl thread side

    /// Creates and configures the easy handle; the caller adds it to the multi handle.
    func configure() throws(CurlError) {
        guard let easy = curl_easy_init() else { throw CurlError(.other, "curl_easy_init failed") }
        self.easy = easy
        let me = Unmanaged.passUnretained(self).toOpaque()
        try check(agentd_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        try setLong(CURLOPT_NOSIGNAL, 1)
        try setLong(CURLOPT_HTTP_VERSION, agentd_curl_http_version_2tls)
        try setLong(CURLOPT_CONNECTTIMEOUT_MS, Int(clamping: request.connectTimeout.saturatingNanoseconds / 1_000_000))
        try setLong(CURLOPT_TCP_KEEPALIVE, 1)
        // SSE events are a few hundred bytes; curl's default 16 KiB receive buffer per transfer
        // was a third of agentd's memory per held stream (agentd-bench --hold).
        try setLong(CURLOPT_BUFFERSIZE, 4096)
        // Wait for a connection being set up to say whether it multiplexes (HTTP/2) rather than
        // opening one connection per concurrent transfer.
        if request.url.hasPrefix("https:") { try setLong(CURLOPT_PIPEWAIT, 1) }
        // Via a proxy, the CONNECT response would otherwise reach the header callback first.
        try setLong(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1)
        try check(agentd_easy_setopt_string(easy, CURLOPT_URL, request.url), errorBuffer)
        try check(agentd_easy_setopt_pointer(easy, CURLOPT_PRIVATE, me))
        try check(agentd_easy_setopt_write_callback(easy, writeCallback))
        try check(agentd_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me))
        try check(agentd_easy_setopt_header_callback(easy, headerCallback))
        try check(agentd_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, me))
        try setMethodAndBody(easy)
        try setHeaders(easy)

        let now = loop.now
        firstByteDeadline = now.saturatingAdd(request.firstByteTimeout.saturatingNanoseconds)
        totalDeadline = now.saturatingAdd(request.totalTimeout.saturatingNanoseconds)
    }

    private func setLong(_ option: CURLoption, _ value: Int) throws(CurlError) {
        try check(agentd_easy_setopt_long(easy, option, value), errorBuffer)
    }

    private func setMethodAndBody(_ easy: UnsafeMutableRawPointer) throws(CurlError) {
        switch request.method {
        case "GET" where request.body.isEmpty:
            try setLong(CURLOPT_HTTPGET, 1)
            return
        case "POST":
            try setLong(CURLOPT_POST, 1)
        default:
            try check(agentd_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method))
            if request.body.isEmpty { return }
        }
        try check(agentd_easy_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
        let code = request.body.withUnsafeBufferPointer { body in
            // COPYPOSTFIELDS: curl keeps its own copy, so the request may go away.
            agentd_easy_setopt_pointer(
                easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: body.baseAddress))
        }
        try check(code, errorBuffer)
    }

    private func setHeaders(_ easy: UnsafeMutableRawPointer) throws(CurlError) {
        for (index, header) in request.headers.enumerated() {
            // The message names the position only: header values may be secrets.
            guard header.isWellFormed else { throw CurlError(.other, "request header #\(index + 1) is malformed") }
            let line = header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)"
            try append(line)
        }
        // An empty Expect header stops curl from waiting for `100 Continue` before large bodies.
        try append("Expect:")
        try check(agentd_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList))
    }

    private func append(_ line: String) throws(CurlError) {
        guard let list = curl_slist_append(headerList, line) else { throw CurlError(.other, "out of memory") }
        headerList = list
    }

    /// Frees the easy handle and header list; the caller has removed it from the multi handle.
    func releaseEasy() {
        curl_easy_cleanup(easy)
        easy = nil
        curl_slist_free_all(headerList)
        headerList = nil
    }

    /// The earliest deadline still running, and which timeout it is.
    func deadline() -> (at: UInt64, kind: CurlError.Kind) {
        var deadline = (at: totalDeadline, kind: CurlError.Kind.totalTimeout)
        if !headComplete {
            if firstByteDeadline < deadline.at { deadline = (firstByteDeadline, .firstByteTimeout) }
        } else if !pausedForConsumer {
            let idle = lastDataAt.saturatingAdd(idleNanoseconds)
            if idle < deadline.at { deadline = (idle, .idleTimeout) }
        }
        return deadline
    }

    func timeoutError(_ kind: CurlError.Kind) -> CurlError {
        switch kind {
        case .firstByteTimeout: CurlError(kind, "no response head within \(request.firstByteTimeout)")
        case .idleTimeout: CurlError(kind, "no response data for \(request.idleTimeout)")
        default: CurlError(kind, "transfer not complete within \(request.totalTimeout)")
        }
    }

    /// The consumer drained the buffer: the idle clock restarts now.
    func resumed(at now: UInt64) -> UInt64 {
        pausedForConsumer = false
        lastDataAt = now
        return deadline().at
    }

    /// Ends the transfer from the curl thread (the handle is already gone).
    func complete(_ end: End) {
        let (headWaiter, bodyWaiter) = shared.withLock { state in
            if state.end == nil { state.end = end }
            return (state.headWaiter.take(), state.bodyWaiter.take())
        }
        if let headWaiter {
            switch end {
            case .failed(let error): headWaiter.resume(returning: .failure(error))
            case .finished: headWaiter.resume(returning: .failure(CurlError(.connectionLost, "no response head")))
            }
        }
        bodyWaiter?.resume()
    }

    fileprivate func receiveHeader(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard !headComplete else { return bytes.count }  // trailers
        var line = bytes[...]
        while let last = line.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.starts(with: "HTTP/".utf8) {
            // A new status line (after 1xx or a proxy's response) starts a new header block.
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 2)
            head = ResponseHead(
                status: fields.count > 1 ? Int(String(decoding: fields[1], as: UTF8.self)) ?? 0 : 0, headers: [])
        } else if line.isEmpty {
            if head.status >= 200 { completeHead() }
        } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            let name = String(decoding: line[..<colon], as: UTF8.self)
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces()
            head.headers.append(HTTPHeader(name, value))
        }
        return bytes.count
    }

    private func completeHead() {
        headComplete = true
        lastDataAt = loop.now
        loop.deadlineSet(deadline().at)
        loop.headArrived(self)
    }

    /// Hands the head to its waiter. The loop calls this once `curl_multi_socket_action` has returned,
    /// not from the header callback: body bytes read together with the head are then buffered
    /// by the time the waiter runs, so it can tell a reply that is all there from a slow one.
    func deliverHead() {
        let waiter = shared.withLock { $0.headWaiter.take() }
        waiter?.resume(returning: .success(head))
        head.headers = []
    }

    fileprivate func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        enum Outcome { case accepted(CheckedContinuation<Void, Never>?), pause, abort }
        let outcome: Outcome = shared.withLock { state in
            guard state.end == nil else { return .abort }
            if state.bufferedBytes >= Self.pauseThreshold {
                state.paused = true
                return .pause
            }
            state.chunks.append(Array(bytes))
            state.bufferedBytes += bytes.count
            return .accepted(state.bodyWaiter.take())
        }
        switch outcome {
        case .accepted(let waiter):
            lastDataAt = loop.now
            waiter?.resume()
            return bytes.count
        case .pause:
            pausedForConsumer = true
            return agentd_curl_writefunc_pause
        case .abort:
            return 0
        }
    }
}

private let writeCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, transfer in
    Unmanaged<Transfer>.fromOpaque(transfer!).takeUnretainedValue()
        .receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
}

private let headerCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int, Int, UnsafeMutableRawPointer?) -> Int = {
    data, size, count, transfer in
    Unmanaged<Transfer>.fromOpaque(transfer!).takeUnretainedValue()
        .receiveHeader(UnsafeRawBufferPointer(start: data, count: size * count))
}

extension HTTPHeader {
    /// A name that is a token and a value without line breaks: nothing can be smuggled into
    /// another header line.
    var isWellFormed: Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
            && !value.utf8.contains { $0 == 0 || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }
    }
}

extension String {
    func trimmingSpaces() -> String {
        let utf8 = self.utf8
        let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        guard let first = utf8.firstIndex(where: { !isSpace($0) }), let last = utf8.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(self[first...last])
    }
}
