#!/bin/sh
# `make run` as the README tells it (part of `make check-ops`): starts `make run` in the
# background, waits for its banner, runs each "from another terminal" command of the banner
# verbatim, and checks that each printed a reply; then stops `make run` (its whole process
# group) and checks that it left nothing running. Every wait is bounded.
set -eu
cd "$(dirname "$0")/.."

fail() {
    echo "run-banner-check: FAIL: $*" >&2
    [ -n "${work:-}" ] && tail -20 "$work/run.log" >&2
    exit 1
}
step() { echo "check-ops: $*"; }

work=$(mktemp -d /tmp/agentd-run-banner.XXXXXX)
group=""
cleanup() {
    if [ -n "$group" ]; then
        kill -TERM "-$group" 2>/dev/null || true
        wait "$group" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Its own process group, so stopping it stops make, run.sh, the emulator and agentd together.
# MISTRAL_API_KEY is dropped: the check runs against the offline emulator.
env -u MISTRAL_API_KEY -u MAKEFLAGS -u MAKELEVEL setsid make --no-print-directory run >"$work/run.log" 2>&1 &
group=$!

tries=0
until grep -qs '^Reload after' "$work/run.log" && [ -S run/agents/support.sock ] && [ -S run/control.sock ]; do
    tries=$((tries + 1))
    [ "$tries" -le 1500 ] || fail "make run did not print its banner and bind its sockets within 300 s"
    kill -0 "$group" 2>/dev/null || fail "make run exited"
    sleep 0.2
done

sed -n '/^Query an agent from another terminal:/,/^Reload after/p' "$work/run.log" | sed -n 's/^  //p' >"$work/commands"
count=$(wc -l <"$work/commands")
[ "$count" -ge 4 ] || fail "expected at least 4 commands in the banner, found $count"
while IFS= read -r command; do
    output=$(timeout 30 sh -c "$command" </dev/null 2>&1) || fail "\`$command\` failed: $output"
    case "$command" in
    *list) expected=support ;;
    *) expected="Echo: hello" ;;
    esac
    case "$output" in
    *"$expected"*) step "make run banner: \`$command\` replied" ;;
    *) fail "\`$command\` printed no reply ($expected): $output" ;;
    esac
done <"$work/commands"

kill -TERM "-$group"
tries=0
# Zombies do not count: make itself stays one until it is waited for.
while ps -o stat= -g "$group" | grep -qv '^Z'; do
    tries=$((tries + 1))
    [ "$tries" -le 250 ] || fail "make run did not stop within 50 s of SIGTERM"
    sleep 0.2
done
wait "$group" 2>/dev/null || true
group=""
[ ! -S run/agents/support.sock ] || fail "make run left its agent socket behind"
step "make run: stopped cleanly"
