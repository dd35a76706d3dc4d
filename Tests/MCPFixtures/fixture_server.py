"""An MCP server for agentd's end-to-end tests, written with the official Python SDK (`mcp`).

Each tool stands for an edge case of contract §9. Marker files go to $FIXTURE_DIR, so a test
can see what the server saw (a cancellation, a start). `--hang` plays a server that never
answers `initialize`.
"""

import os
import sys
import time

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

FIXTURE_DIR = os.environ.get("FIXTURE_DIR", "/tmp")


def mark(name: str, text: str = "") -> None:
    with open(os.path.join(FIXTURE_DIR, name), "a") as marker:
        marker.write(text + "\n")


if "--hang" in sys.argv:
    # Reads nothing and answers nothing, until agentd gives up on it.
    time.sleep(3600)
    sys.exit(0)

mark("starts", str(os.getpid()))
print("fixture server starting", file=sys.stderr, flush=True)

server = MCPServer("agentd-fixture")


@server.tool(description="Say the text back")
def echo(text: str) -> str:
    return f"echo:{text}"


@server.tool(description="Sleep, reporting progress; records its cancellation")
async def slow(ctx: Context, seconds: float = 30) -> str:
    try:
        # A progress notification for a token nobody asked for: the client must ignore it.
        await ctx.session.send_progress_notification(progress_token="unrequested", progress=0.5)
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        mark("cancelled")
        raise
    return "slept"


@server.tool(description="Always fails")
def fail() -> str:
    raise ToolError("the fixture tool failed on purpose")


@server.tool(description="Kills the server in the middle of the call")
def crash() -> str:
    print("fixture server crashing", file=sys.stderr, flush=True)
    os._exit(3)


def extra() -> str:
    return "extra tool here"


@server.tool(description="Adds the tool 'extra' and says the list changed")
async def grow(ctx: Context) -> str:
    server.add_tool(extra, name="extra", description="Added at run time")
    await ctx.session.send_tool_list_changed()
    return "grown"


server.run()
