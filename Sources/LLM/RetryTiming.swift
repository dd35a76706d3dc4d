import Basics

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension RetryPolicy {
    /// The pause before attempt `attempt + 1` (attempts count from 1): exponential backoff with
    /// full jitter (a uniform pick in `0...min(maxDelay, baseDelay * 2^(attempt-1))`), so that
    /// many clients refused at once do not come back at once. A server's `Retry-After` wins.
    func delay(
        afterAttempt attempt: Int, retryAfter: Duration?, using generator: inout some RandomNumberGenerator
    ) -> Duration {
        if let retryAfter { return retryAfter }
        let exponent = min(max(attempt - 1, 0), 30)
        let ceiling = min(maxDelay, baseDelay * (1 << exponent))
        let ceilingNanoseconds = Int64(clamping: ceiling.saturatingNanoseconds)
        return .nanoseconds(Int64.random(in: 0...ceilingNanoseconds, using: &generator))
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): a number of seconds, or an HTTP date.
enum RetryAfter {
    /// The pause the header asks for, measured from `now` (seconds since the epoch); nil when
    /// the value is neither form. Dates in the past mean no pause.
    static func parse(_ value: String, now: Int64 = Int64(time(nil))) -> Duration? {
        let text = value.trimmingWhitespace
        if let seconds = Int64(text) { return seconds >= 0 ? .seconds(seconds) : nil }
        guard let date = httpDate(text) else { return nil }
        return .seconds(max(date - now, 0))
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers must send, and the
    /// obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) they may.
    static func httpDate(_ text: String) -> Int64? {
        let fields = text.split(separator: " ")
        let day: Int
        let month: Int
        let year: Int
        let clock: Substring
        switch fields.count {
        case 6 where fields[5] == "GMT":
            guard let d = Int(fields[1]), let m = months.firstIndex(of: String(fields[2])), let y = Int(fields[3])
            else {
                return nil
            }
            (day, month, year, clock) = (d, m, y, fields[4])
        case 4 where fields[3] == "GMT":
            let date = fields[1].split(separator: "-")
            guard date.count == 3, let d = Int(date[0]), let m = months.firstIndex(of: String(date[1])),
                let y = Int(date[2])
            else { return nil }
            (day, month, year, clock) = (d, m, y < 100 ? (y < 70 ? 2000 + y : 1900 + y) : y, fields[2])
        default:
            return nil
        }
        let time = clock.split(separator: ":").compactMap { Int($0) }
        guard time.count == 3, (1...31).contains(day), (0...23).contains(time[0]), (0...59).contains(time[1]),
            (0...60).contains(time[2])
        else { return nil }
        return daysSinceEpoch(year: year, month: month + 1, day: day) * 86_400
            + Int64(time[0] * 3600 + time[1] * 60 + time[2])
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
    private static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = Int64((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1)
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
