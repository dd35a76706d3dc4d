import Dispatch
import Glibc

/// Delivers the named signals as an async sequence instead of their default actions.
final class SignalEvents {
    let events: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init(_ numbers: [Int32]) {
        let (events, continuation) = AsyncStream<Int32>.makeStream()
        self.events = events
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }
}
