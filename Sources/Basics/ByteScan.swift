/// Finds bytes eight at a time: the scans that look at every byte of every streamed event (line
/// ends in the SSE parser, its ASCII check, bytes to escape in written JSON) were, byte by byte,
/// among the largest costs per event (callgrind on a soak of 500-word replies, BENCHMARKS.md
/// fixes 17 and 23).
public enum ByteScan {
    /// The index of the first byte at or after `start` that `matches`, or `bytes.count`.
    ///
    /// `anyMatches` is given eight bytes at once (little-endian) and must be true whenever one of
    /// them matches; the bytes of a word for which it is true are then looked at one by one.
    @inlinable @inline(__always)
    public static func firstIndex(
        in bytes: UnsafeBufferPointer<UInt8>, from start: Int, anyMatches: (UInt64) -> Bool,
        matches: (UInt8) -> Bool
    ) -> Int {
        var index = start
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while index + 8 <= bytes.count, !anyMatches(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
            }
        }
        while index < bytes.count, !matches(bytes[index]) { index += 1 }
        return index
    }

    /// The bytes as a string if they are valid UTF-8. ASCII, most of what agentd reads, needs no
    /// validation, and the generic `String(validating:)` costs a metadata lookup per call.
    @inlinable
    public static func validatedString(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        isASCII(bytes) ? String(decoding: bytes, as: UTF8.self) : String(validating: bytes, as: UTF8.self)
    }

    /// Whether every byte is below 0x80.
    @inlinable @inline(__always)
    public static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        firstIndex(in: bytes, from: 0, anyMatches: { $0 & highBits != 0 }, matches: { $0 >= 0x80 }) == bytes.count
    }

    /// A word with the high bit of a byte set if a byte of `word` is zero, and zero if none is
    /// (the classic test: above the first zero byte, borrows may mark others, which is why
    /// callers use it only to find the word).
    @inlinable @inline(__always)
    public static func zeroBytes(_ word: UInt64) -> UInt64 {
        (word &- 0x0101_0101_0101_0101) & ~word & highBits
    }

    /// The same for bytes below `limit` (at most 0x80): nonzero if a byte of `word` is.
    @inlinable @inline(__always)
    public static func bytesBelow(_ limit: UInt8, in word: UInt64) -> UInt64 {
        (word &- 0x0101_0101_0101_0101 &* UInt64(limit)) & ~word & highBits
    }

    /// Each byte with its value repeated in all eight.
    @inlinable @inline(__always)
    public static func repeated(_ byte: UInt8) -> UInt64 { 0x0101_0101_0101_0101 &* UInt64(byte) }

    public static let highBits: UInt64 = 0x8080_8080_8080_8080
}
