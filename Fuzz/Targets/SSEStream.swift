// Fuzz target: the SSE parser fed an upstream byte stream in arbitrary chunks. The first
// input byte picks the chunk size; the events must not depend on how the stream was split.
// Two differences are by design: a `feed` that throws returns none of the events its chunk
// completed before the error (the stream is failed anyway), and the unfinished line carried
// between chunks counts against the event bound while one line inside a chunk does not.
import SSE

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSSEStream(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let chunkSize = Int(data[0] % 16) + 1
    let stream = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let whole = parse(stream, chunkSize: stream.count + 1)
    let split = parse(stream, chunkSize: chunkSize)
    let consistent: Bool
    switch (whole.error, split.error) {
    case (nil, nil): consistent = whole.events == split.events
    case (nil, .eventTooLarge?): consistent = whole.events.starts(with: split.events)
    case (nil, _?), (_?, nil): consistent = false
    case (_?, _?): consistent = split.events.starts(with: whole.events) || whole.events.starts(with: split.events)
    }
    if !consistent {
        fatalError("SSE events depend on the chunking (\(chunkSize)): \(whole) vs \(split)")
    }
    return 0
}

/// The events of `stream` fed `chunkSize` bytes at a time, then its end; the error ends it.
private func parse(_ stream: UnsafeBufferPointer<UInt8>, chunkSize: Int) -> Outcome {
    // A small bound so that the too-large path is reached by short inputs.
    var parser = SSEParser(maxEventBytes: 512)
    var events: [SSEEvent] = []
    var start = 0
    do {
        while start < stream.count {
            let end = min(start + chunkSize, stream.count)
            events += try parser.feed(UnsafeBufferPointer(rebasing: stream[start..<end]))
            start = end
        }
        events += try parser.finish()
    } catch {
        return Outcome(events: events, error: error.kind)
    }
    return Outcome(events: events, error: nil)
}

private struct Outcome: Equatable {
    var events: [SSEEvent]
    var error: SSEError.Kind?
}
