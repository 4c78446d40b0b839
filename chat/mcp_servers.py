"""The team's MCP servers: connected with the official ``mcp`` SDK, their tools listed (cached) and called.

Every call here runs on one background event loop (a daemon thread), so a page or a reply's thread can wait
for it, and a Stop can cancel it from any thread (:meth:`Call.cancel`). A tool call opens its own connection (a
stdio server is started for it and ended after it). A server's tools are listed in the background, at most
LIST_TIMEOUT, and cached until refreshed; whoever asks waits only as long as it chooses (a page a moment, then
shows the server as still connecting), so a server that never answers never holds a page run.

What a server says is data: a tool's result comes back as text (non-text content is described, never
fetched), and errors are typed (:class:`ServerUnavailable` when a server cannot start or answer, with a
sentence the page can show). A server's ``env`` and ``headers`` (its secrets) are used to connect and never
appear in a message: errors are worded from the server's name and the kind of failure, scrubbed of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from chat.config import McpServer

LIST_TIMEOUT = 20.0  # seconds a server may take to start and list its tools (in the background)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class ToolError(Exception):
    """Base of the errors of this module; ``hint`` is one sentence a page can show as it is."""

    @property
    def hint(self) -> str:
        return str(self)


class ServerUnavailable(ToolError):
    """A server could not be started, or did not answer."""

    def __init__(self, server: McpServer, detail: str):
        super().__init__(detail)
        self.server = server.name
        self.detail = _scrub(detail, server)

    @property
    def hint(self) -> str:
        return (f"The tool server {self.server!r} could not be reached ({self.detail}). "
                "The chat works without its tools; check its settings in secrets.toml, then refresh.")

    def __str__(self) -> str:
        return self.hint


@dataclass(frozen=True)
class ToolSpec:
    """One tool a server offers, as the model is told of it. ``wire_name`` is unique across servers and
    fits every provider's rule for function names."""

    server: str
    name: str
    description: str
    input_schema: dict
    read_only: bool

    @property
    def wire_name(self) -> str:
        return wire_name(self.server, self.name)


def wire_name(server: str, tool: str) -> str:
    return (_NAME_UNSAFE.sub("_", server) + "__" + _NAME_UNSAFE.sub("_", tool))[:64]


@dataclass
class ToolOutput:
    """What a tool call gave: its text (whole), and whether the server said it failed."""

    text: str
    is_error: bool = False


@dataclass
class Listing:
    """A server's tools, or why it has none (``error``), or ``pending``: still being listed."""

    tools: list[ToolSpec] = field(default_factory=list)
    error: ServerUnavailable | None = None
    at: float = 0.0
    pending: bool = False


def _scrub(text: str, server: McpServer) -> str:
    """``text`` without any of the server's configured secrets."""
    for secret in [*server.env.values(), *server.headers.values()]:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


class _HttpStatus(Exception):
    """A streamable-HTTP server answered with an error status (the SDK keeps only "an error response")."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status

    def __str__(self) -> str:
        why = {401: "not authorised: check its headers", 403: "forbidden: check its headers",
               404: "nothing at that url"}.get(self.status)
        return f"it answered HTTP {self.status}" + (f", {why}" if why else "")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _describe(inner)
    if isinstance(exc, _HttpStatus):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return "its command was not found"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "it did not answer in time"
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _output(result: Any) -> ToolOutput:
    parts = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(getattr(block, "text", ""))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', None) or getattr(block, 'mimeType', '')}, not shown]")
        elif kind in ("resource_link", "resource"):
            uri = getattr(block, "uri", "") or getattr(getattr(block, "resource", None), "uri", "")
            parts.append(f"[resource: {uri}]")
        else:
            parts.append(f"[{kind or 'content'}]")
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False))
    is_error = bool(getattr(result, "is_error", None) or getattr(result, "isError", None))
    return ToolOutput("\n".join(parts), is_error=is_error)


class _Loop:
    """One asyncio loop on a daemon thread, shared by every server connection of the process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def submit(self, coro) -> concurrent.futures.Future:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="mcp-loop", daemon=True).start()
                self._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, self._loop)


_loop = _Loop()


def _client(server: McpServer, statuses: list[int]):
    """A client for ``server``; an HTTP one notes each error status it receives in ``statuses``."""
    from mcp import Client, StdioServerParameters

    if server.command:
        import os

        env = {**os.environ, **server.env} if server.env else None
        return Client(StdioServerParameters(command=server.command, args=list(server.args), env=env),
                      mode="legacy", read_timeout_seconds=server.timeout)
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def note(response) -> None:
        if response.status_code >= 400:
            statuses.append(response.status_code)

    http = create_mcp_http_client(headers=dict(server.headers) or None)
    http.event_hooks = {"request": [], "response": [note]}
    return Client(streamable_http_client(server.url, http_client=http), mode="legacy",
                  read_timeout_seconds=server.timeout)


async def _list(server: McpServer) -> list[ToolSpec]:
    statuses: list[int] = []
    try:
        async with _client(server, statuses) as client:
            tools: list[ToolSpec] = []
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                for tool in page.tools:
                    annotations = getattr(tool, "annotations", None)
                    read_only = bool(getattr(annotations, "read_only_hint", None)
                                     or getattr(annotations, "readOnlyHint", None))
                    tools.append(ToolSpec(server=server.name, name=tool.name, description=tool.description or "",
                                          input_schema=dict(getattr(tool, "input_schema", None)
                                                            or getattr(tool, "inputSchema", None)
                                                            or {"type": "object", "properties": {}}),
                                          read_only=read_only))
                cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
                if not cursor:
                    return tools
    except Exception as exc:
        if statuses:
            raise _HttpStatus(statuses[-1]) from exc
        raise


async def _call(server: McpServer, tool: str, arguments: dict) -> ToolOutput:
    statuses: list[int] = []
    try:
        async with _client(server, statuses) as client:
            return _output(await client.call_tool(tool, arguments))
    except Exception as exc:
        if statuses:
            raise _HttpStatus(statuses[-1]) from exc
        raise


class Call:
    """A tool call under way on the background loop: :meth:`result` waits for it, :meth:`cancel` ends it
    (the connection closes; a stdio server is stopped)."""

    def __init__(self, server: McpServer, tool: str, arguments: dict):
        self.server = server
        self.started = time.monotonic()
        self._future = _loop.submit(asyncio.wait_for(_call(server, tool, arguments), server.timeout))

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> None:
        self._future.cancel()

    def result(self, timeout: float | None = None) -> ToolOutput:
        """The tool's output; raises ServerUnavailable when the server could not be reached or timed out,
        concurrent.futures.CancelledError when cancelled, TimeoutError when ``timeout`` passed first."""
        try:
            return self._future.result(timeout)
        except (concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
            raise
        except Exception as exc:  # the server failed to start, died, or broke the protocol
            raise ServerUnavailable(self.server, _describe(exc)) from None


class Toolbox:
    """The configured servers, their tool listings (made in the background, cached until :meth:`refresh`), and
    calls to them. ``wait``: how long :meth:`listing` and :meth:`tools` wait for a listing under way by default
    (a page passes a moment; the default waits for the listing to settle)."""

    def __init__(self, servers: tuple[McpServer, ...] | list[McpServer], *, wait: float = LIST_TIMEOUT + 5):
        self.servers = {s.name: s for s in servers}
        self.wait = wait
        self._listings: dict[str, Listing] = {}
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._lock = threading.RLock()  # a listing that settles at once calls back under it

    def _settle(self, name: str, future: concurrent.futures.Future) -> None:
        """Keep what a finished listing gave, unless a refresh replaced it meanwhile."""
        if future.cancelled():
            listing = None
        elif (exc := future.exception()) is not None:
            listing = Listing(error=ServerUnavailable(self.servers[name], _describe(exc)), at=time.time())
        else:
            listing = Listing(tools=future.result(), at=time.time())
        with self._lock:
            if self._pending.get(name) is future:
                del self._pending[name]
                if listing is not None:
                    self._listings[name] = listing

    def listing(self, name: str, *, refresh: bool = False, wait: float | None = None) -> Listing:
        """The server's tools, listed once and cached; a failure is cached too (refresh to try again). A
        listing not done within ``wait`` seconds goes on in the background: a pending Listing is returned."""
        if refresh:
            self.refresh(name)
        server = self.servers[name]
        with self._lock:
            cached = self._listings.get(name)
            if cached is not None:
                return cached
            future = self._pending.get(name)
            if future is None:
                future = self._pending[name] = _loop.submit(asyncio.wait_for(_list(server), LIST_TIMEOUT))
                future.add_done_callback(lambda f: self._settle(name, f))
        try:
            future.result(self.wait if wait is None else wait)
        except BaseException:  # still under way, failed or cancelled: told apart below
            pass
        if not future.done():
            return Listing(pending=True)
        self._settle(name, future)  # its callback may not have run yet
        with self._lock:
            return self._listings.get(name) or Listing(pending=True)

    def refresh(self, name: str | None = None) -> None:
        """Forget the listings (all, or ``name``'s), also those under way: the next ask lists again."""
        with self._lock:
            names = [name] if name is not None else [*self._listings, *self._pending]
            for each in names:
                self._listings.pop(each, None)
                future = self._pending.pop(each, None)
                if future is not None:
                    future.cancel()

    def tools(self, names: list[str] | tuple[str, ...], *, wait: float | None = None
              ) -> tuple[list[ToolSpec], list[ServerUnavailable], list[str]]:
        """The tools of the chosen servers, the errors of those that could not be listed, and the names of
        those still being listed (each waited for at most ``wait``, all together)."""
        tools: list[ToolSpec] = []
        errors: list[ServerUnavailable] = []
        pending: list[str] = []
        deadline = time.monotonic() + (self.wait if wait is None else wait)
        for name in names:
            if name not in self.servers:
                continue
            listing = self.listing(name, wait=max(0.0, deadline - time.monotonic()))
            tools += listing.tools
            if listing.error is not None:
                errors.append(listing.error)
            if listing.pending:
                pending.append(name)
        return tools, errors, pending

    def needs_approval(self, spec: ToolSpec) -> bool:
        server = self.servers.get(spec.server)
        return not spec.read_only and not (server is not None and server.trust)

    def call(self, spec: ToolSpec, arguments: dict) -> Call:
        return Call(self.servers[spec.server], spec.name, arguments)
