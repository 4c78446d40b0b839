"""The HTTP client both SDKs are given: it makes their pre-stream retries visible and bounded.

The SDKs retry 408/409/429/5xx and connection errors before streaming starts, honouring `retry-after`
(Anthropic's without any cap). Two event hooks on our own client, no SDK internals:
- every HTTP attempt is counted on the Reply being driven by this thread, so the UI can say "retrying…",
  and none is sent once that Reply was closed (a Stop while the SDK waits to retry);
- a retryable response asking for a wait longer than ``max_retry_wait`` gets `x-should-retry: false`, so
  the SDK raises at once and the user is told how long to wait, instead of a silent multi-minute pause.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx2

from chat.providers._common import retry_after_seconds


def retryable(status: int) -> bool:
    """The statuses both SDKs retry: 408, 409, 429 and every 5xx (gateways' 502/504/524 included)."""
    return status in (408, 409, 429) or status >= 500
_current = threading.local()


def driving(reply: Any) -> None:
    """Attempts made by this thread from now on are counted on ``reply`` (None to stop)."""
    _current.reply = reply


class ReplyClosed(Exception):
    """Raised instead of sending a (re)try for a reply that was closed meanwhile (a Stop during
    "retrying…"): no request reaches the provider after the user stopped."""


def _on_request(request: httpx2.Request) -> None:
    reply = getattr(_current, "reply", None)
    if reply is not None:
        if reply.closed:
            raise ReplyClosed("the reply was closed before this attempt")
        reply.attempts += 1


def _bound_retry_wait(max_wait: float):
    def on_response(response: httpx2.Response) -> None:
        if retryable(response.status_code):
            reply = getattr(_current, "reply", None)
            if reply is not None:
                reply.failed_attempts += 1  # the SDK may retry it: the UI says so while it waits
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
