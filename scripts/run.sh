#!/bin/sh
# `make run`: serves the repository's agents.d/ with sockets under ./run/ and sessions in
# ./run/state/. With MISTRAL_API_KEY set it talks to Mistral; without, to the bundled offline
# emulator.
set -eu
bin=${1:-.build/debug}
socket_dir=run
mkdir -p "$socket_dir"

emulator_pid=""
cleanup() {
    [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -n "${MISTRAL_API_KEY:-}" ]; then
    echo "agentd: MISTRAL_API_KEY is set: serving agents.d/ against ${MISTRAL_BASE_URL:-https://api.mistral.ai}"
else
    "$bin/mistral-emulator" --port 0 --api-key offline-emulator >"$socket_dir/emulator.log" 2>&1 &
    emulator_pid=$!
    address=""
    for _ in $(seq 50); do
        address=$(head -n 1 "$socket_dir/emulator.log" 2>/dev/null | sed -n 's/^listening on //p')
        [ -n "$address" ] && break
        sleep 0.1
    done
    if [ -z "$address" ]; then
        echo "agentd: the offline emulator did not start:" >&2
        cat "$socket_dir/emulator.log" >&2
        exit 1
    fi
    MISTRAL_API_KEY=offline-emulator
    MISTRAL_BASE_URL="http://$address"
    export MISTRAL_API_KEY MISTRAL_BASE_URL
    echo "agentd: no MISTRAL_API_KEY: serving agents.d/ from the bundled offline Mistral emulator at $MISTRAL_BASE_URL"
    echo "        (replies are deterministic echoes; set MISTRAL_API_KEY to use the real API)"
fi

cat <<HELP

Query an agent from another terminal:
  echo '{"input":"hello"}' | socat - UNIX-CONNECT:$socket_dir/agents/support.sock
  echo '{"input":"hello"}' | nc -U -N $socket_dir/agents/support.sock
  $bin/agentctl --socket-dir $socket_dir chat support "hello"
  $bin/agentctl --socket-dir $socket_dir list
Reload after editing agents.d/: kill -HUP \$(pgrep -x agentd)   Stop: Ctrl-C
A conversation, a prompt per turn (Ctrl-D ends it): $bin/agentctl --socket-dir $socket_dir chat support

HELP

"$bin/agentd" --config /dev/null --agents-dir agents.d --socket-dir "$socket_dir" --state-dir "$socket_dir/state"
