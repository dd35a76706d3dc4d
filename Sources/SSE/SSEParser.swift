import Basics

/// One server-sent event. `event` is nil for the default (`message`) type; `id` is the stream's
/// last event ID, which persists across events as the WHATWG rules say (nil if never set).
public struct SSEEvent: Sendable, Equatable {
    public var event: String?
    public var data: String
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// A stream that is not a well-formed event stream.
public struct SSEError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case invalidUTF8, eventTooLarge
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Parses `text/event-stream` bytes by the WHATWG rules: lines end in LF, CRLF or CR (also when
/// a CRLF is split between two chunks); `field: value` with one optional space stripped; `:`
/// starts a comment; a blank line dispatches; `data` lines join with "\n"; `retry` and unknown
/// fields are ignored; nothing is dispatched while the data is empty. Invalid UTF-8 and events
/// larger than the bound are errors, after which the parser holds no pending event.
public struct SSEParser: Sendable {
    private let maxEventBytes: Int
    /// The unfinished last line of the previous chunks.
    private var partialLine: [UInt8] = []
    /// The previous chunk ended in CR: an LF opening the next one belongs to that line end.
    private var skipLeadingLF = false
    /// A byte-order mark is stripped from the first line only.
    private var atFirstLine = true
    /// Each `data` value followed by LF; the last LF is dropped on dispatch.
    private var data: [UInt8] = []
    private var eventType: [UInt8] = []
    private var lastEventID: String?

    public init(maxEventBytes: Int = 8 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    /// Feeds any split of the byte stream; returns the events completed by these bytes.
    public mutating func feed(_ bytes: some Collection<UInt8>) throws(SSEError) -> [SSEEvent] {
        var events: [SSEEvent] = []
        let result =
            bytes.withContiguousStorageIfAvailable { buffer in
                Result { () throws(SSEError) in try parse(buffer, into: &events) }
            }
            ?? Array(bytes).withUnsafeBufferPointer { buffer in
                Result { () throws(SSEError) in try parse(buffer, into: &events) }
            }
        try result.get()
        return events
    }

    /// End of stream: returns a final event left without its blank line, if any.
    public mutating func finish() throws(SSEError) -> [SSEEvent] {
        var events: [SSEEvent] = []
        if !partialLine.isEmpty {
            let line = partialLine
            partialLine = []
            try line.withUnsafeBufferPointer { line throws(SSEError) in try handle(line: line, into: &events) }
        }
        try dispatch(into: &events)
        skipLeadingLF = false
        return events
    }

    private mutating func parse(_ input: UnsafeBufferPointer<UInt8>, into events: inout [SSEEvent]) throws(SSEError) {
        do {
            var index = 0
            if skipLeadingLF, let first = input.first {
                skipLeadingLF = false
                if first == lf { index = 1 }
            }
            var lineStart = index
            while true {
                index = Self.lineEnd(in: input, from: index)
                guard index < input.count else { break }
                let byte = input[index]
                let rest = UnsafeBufferPointer(rebasing: input[lineStart..<index])
                if partialLine.isEmpty {
                    try handle(line: rest, into: &events)
                } else {
                    var line: [UInt8] = []
                    swap(&line, &partialLine)
                    line.append(contentsOf: rest)
                    try line.withUnsafeBufferPointer { line throws(SSEError) in try handle(line: line, into: &events) }
                    line.removeAll(keepingCapacity: true)
                    swap(&line, &partialLine)
                }
                index += 1
                if byte == cr {
                    if index == input.count {
                        skipLeadingLF = true
                    } else if input[index] == lf {
                        index += 1
                    }
                }
                lineStart = index
            }
            partialLine.append(contentsOf: UnsafeBufferPointer(rebasing: input[lineStart...]))
            try checkSize(adding: 0)
        } catch {
            reset()
            throw error
        }
    }

    /// The index of the first CR or LF at or after `start`, or `input.count`.
    private static func lineEnd(in input: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        ByteScan.firstIndex(
            in: input, from: start,
            anyMatches: {
                ByteScan.zeroBytes($0 ^ ByteScan.repeated(lf)) | ByteScan.zeroBytes($0 ^ ByteScan.repeated(cr)) != 0
            }, matches: { $0 == lf || $0 == cr })
    }

    private mutating func handle(line raw: UnsafeBufferPointer<UInt8>, into events: inout [SSEEvent]) throws(SSEError) {
        var line = raw[...]
        if atFirstLine {
            atFirstLine = false
            if line.starts(with: byteOrderMark) { line = line.dropFirst(byteOrderMark.count) }
        }
        guard let first = line.first else { return try dispatch(into: &events) }
        if first == colon { return }  // comment
        let name: Slice<UnsafeBufferPointer<UInt8>>
        var value: Slice<UnsafeBufferPointer<UInt8>>
        if let separator = line.firstIndex(of: colon) {
            name = line[..<separator]
            value = line[(separator + 1)...]
            if value.first == space { value = value.dropFirst() }
        } else {
            name = line
            value = line[line.endIndex...]
        }
        if Self.is(name, "data") {
            try checkSize(adding: value.count + 1)
            data.append(contentsOf: value)
            data.append(lf)
        } else if Self.is(name, "event") {
            eventType.removeAll(keepingCapacity: true)
            eventType.append(contentsOf: value)
        } else if Self.is(name, "id") {
            if !value.contains(0) { lastEventID = try decode(UnsafeBufferPointer(rebasing: value), field: "id") }
        }
    }

    /// A field name compared by hand: `elementsEqual` did not inline, and cost more per
    /// line than the comparison itself.
    private static func `is`(_ name: Slice<UnsafeBufferPointer<UInt8>>, _ field: StaticString) -> Bool {
        guard name.count == field.utf8CodeUnitCount else { return false }
        let expected = field.utf8Start
        for (offset, byte) in zip(0..., name) where byte != expected[offset] { return false }
        return true
    }

    private mutating func dispatch(into events: inout [SSEEvent]) throws(SSEError) {
        defer {
            data.removeAll(keepingCapacity: true)
            eventType.removeAll(keepingCapacity: true)
        }
        guard !data.isEmpty else { return }
        data.removeLast()
        let event =
            eventType.isEmpty
            ? nil
            : try eventType.withUnsafeBufferPointer { (buffer) throws(SSEError) in
                try decode(buffer, field: "event")
            }
        let text = try data.withUnsafeBufferPointer { (buffer) throws(SSEError) in try decode(buffer, field: "data") }
        events.append(SSEEvent(event: event, data: text, id: lastEventID))
    }

    private func decode(_ bytes: UnsafeBufferPointer<UInt8>, field: String) throws(SSEError) -> String {
        guard let text = ByteScan.validatedString(bytes) else {
            throw SSEError(.invalidUTF8, "event stream: invalid UTF-8 in the \(field) field")
        }
        return text
    }

    private func checkSize(adding count: Int) throws(SSEError) {
        guard data.count + partialLine.count + count > maxEventBytes else { return }
        throw SSEError(.eventTooLarge, "event stream: an event exceeds \(maxEventBytes) bytes")
    }

    private mutating func reset() {
        partialLine = []
        data = []
        eventType = []
        skipLeadingLF = false
    }
}

private let lf = UInt8(ascii: "\n")
private let cr = UInt8(ascii: "\r")
private let colon = UInt8(ascii: ":")
private let space = UInt8(ascii: " ")
private let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]
