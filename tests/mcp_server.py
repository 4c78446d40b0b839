"""A real MCP server for the tests, built with the official SDK, spoken to over stdio::

    python tests/mcp_server.py

Tools: ``lookup`` (read-only: answers "<key> is blue"), ``write_note`` (changes things: needs approval;
appends to the file named by MCP_NOTES when set), ``broken`` (read-only, always fails), ``slow`` (read-only,
sleeps ``seconds`` then answers; writes MCP_STARTED's file first, so a test knows the call is running).
MCP_SECRET in the environment is echoed nowhere: a test checks that it never reaches the page or a log.
"""

from __future__ import annotations

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


if __name__ == "__main__":
    server.run("stdio")
