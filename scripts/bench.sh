#!/usr/bin/env bash
# `make bench`: builds agentd, the emulator and the load generator in release mode, then runs
# agentd-bench on loopback (it starts the emulator and agentd itself, in a temporary directory)
# and writes the figures into BENCHMARKS.md. BENCH_QUICK=1: a one-minute version.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
# One product per invocation: `--product` does not accumulate.
for product in agentd mistral-emulator agentd-bench; do $SWIFT build -c release --product "$product"; done
BIN=$($SWIFT build -c release --show-bin-path)

# 10,000 streams need about 2 descriptors each in agentd (client side, upstream side) and one
# in the emulator and the generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Every process the bench starts is listed here, so an interrupted run leaves none behind
# (a listed pid is signalled only while it still runs one of our binaries).
pidfile=$(mktemp /tmp/agentd-bench-pids.XXXXXX)
cleanup() {
    while read -r pid; do
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "^$BIN/"; then
            kill "$pid" 2>/dev/null || true
        fi
    done <"$pidfile"
    rm -f "$pidfile"
}
trap cleanup EXIT

args=(--bin "$BIN" --out BENCHMARKS.md)
if [ -n "${BENCH_QUICK:-}" ] && [ "$BENCH_QUICK" != 0 ]; then args+=(--quick); fi
BENCH_SWIFT_VERSION="$($SWIFT --version 2>&1 | head -n 1)" BENCH_PIDFILE="$pidfile" \
    "$BIN/agentd-bench" "${args[@]}"
