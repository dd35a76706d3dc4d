#if canImport(Glibc)
    import Glibc
#endif

/// Monotonic nanoseconds: every interval the bench reports is a difference of two of these.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Nearest-rank percentile of `values` (need not be sorted); nil when empty.
func percentile(_ values: [Double], _ fraction: Double) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// A figure measured once per round: reported as the median with the min–max spread.
struct Spread {
    var values: [Double]

    var median: Double { percentile(values, 0.5) ?? .nan }
    var min: Double { values.min() ?? .nan }
    var max: Double { values.max() ?? .nan }

    /// "0.21 (0.18–0.25)" with `digits` decimals.
    func formatted(_ digits: Int = 2) -> String {
        guard !values.isEmpty else { return "n/a" }
        if values.count == 1 { return fixed(median, digits) }
        return "\(fixed(median, digits)) (\(fixed(min, digits))–\(fixed(max, digits)))"
    }
}

/// `value` with exactly `digits` decimals, without Foundation.
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else { return "n/a" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(scaled - Double(whole) * scale)
    let sign = value < 0 && scaled != 0 ? "-" : ""
    guard digits > 0 else { return "\(sign)\(whole)" }
    let fractionText = String(fraction)
    return "\(sign)\(whole).\(String(repeating: "0", count: digits - fractionText.count))\(fractionText)"
}
