#!/bin/sh
# A real Prometheus scrapes agentd (part of `make check-ops`): agentd serves metrics on a
# loopback port of its choosing, Debian's prometheus scrapes it every second with a temporary
# config and data directory, and its own query API must return agentd_requests_total and
# the time-to-first-text histogram. `promtool check metrics` must pass on the exposition.
# Everything it starts is stopped on exit; every wait is bounded.
#   scripts/prometheus-check.sh BIN_DIR EMULATOR    (BIN_DIR holds agentd and agentctl)
set -eu
bin=$1
emulator=$2
cd "$(dirname "$0")/.."

fail() {
    echo "prometheus-check: FAIL: $*" >&2
    [ -n "${work:-}" ] && tail -5 "$work"/*.log >&2 2>/dev/null
    exit 1
}
step() { echo "check-ops: $*"; }

work=$(mktemp -d /tmp/agentd-prometheus.XXXXXX)
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Polls `$@` every 0.2 s for at most $timeout seconds.
wait_for() {
    timeout=$1
    shift
    tries=$((timeout * 5))
    while [ "$tries" -gt 0 ]; do
        "$@" && return 0
        tries=$((tries - 1))
        sleep 0.2
    done
    return 1
}

"$emulator" --port 0 --api-key offline-emulator >"$work/emulator.log" 2>&1 &
pids="$pids $!"
emulator_address() { address=$(sed -n '1s/^listening on //p' "$work/emulator.log") && [ -n "$address" ]; }
wait_for 10 emulator_address || fail "the emulator did not start"

mkdir -p "$work/agents.d"
cp agents.d/support.yaml "$work/agents.d/"
printf 'metrics: {listen: "127.0.0.1:0"}\n' >"$work/agentd.yaml"
MISTRAL_API_KEY=offline-emulator MISTRAL_BASE_URL="http://$address" "$bin/agentd" --config "$work/agentd.yaml" \
    --agents-dir "$work/agents.d" --socket-dir "$work/run" >"$work/agentd.log" 2>&1 &
pids="$pids $!"
metrics_port() {
    port=$(sed -n 's/.*Serving metrics metrics.listen=127.0.0.1:\([0-9]*\).*/\1/p' "$work/agentd.log") && [ -n "$port" ]
}
wait_for 10 metrics_port || fail "agentd did not serve metrics"
wait_for 10 test -S "$work/run/agents/support.sock" || fail "agentd did not bind its agent socket"
for id in 1 2 3; do
    echo "{\"id\":$id,\"input\":\"hello\"}" | socat -t 10 - "UNIX-CONNECT:$work/run/agents/support.sock" |
        jq -e 'select(.type=="done")' >/dev/null || fail "request $id was not answered"
done

curl -sf "http://127.0.0.1:$port/metrics" >"$work/exposition.txt" || fail "GET /metrics"
promtool check metrics <"$work/exposition.txt" >"$work/promtool.log" 2>&1 || fail "promtool check metrics: $(cat "$work/promtool.log")"
step "promtool check metrics: clean ($(grep -c '^agentd_' "$work/exposition.txt") samples)"

cat >"$work/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: agentd
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool check config"

# Prometheus cannot report a port it chose, so pick a free one; a lost race is retried.
prometheus_ready() { curl -sf "http://127.0.0.1:$web/-/ready" >/dev/null; }
started=""
for _ in 1 2 3 4 5; do
    web=$(shuf -i 20000-60000 -n 1)
    ss -Htln "sport = :$web" | grep -q . && continue
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
        --web.listen-address="127.0.0.1:$web" >"$work/prometheus.log" 2>&1 &
    prometheus_pid=$!
    pids="$pids $prometheus_pid"
    if wait_for 30 prometheus_ready; then
        started=1
        break
    fi
    kill "$prometheus_pid" 2>/dev/null || true
done
[ -n "$started" ] || fail "prometheus did not become ready"
step "prometheus $(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p') ready on 127.0.0.1:$web, scraping agentd on 127.0.0.1:$port"

# True once the query API returns a sample of $1 with the value $2 or more.
has_series() {
    curl -sf --get "http://127.0.0.1:$web/api/v1/query" --data-urlencode "query=$1" >"$work/query.json" &&
        jq -e --argjson at_least "$2" '.status == "success" and
            ([.data.result[] | .value[1] | tonumber] | max // -1) >= $at_least' "$work/query.json" >/dev/null
}
wait_for 30 has_series 'agentd_requests_total{agent="support",outcome="done"}' 3 ||
    fail "no agentd_requests_total through Prometheus: $(cat "$work/query.json" 2>/dev/null)"
wait_for 30 has_series 'agentd_time_to_first_text_seconds_count{agent="support"}' 3 ||
    fail "no time-to-first-text histogram through Prometheus: $(cat "$work/query.json" 2>/dev/null)"
has_series 'histogram_quantile(0.5, agentd_time_to_first_text_seconds_bucket{agent="support"})' 0 ||
    fail "no time-to-first-text buckets through Prometheus"
step "prometheus: agentd_requests_total and agentd_time_to_first_text_seconds arrived through its query API"
