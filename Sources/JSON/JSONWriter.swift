import Basics

/// The bytes that end a plain run of a JSON string, in the text and in what is written: the
/// quote, the backslash and the control characters (which must be escaped).
enum JSONStringBytes {
    static func isSpecial(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    /// The index of the first special byte at or after `start`, or the count; eight bytes at a
    /// time (BENCHMARKS.md, fix 23).
    static func firstSpecial(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        ByteScan.firstIndex(
            in: bytes, from: start,
            anyMatches: {
                ByteScan.bytesBelow(0x20, in: $0) | ByteScan.zeroBytes($0 ^ ByteScan.repeated(UInt8(ascii: "\"")))
                    | ByteScan.zeroBytes($0 ^ ByteScan.repeated(UInt8(ascii: "\\"))) != 0
            }, matches: isSpecial)
    }
}

extension JSONValue {
    /// Compact JSON text, with no newlines: safe to frame as one line.
    public var jsonText: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64)
        write(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends compact JSON to `bytes`.
    public func write(to bytes: inout [UInt8]) {
        switch self {
        case .null: bytes.append(contentsOf: "null".utf8)
        case .bool(let value): bytes.append(contentsOf: (value ? "true" : "false").utf8)
        case .int(let value): bytes.append(contentsOf: String(value).utf8)
        case .double(let value): JSONValue.writeDouble(value, to: &bytes)
        case .string(let value): JSONValue.writeString(value, to: &bytes)
        case .array(let elements):
            bytes.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { bytes.append(UInt8(ascii: ",")) }
                element.write(to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let object):
            bytes.append(UInt8(ascii: "{"))
            for (position, member) in object.members.enumerated() {
                if position > 0 { bytes.append(UInt8(ascii: ",")) }
                JSONValue.writeString(member.key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                member.value.write(to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    static func writeDouble(_ value: Double, to bytes: inout [UInt8]) {
        guard value.isFinite else {
            // JSON has no NaN or infinity; null is what JavaScript's JSON.stringify writes.
            bytes.append(contentsOf: "null".utf8)
            return
        }
        if value.rounded() == value, abs(value) < 1e15 {
            bytes.append(contentsOf: String(Int64(value)).utf8)
            bytes.append(contentsOf: ".0".utf8)
        } else {
            bytes.append(contentsOf: "\(value)".utf8)
        }
    }

    static func writeString(_ value: String, to bytes: inout [UInt8]) {
        var value = value
        value.withUTF8 { utf8 in
            bytes.append(UInt8(ascii: "\""))
            // Runs that need no escaping, nearly all of a string, are appended in one go.
            var runStart = 0
            var offset = 0
            while true {
                offset = JSONStringBytes.firstSpecial(in: utf8, from: offset)
                guard offset < utf8.count else { break }
                let byte = utf8[offset]
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<offset]))
                offset += 1
                runStart = offset
                switch byte {
                case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
                case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
                case 0x0A: bytes.append(contentsOf: #"\n"#.utf8)
                case 0x0D: bytes.append(contentsOf: #"\r"#.utf8)
                case 0x09: bytes.append(contentsOf: #"\t"#.utf8)
                default:
                    let hex = String(byte, radix: 16)
                    bytes.append(contentsOf: "\\u00".utf8)
                    if hex.count == 1 { bytes.append(UInt8(ascii: "0")) }
                    bytes.append(contentsOf: hex.utf8)
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
            bytes.append(UInt8(ascii: "\""))
        }
    }
}
