#!/usr/bin/env bash
# Builds one libFuzzer target with AddressSanitizer and runs it for a bounded time over its
# committed seed corpus.
#
#   Fuzz/run.sh TARGET [SECONDS]     TARGET: wire-line | sse-stream | agent-file | all
#
# The targets are compiled with swiftc straight from Sources/ (no SwiftPM: libFuzzer brings
# its own main). Each Swift module a target needs is built as its own module, so the
# sources compile unchanged; wire-line and sse-stream import the public API of the module
# they drive (AgentProtocol's RequestDecoder, SSE's parser), agent-file is compiled into
# AgentCore to reach the loader below its file-reading layer. New inputs found go to
# .build-fuzz/corpus/TARGET; crashes to .build-fuzz/crashes/. Exits non-zero on a crash.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:?usage: Fuzz/run.sh wire-line|sse-stream|agent-file|all [SECONDS]}
seconds=${2:-60}
swiftc=${SWIFTC:-swiftc}
out="$root/.build-fuzz"
flags=(-parse-as-library -sanitize=fuzzer,address -O -g -swift-version 6 -I "$out" -I "$root/Sources/CYAML")

if [ "$target" = all ]; then
    for each in wire-line sse-stream agent-file; do "$0" "$each" "$seconds"; done
    exit 0
fi

mkdir -p "$out/corpus/$target" "$out/crashes"

# module NAME SOURCES...: an object file and a .swiftmodule for a library module.
module() {
    local name=$1
    shift
    if [ -f "$out/$name.o" ] && [ -z "$(find "$@" -newer "$out/$name.o" 2>/dev/null)" ]; then return; fi
    "$swiftc" "${flags[@]}" -module-name "$name" -emit-module -emit-module-path "$out/$name.swiftmodule" \
        -wmo -c "$@" -o "$out/$name.o"
}

case "$target" in
wire-line)
    module Basics "$root"/Sources/Basics/*.swift
    module JSON "$root"/Sources/JSON/*.swift
    module AgentProtocol "$root"/Sources/AgentProtocol/*.swift
    sources=("$root/Fuzz/Targets/WireLine.swift")
    objects=("$out/Basics.o" "$out/JSON.o" "$out/AgentProtocol.o")
    libraries=()
    ;;
sse-stream)
    module SSE "$root"/Sources/SSE/*.swift
    sources=("$root/Fuzz/Targets/SSEStream.swift")
    objects=("$out/SSE.o")
    libraries=()
    ;;
agent-file)
    module Basics "$root"/Sources/Basics/*.swift
    module JSON "$root"/Sources/JSON/*.swift
    module AgentProtocol "$root"/Sources/AgentProtocol/*.swift
    # Of LLM, Tools and Sessions the loader needs only the definitions: the provider-neutral
    # types, exec tools and their checks, MCP server definitions, session limits (not curl,
    # subprocesses or SQLite).
    module LLM "$root"/Sources/LLM/ChatTypes.swift "$root"/Sources/LLM/UpstreamObserver.swift
    module Tools "$root"/Sources/Tools/ExecTool.swift "$root"/Sources/Tools/ArgvTemplate.swift \
        "$root"/Sources/Tools/MCPServerConfig.swift
    module Sessions "$root"/Sources/Sessions/Model.swift
    module YAML "$root"/Sources/YAML/*.swift
    sources=("$root"/Sources/AgentCore/*.swift "$root/Fuzz/Targets/AgentFile.swift")
    objects=("$out/Basics.o" "$out/JSON.o" "$out/AgentProtocol.o" "$out/LLM.o" "$out/Tools.o" "$out/Sessions.o"
        "$out/YAML.o")
    libraries=(-lyaml)
    ;;
*)
    echo "unknown target: $target" >&2
    exit 64
    ;;
esac

"$swiftc" "${flags[@]}" -module-name "Fuzz${target//-/}" "${sources[@]}" "${objects[@]}" "${libraries[@]}" \
    -o "$out/fuzz-$target"

# The Swift runtime backtracer would wait on a crash; libFuzzer and ASan report it.
export SWIFT_BACKTRACE=enable=no
cd "$out/crashes"
# Seeds first, then what earlier runs found; -max_len fits a request line of a few KiB.
"$out/fuzz-$target" "$out/corpus/$target" "$root/Fuzz/corpus/$target" \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
