#!/usr/bin/env python3
"""What an MCP server costs agentd (issue 18): time to READY=1 and idle RSS, without any
MCP server configured and with one (mcp-server-time) named by an agent.

Usage: scripts/mcp-cost.py AGENTD_BINARY MCP_VENV [ROUNDS]
Prints a Markdown table of medians (min-max) over ROUNDS starts (default 7).
"""

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

AGENT = "model: mistral-small-latest\n"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def foundation_rss_kib(pid: int) -> int:
    """The part of the RSS in Foundation's shared libraries (and the ICU data they carry)."""
    total, counting = 0, False
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
                path = fields[5] if len(fields) > 5 else ""
                counting = "Foundation" in path
            elif counting and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (any of its threads may have spawned it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The parent is the second field after the parenthesised command name.
                if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def one_start(agentd: str, venv: str, with_mcp: bool) -> tuple[float, int, int, int]:
    with tempfile.TemporaryDirectory(prefix="mcpc-", dir="/tmp") as directory:
        agents = os.path.join(directory, "agents.d")
        os.mkdir(agents)
        config = os.path.join(directory, "agentd.yaml")
        with open(config, "w") as file:
            if with_mcp:
                file.write(f"mcp_servers:\n  time:\n    command: [{venv}/bin/mcp-server-time]\n")
        with open(os.path.join(agents, "a.yaml"), "w") as file:
            file.write(AGENT + ("mcp_servers: [time]\n" if with_mcp else ""))
        notify_path = os.path.join(directory, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(30)
        env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": notify_path}
        started = time.monotonic()
        daemon = subprocess.Popen(
            [agentd, "--config", config, "--agents-dir", agents, "--socket-dir", os.path.join(directory, "run")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while b"READY=1" not in notify.recv(4096):
                pass
            ready = time.monotonic() - started
            time.sleep(5)  # idle: no request
            servers = sum(rss_kib(child) for child in children(daemon.pid))
            return ready, rss_kib(daemon.pid), servers, foundation_rss_kib(daemon.pid)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
            notify.close()


def main() -> None:
    agentd, venv = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    results = {False: [], True: []}
    for _ in range(rounds):
        for with_mcp in (False, True):  # alternated, so machine load lands on both
            results[with_mcp].append(one_start(agentd, venv, with_mcp))

    def cell(values: list[float], unit: str, scale: float = 1) -> str:
        scaled = [value * scale for value in values]
        return f"{statistics.median(scaled):.1f} {unit} ({min(scaled):.1f}–{max(scaled):.1f})"

    print("| | time to READY=1 | agentd idle RSS | of it in Foundation's libraries | MCP server processes' RSS |")
    print("|---|---|---|---|---|")
    for with_mcp, label in ((False, "no MCP server configured"), (True, "one MCP server (mcp-server-time)")):
        ready = [result[0] for result in results[with_mcp]]
        rss = [result[1] for result in results[with_mcp]]
        servers = [result[2] for result in results[with_mcp]]
        foundation = [result[3] for result in results[with_mcp]]
        print(
            f"| {label} | {cell(ready, 'ms', 1000)} | {cell(rss, 'MiB', 1 / 1024)} "
            f"| {cell(foundation, 'MiB', 1 / 1024)} | {cell(servers, 'MiB', 1 / 1024)} |")


if __name__ == "__main__":
    main()
