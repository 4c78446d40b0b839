"""What the two SDK adapters' replies share: a lazy request, a thread-safe close that hangs up at once, and
the reading of a 200 answer that is not an event stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from chat.providers import transport
from chat.providers.base import MissingKey, NotAReply, Reply, ServerSaid
from chat.providers.http_errors import redact

MAX_DETAIL = 300  # characters of a server's own error text kept in a message


def field(obj: Any, name: str) -> Any:
    """``obj.name`` for SDK objects, ``obj[name]`` for plain JSON: the same parsing serves both paths."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def as_built(kwargs: dict[str, Any], key: str) -> dict[str, Any]:
    """``kwargs`` for an SDK ``create`` call with ``kwargs[key]`` (the conversation) sent exactly as built,
    as part of the request body (``extra_body``): the SDKs otherwise walk every message with typing
    introspection before sending, slow on a long conversation (README, Performance), and ours are plain JSON."""
    if key not in kwargs:
        return kwargs
    rest = dict(kwargs)
    value = rest.pop(key)
    return {**rest, key: [] if isinstance(value, list) else value,
            "extra_body": {**(rest.get("extra_body") or {}), key: value}}


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


class SDKReply(Reply):
    """The HTTP request is made on the first iteration; the reply object itself costs nothing.
    Subclasses provide ``_open()`` (the SDK's streaming call), ``_texts(stream)`` (text from its events,
    updating usage and finish reason) and ``_whole_text(data)`` (the same from a whole JSON answer, or None
    when ``data`` is not one)."""

    def __init__(self, provider: Any, model: str, kwargs: dict[str, Any]):
        super().__init__(provider.label, model)
        self._client = provider.client
        self._kwargs = kwargs
        self._sdk_stream: Any = None
        self._lock = threading.Lock()

    def _open(self, **extra: Any) -> Any:
        """The SDK's streaming call, with ``extra`` (``extra_headers``) added to its arguments."""
        raise NotImplementedError

    def _texts(self, stream: Any) -> Iterator[str]:
        raise NotImplementedError

    def _whole_text(self, data: dict) -> str | None:
        raise NotImplementedError

    def _stream(self) -> Iterator[str]:
        if self._client is None:
            raise MissingKey(f"no API key configured for {self.provider}", provider=self.provider)
        if self.closed:
            return
        with transport.reporting_to(self._attempted) as headers:
            stream = self._open(extra_headers=headers)  # the SDK's retries happen within this call
        with self._lock:
            self._sdk_stream = stream
            closed_meanwhile = self.closed
        if closed_meanwhile:  # close() ran while the request was on its way
            stream.close()
            return
        response = getattr(stream, "response", None)
        content_type = (response.headers.get("content-type") or "").lower() if response is not None else ""
        if content_type and "event-stream" not in content_type:
            # The SDK parses any body as server-sent events; a JSON or HTML body would read as an empty reply.
            body = response.read()
            stream.close()
            yield from self._not_streamed(body, content_type)
            return
        yield from self._texts(stream)

    def _attempted(self, status: int | None) -> None:
        """Told by the HTTP client of each attempt of the streaming call: counted, and refused once closed."""
        if status is not None:
            self.failed_attempts += 1
        elif self.closed:
            raise transport.ReplyClosed("the reply was closed before this attempt")
        else:
            self.attempts += 1

    def _not_streamed(self, body: bytes, content_type: str) -> Iterator[str]:
        """A 200 answer that is not an event stream: a whole reply, an error object, or not a reply at all."""
        key = getattr(self._client, "api_key", None)
        text = body.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error"):
            raise ServerSaid(redact(_snippet(_error_message(data)), key), provider=self.provider)
        if isinstance(data, dict):
            whole = self._whole_text(data)
            if whole is not None:
                if whole:
                    yield whole
                return
        web_page = "html" in content_type or text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))
        raise NotAReply(redact(_snippet(text) or "an empty answer", key), provider=self.provider,
                        web_page=web_page)

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._sdk_stream = self._sdk_stream, None
        if stream is not None:
            if not self.completed:  # a finished response's connection goes back to the pool: leave it be
                transport.hang_up(getattr(stream, "response", None))
            stream.close()  # closes the HTTP response: the server sees the disconnect at once


def _error_message(data: dict) -> str:
    """The message of an error object: OpenAI's ``{"error": {"message"}}``, Anthropic's ``{"type": "error",
    "error": {"type", "message"}}``, or a relay's ``{"error": "text"}``."""
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error if isinstance(error, str) else data.get("message") or error)
