#!/usr/bin/env bash
# `make bench`: builds agentd, the emulator and the load generator in release mode, then runs
# agentd-bench on loopback (it starts the emulators, nginx as the reference hop and agentd itself,
# in a temporary directory) and writes the figures into BENCHMARKS.md. BENCH_QUICK=1: a short
# version. The Makefile installs nginx first.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
# One product per invocation: `--product` does not accumulate.
for product in agentd mistral-emulator agentd-bench; do $SWIFT build -c release --product "$product"; done
BIN=$($SWIFT build -c release --show-bin-path)

# 10,000 streams need about 2 descriptors each in agentd (client side, upstream side) and one
# in the emulator and the generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Every process and temporary directory the bench makes is listed here ("pid N", "dir PATH"),
# so an interrupted run leaves nothing behind. A pid is signalled only while it still runs one
# of our binaries; only the bench's own directories are removed.
pidfile=$(mktemp /tmp/agentd-bench-pids.XXXXXX)
cleanup() {
    while read -r kind value; do
        case "$kind" in
        pid)
            # nginx retitles its master process; its configuration is under the bench's directory.
            if [ -r "/proc/$value/cmdline" ] && tr '\0' ' ' <"/proc/$value/cmdline" |
                grep -q -e "^$BIN/" -e "^nginx: master process /usr/sbin/nginx -p /tmp/agentd-bench\."; then
                kill "$value" 2>/dev/null || true
            fi
            ;;
        dir)
            case "$value" in /tmp/agentd-bench.* | /dev/shm/agentd-bench.*) rm -rf -- "$value" ;; esac
            ;;
        esac
    done <"$pidfile"
    rm -f "$pidfile"
}
trap cleanup EXIT

args=(--bin "$BIN" --out BENCHMARKS.md)
if [ -n "${BENCH_QUICK:-}" ] && [ "$BENCH_QUICK" != 0 ]; then args+=(--quick); fi
BENCH_SWIFT_VERSION="$($SWIFT --version 2>&1 | head -n 1)" BENCH_PIDFILE="$pidfile" \
    "$BIN/agentd-bench" "${args[@]}"
