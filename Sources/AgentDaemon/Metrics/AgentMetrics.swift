import AgentProtocol
import AgentRunner
import LLM
import Prometheus
import Synchronization

/// One agent's series, kept across reloads.
///
/// Outcomes and the usual upstream statuses are made together, so recording is a dictionary
/// lookup on an enum or an integer and an atomic add; a rare status or a tool is made once,
/// under a lock, then found the same way.
///
/// The series live in a registry of the agent's own, which `DaemonMetrics` merges into one
/// exposition: in one registry shared by every agent, each series added copies its whole
/// family (swift-prometheus 2.4.1), and the 37 series of each of 1,000 agents took 40 s to
/// make. They are made when the agent's first request or the first exposition needs them,
/// not when the agent is loaded: made at start, they took exec → READY with 1,000 agents from
/// 233 to 459 ms (`make bench`), where READY must come within 300 ms.
final class AgentMetrics: RequestObserver {
    let agent: String
    let registry = PrometheusCollectorRegistry()
    private let made = Mutex<Series?>(nil)

    init(agent: String) {
        self.agent = agent
    }

    /// The series, made on first use.
    private var series: Series {
        made.withLock { made in
            if let made { return made }
            let series = Series(agent: agent, registry: registry)
            made = series
            return series
        }
    }

    var inFlight: Gauge { series.inFlight }
    var queueDepth: Gauge { series.queueDepth }

    /// `done` or an error code: the `outcome` label.
    enum RequestOutcomeLabel: Hashable {
        case done
        case failed(ErrorCode)

        var text: String {
            switch self {
            case .done: "done"
            case .failed(let code): code.rawValue
            }
        }
    }

    private struct ToolKey: Hashable {
        var name: String
        var ok: Bool
    }

    /// A request ended, after `elapsed`.
    func ended(_ outcome: RequestOutcome, after elapsed: Duration) {
        let series = series
        switch outcome {
        case .done(let completion):
            series.outcomes[.done]?.increment()
            series.promptTokens.increment(by: Int64(completion.usage.promptTokens))
            series.completionTokens.increment(by: Int64(completion.usage.completionTokens))
            series.cachedTokens.increment(by: Int64(completion.usage.cachedTokens))
        case .failed(let info):
            series.outcomes[.failed(info.code)]?.increment()
        }
        series.duration.record(elapsed)
    }

    /// A request refused before it ran (`forbidden`, `overloaded`, ...): counted, not timed.
    func refused(_ code: ErrorCode) {
        series.outcomes[.failed(code)]?.increment()
    }

    func firstText(after elapsed: Duration) {
        series.timeToFirstText.record(elapsed)
    }

    func upstreamResponded(status: Int) {
        let series = series
        let counter = series.statuses.withLock { statuses in
            if let existing = statuses[status] { return existing }
            let made = Series.makeStatusCounter(series.registry, agent, status)
            statuses[status] = made
            return made
        }
        counter.increment()
    }

    func upstreamRetrying() {
        series.retries.increment()
    }

    func toolRan(_ name: String, ok: Bool) {
        let series = series
        let key = ToolKey(name: name, ok: ok)
        let counter = series.tools.withLock { tools in
            if let existing = tools[key] { return existing }
            let made = series.registry.makeCounter(
                descriptor: DaemonMetrics.name(
                    "tool_calls", unit: "total", help: "Server tool runs, by tool and result"),
                labels: [("agent", agent), ("tool", name), ("ok", ok ? "true" : "false")])
            tools[key] = made
            return made
        }
        counter.increment()
    }

    /// Every series of the agent, made at once.
    private final class Series: Sendable {
        let agent: String
        let registry: PrometheusCollectorRegistry
        let outcomes: [RequestOutcomeLabel: Counter]
        let duration: DurationHistogram
        let timeToFirstText: DurationHistogram
        let promptTokens: Counter
        let completionTokens: Counter
        let cachedTokens: Counter
        let retries: Counter
        let statuses: Mutex<[Int: Counter]>
        let tools = Mutex<[ToolKey: Counter]>([:])
        let inFlight: Gauge
        let queueDepth: Gauge

        /// Statuses made with the others: success and those Mistral is documented to send.
        static let knownStatuses = [200, 400, 401, 403, 404, 422, 429, 500, 502, 503, 504]

        init(agent: String, registry: PrometheusCollectorRegistry) {
            self.agent = agent
            self.registry = registry
            let label = [("agent", agent)]
            let requests = DaemonMetrics.name(
                "requests", unit: "total", help: "Requests ended, by outcome (done or the error code)")
            var outcomes: [RequestOutcomeLabel: Counter] = [:]
            for outcome in [RequestOutcomeLabel.done] + ErrorCode.allCases.map(RequestOutcomeLabel.failed) {
                outcomes[outcome] = registry.makeCounter(
                    descriptor: requests, labels: [("agent", agent), ("outcome", outcome.text)])
            }
            self.outcomes = outcomes
            duration = registry.makeDurationHistogram(
                descriptor: DaemonMetrics.name(
                    "request_duration", unit: "seconds", help: "From request received to its terminal event"),
                labels: label, buckets: DaemonMetrics.latencyBuckets)
            timeToFirstText = registry.makeDurationHistogram(
                descriptor: DaemonMetrics.name(
                    "time_to_first_text", unit: "seconds",
                    help: "From request received to its first reply text written to the client"),
                labels: label, buckets: DaemonMetrics.latencyBuckets)
            let tokens = DaemonMetrics.name("tokens", unit: "total", help: "Tokens Mistral counted, by kind")
            promptTokens = registry.makeCounter(descriptor: tokens, labels: label + [("kind", "prompt")])
            completionTokens = registry.makeCounter(descriptor: tokens, labels: label + [("kind", "completion")])
            cachedTokens = registry.makeCounter(descriptor: tokens, labels: label + [("kind", "cached")])
            retries = registry.makeCounter(
                descriptor: DaemonMetrics.name("retries", unit: "total", help: "Upstream attempts retried"),
                labels: label)
            var statuses: [Int: Counter] = [:]
            for status in Self.knownStatuses { statuses[status] = Self.makeStatusCounter(registry, agent, status) }
            self.statuses = Mutex(statuses)
            inFlight = registry.makeGauge(
                descriptor: DaemonMetrics.name("in_flight", help: "Requests admitted and not yet ended"), labels: label)
            queueDepth = registry.makeGauge(
                descriptor: DaemonMetrics.name("queue_depth", help: "Requests waiting for a max_concurrent slot"),
                labels: label)
        }

        static func makeStatusCounter(_ registry: PrometheusCollectorRegistry, _ agent: String, _ status: Int)
            -> Counter
        {
            registry.makeCounter(
                descriptor: DaemonMetrics.name(
                    "upstream_responses", unit: "total", help: "Upstream HTTP responses, by status code"),
                labels: [("agent", agent), ("status", String(status))])
        }
    }
}
