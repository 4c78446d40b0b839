"""A real MCP server for the tests, built with the official SDK, spoken to over stdio or streamable HTTP::

    python tests/mcp_server.py                     # stdio
    python tests/mcp_server.py --http PORT         # streamable HTTP on http://127.0.0.1:PORT/mcp

Tools: ``lookup`` (read-only: answers "<key> is blue"), ``write_note`` (changes things: needs approval;
appends to the file named by MCP_NOTES when set), ``broken`` (read-only, always fails), ``slow`` (read-only,
sleeps ``seconds`` then answers; writes MCP_STARTED's file first, so a test knows the call is running).
MCP_SECRET in the environment is echoed nowhere: a test checks that it never reaches the page or a log.

With MCP_HOLD set, the server says nothing until that file exists (a server slow to start, or, when the file
never comes, one that never answers); it writes MCP_STARTED's file first.

Over HTTP, with MCP_TOKEN set, every request must carry ``Authorization: Bearer <MCP_TOKEN>`` (else 401), and
each request's Authorization header is appended to the file named by MCP_SEEN (so a test knows what arrived).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("test-tools")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def lookup(key: str) -> str:
    """Look up the colour of a thing."""
    return f"{key} is blue"


@server.tool()
def write_note(text: str) -> str:
    """Write a note (changes things)."""
    notes = os.environ.get("MCP_NOTES")
    if notes:
        with open(notes, "a") as f:
            f.write(text + "\n")
    return f"noted: {text}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def broken(key: str) -> str:
    """Always fails."""
    raise ValueError(f"no record for {key}")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def slow(seconds: float) -> str:
    """Sleep, then answer."""
    started = os.environ.get("MCP_STARTED")
    if started:
        Path(started).write_text("started")
    time.sleep(seconds)
    return "slept"


def _guarded(app):
    """The HTTP app behind a bearer-token check (MCP_TOKEN), noting each request's Authorization (MCP_SEEN)."""
    token = os.environ.get("MCP_TOKEN")
    seen = os.environ.get("MCP_SEEN")

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization", b"").decode()
            if seen:
                with open(seen, "a") as f:
                    f.write(auth + "\n")
            if token and auth != f"Bearer {token}":
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on this loopback port instead of stdio")
    port = parser.parse_args().http
    hold = os.environ.get("MCP_HOLD")
    if hold and os.environ.get("MCP_STARTED"):
        Path(os.environ["MCP_STARTED"]).write_text("started")
    while hold and not os.path.exists(hold):
        time.sleep(0.05)
    if port is None:
        server.run("stdio")
    else:
        import uvicorn

        uvicorn.run(_guarded(server.streamable_http_app()), host="127.0.0.1", port=port, log_level="warning")
