"""The HTTP client both SDKs are given: it makes their pre-stream retries visible and bounded.

The SDKs retry 408/409/429/5xx and connection errors before streaming starts, honouring `retry-after`
(Anthropic's without any cap). Two event hooks on our own client, no SDK internals:
- every HTTP attempt of a call made with :func:`reporting_to`'s headers is reported to that call's callback
  (a reply counts them, so the page can say "retrying…", and refuses an attempt once it was closed: a Stop
  while the SDK waits to retry);
- a retryable response asking for a wait longer than ``max_retry_wait`` gets `x-should-retry: false`, so
  the SDK raises at once and the user is told how long to wait, instead of a silent multi-minute pause.

The only per-call channel from an SDK call to its HTTP client is the request's headers: the call carries a
key to its callback in one header, which the client takes off before the request leaves.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

from chat.providers.http_errors import retry_after_seconds

Attempted = Callable[[int | None], None]
"""Told of one call's HTTP attempts: ``None`` as each is about to be sent (raising refuses it), then the status
of each answer the SDK may retry."""

_HEADER = "x-chat-attempts-to"  # never sent: taken off by the request hook
_EXTENSION = "chat.attempted"
_callbacks: dict[str, Attempted] = {}
_keys = itertools.count()


def retryable(status: int) -> bool:
    """The statuses both SDKs retry: 408, 409, 429 and every 5xx (gateways' 502/504/524 included)."""
    return status in (408, 409, 429) or status >= 500


class ReplyClosed(Exception):
    """Raised instead of sending a (re)try for a reply that was closed meanwhile (a Stop during
    "retrying…"): no request reaches the provider after the user stopped."""


@contextmanager
def reporting_to(attempted: Attempted) -> Iterator[dict[str, str]]:
    """Headers for one SDK call (``extra_headers``) that have each of its HTTP attempts reported to
    ``attempted`` by a client from :func:`http_client`, until the block ends."""
    key = str(next(_keys))
    _callbacks[key] = attempted
    try:
        yield {_HEADER: key}
    finally:
        _callbacks.pop(key, None)


def _on_request(request: httpx2.Request) -> None:
    key = request.headers.pop(_HEADER, None)
    attempted = _callbacks.get(key) if key is not None else None
    if attempted is not None:
        request.extensions[_EXTENSION] = attempted  # for the response hook
        attempted(None)


def _bound_retry_wait(max_wait: float):
    def on_response(response: httpx2.Response) -> None:
        if retryable(response.status_code):
            attempted = response.request.extensions.get(_EXTENSION)
            if attempted is not None:
                attempted(response.status_code)  # the SDK may retry it: the page says so while it waits
            wait = retry_after_seconds(response.headers)
            if wait is not None and wait > max_wait:
                response.headers["x-should-retry"] = "false"

    return on_response


def http_client(sdk: Any, *, timeout: httpx2.Timeout, max_retry_wait: float) -> httpx2.Client:
    """``sdk.DefaultHttpxClient`` (the SDK's own defaults) with the two hooks."""
    return sdk.DefaultHttpxClient(
        timeout=timeout,
        event_hooks={"request": [_on_request], "response": [_bound_retry_wait(max_retry_wait)]},
    )


def hang_up(response: httpx2.Response | None) -> None:
    """Shut the response's socket down, so the server sees the disconnect at once.

    Closing an SDK stream only closes the response; while another thread is blocked reading it (the
    provider is silent: thinking before the first token, or stalled) the socket stays open until data
    arrives. shutdown() wakes that reader and sends the FIN now. Best effort: no socket, no harm."""
    if response is None:
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed
