extension Duration {
    /// Whole nanoseconds, saturating: negative durations count as zero, overlong ones as
    /// `UInt64.max`. What timers, deadlines and curl's millisecond options are computed from.
    public var saturatingNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 || seconds > 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : whole.saturatingAdd(UInt64(clamping: attoseconds / 1_000_000_000))
    }

    /// Whole milliseconds, for logs, status and request options.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

extension UInt64 {
    public func saturatingAdd(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
