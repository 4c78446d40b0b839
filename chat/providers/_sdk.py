"""What the two SDK adapters' replies share: a lazy request, a thread-safe close that hangs up at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from chat.providers import transport
from chat.providers.base import MissingKey, Reply


class SDKReply(Reply):
    """The HTTP request is made on the first iteration; the reply object itself costs nothing.
    Subclasses provide ``_open()`` (the SDK's streaming call) and ``_texts(stream)`` (text from its events,
    updating usage and finish reason)."""

    def __init__(self, provider: Any, model: str, kwargs: dict[str, Any]):
        super().__init__(provider.label, model)
        self._client = provider.client
        self._kwargs = kwargs
        self._sdk_stream: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        raise NotImplementedError

    def _texts(self, stream: Any) -> Iterator[str]:
        raise NotImplementedError

    def _stream(self) -> Iterator[str]:
        if self._client is None:
            raise MissingKey(f"no API key configured for {self.provider}", provider=self.provider)
        if self.closed:
            return
        stream = self._open()
        with self._lock:
            self._sdk_stream = stream
            closed_meanwhile = self.closed
        if closed_meanwhile:  # close() ran while the request was on its way
            stream.close()
            return
        yield from self._texts(stream)

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._sdk_stream = self._sdk_stream, None
        if stream is not None:
            if not self.completed:  # a finished response's connection goes back to the pool: leave it be
                transport.hang_up(getattr(stream, "response", None))
            stream.close()  # closes the HTTP response: the server sees the disconnect at once
