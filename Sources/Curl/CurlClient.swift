/// One curl multi handle driven by one dedicated thread.
///
/// Transfers share the multi handle's connection cache, so sequential requests to one host
/// reuse a kept-alive connection, and HTTP/2 is negotiated over TLS where the server offers it.
/// Proxies come from the environment, as libcurl reads them by default: `http_proxy`,
/// `https_proxy`/`HTTPS_PROXY`, `all_proxy`/`ALL_PROXY`, with `no_proxy`/`NO_PROXY` exempting hosts
/// (the upper-case `HTTP_PROXY` is deliberately ignored by curl).
public final class CurlClient: Sendable {
    private let loop: CurlLoop

    public init() throws(CurlError) {
        loop = try CurlLoop()
    }

    deinit {
        loop.shutdown()
    }

    /// Starts the transfer; returns once the status line and headers have arrived.
    /// Task cancellation cancels the transfer (closing its connection) and throws CurlError(.cancelled).
    public func send(_ request: HTTPRequest) async throws(CurlError) -> HTTPResponse {
        let transfer = Transfer(request, loop: loop)
        let head = await withTaskCancellationHandler {
            await withCheckedContinuation { waiter in
                if transfer.awaitHead(waiter), !loop.enqueue(.start(transfer)) {
                    transfer.cancel(.shutDown)
                }
            }
        } onCancel: {
            transfer.cancel(.cancelled)
        }
        return HTTPResponse(head: try head.get(), transfer: transfer)
    }

    /// Cancels every transfer and stops the thread. Idempotent.
    public func shutdown() {
        loop.shutdown()
    }
}

/// The body as an async sequence of byte chunks, back-pressured: the transfer is paused while
/// the consumer has more than a bounded amount (256 KiB) unread. Cancelling the iterating task,
/// calling cancel(), or dropping the last reference cancels the transfer and closes its connection.
/// Iteration throws ``CurlError``; a body is meant to be iterated once.
public final class HTTPResponse: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = CurlError

    /// The status code of the final response (1xx interim responses are skipped).
    public let status: Int
    /// The header fields in the order received.
    public let headers: [HTTPHeader]
    private let transfer: Transfer

    init(head: ResponseHead, transfer: Transfer) {
        status = head.status
        headers = head.headers
        self.transfer = transfer
    }

    deinit {
        transfer.cancel(.cancelled)
    }

    /// The value of the first header called `name`, compared case-insensitively.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.utf8.elementsEqual(name.utf8) { asciiLowercase($0) == asciiLowercase($1) } }?.value
    }

    /// True when reading the body would not wait: bytes of it, or its end, have arrived. Before
    /// iterating, this tells a reply that came with its head from one that is still to come.
    public var isBodyAvailable: Bool {
        transfer.hasBodyOrEnd
    }

    /// Cancels the transfer, closing its connection; iteration then throws `.cancelled`.
    /// Does nothing once the body has been received completely.
    public func cancel() {
        transfer.cancel(.cancelled)
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(response: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        public typealias Element = [UInt8]
        public typealias Failure = CurlError

        /// The most one call joins: a consumer that turns a chunk into one batch of work (and one
        /// write) then holds a small batch per stream, even when curl has 256 KiB waiting.
        static let maxJoinedBytes = 16 << 10
        /// Chunks handed out in a row without waiting, after which a call yields first. A body
        /// that arrives as fast as it is read would otherwise never let the consumer suspend,
        /// and it would hold its executor's thread (for a task on an event loop: every other
        /// connection of that loop, its `cancel` lines included) until the body ended.
        static let chunksBetweenYields = 4

        // Holding the response keeps it (and the transfer) alive while iterating.
        private let response: HTTPResponse
        /// Chunks taken from the transfer in one go, handed out from `nextChunk` on.
        private var chunks: [[UInt8]] = []
        private var nextChunk = 0
        private var chunksSinceSuspending = 0

        init(response: HTTPResponse) {
            self.response = response
        }

        /// What was received since the previous call, as one chunk of at most `maxJoinedBytes`
        /// (or one chunk as curl delivered it, if larger): a consumer that decodes per chunk
        /// then handles a burst of small reads (SSE events) in one go.
        public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws(CurlError)
            -> [UInt8]?
        {
            let transfer = response.transfer
            if chunksSinceSuspending >= Self.chunksBetweenYields {
                chunksSinceSuspending = 0
                await Task.yield()
            }
            while true {
                if Task.isCancelled {
                    transfer.cancel(.cancelled)
                    throw .cancelled
                }
                if nextChunk < chunks.count {
                    chunksSinceSuspending += 1
                    return joinNextChunks()
                }
                chunks.removeAll(keepingCapacity: true)
                nextChunk = 0
                switch transfer.take(into: &chunks) {
                case .chunks:
                    continue
                case .end(.finished):
                    return nil
                case .end(.failed(let error)):
                    throw error
                case .wait:
                    chunksSinceSuspending = 0
                    await withTaskCancellationHandler {
                        await transfer.waitForBody()
                    } onCancel: {
                        transfer.cancel(.cancelled)
                    }
                }
            }
        }

        /// The next chunk, with as many following ones as fit in `maxJoinedBytes`.
        private mutating func joinNextChunks() -> [UInt8] {
            // Moved out, not copied: the caller gets the only reference to the bytes.
            var joined: [UInt8] = []
            swap(&joined, &chunks[nextChunk])
            nextChunk += 1
            while nextChunk < chunks.count, joined.count + chunks[nextChunk].count <= Self.maxJoinedBytes {
                joined += chunks[nextChunk]
                chunks[nextChunk] = []
                nextChunk += 1
            }
            return joined
        }

        public mutating func next() async throws(CurlError) -> [UInt8]? {
            try await next(isolation: nil)
        }
    }
}

private func asciiLowercase(_ byte: UInt8) -> UInt8 {
    byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte
}
