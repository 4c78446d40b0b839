"""The one small interface every provider implements, the streamed Reply, and typed errors.

A provider turns (model, messages, system prompt, parameters) into a :class:`Reply`. Iterating the reply
drives the HTTP stream and yields text chunks; once the iteration ends (finished, failed or closed) the
reply exposes the full text, usage, finish reason, time to first token and duration.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Params:
    temperature: float | None = None
    max_tokens: int | None = None

    def as_dict(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


@dataclass
class Usage:
    """Token counts for one reply. ``input_tokens`` excludes cache reads/writes (Anthropic's convention);
    ``*_exact`` say whether the provider reported the figure (True) or it was estimated locally (False)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    input_exact: bool = False
    output_exact: bool = False

    @property
    def exact(self) -> bool:
        return self.input_exact and self.output_exact

    @property
    def total_tokens(self) -> int:
        return (
            (self.input_tokens or 0)
            + (self.output_tokens or 0)
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


# ---------------------------------------------------------------- typed errors


class ProviderError(Exception):
    """Base of every error a provider raises. ``hint`` is one sentence the UI can show as it is."""

    kind = "provider_error"
    retryable = False

    def __init__(self, detail: str = "", *, provider: str = "", retry_after: float | None = None,
                 status: int | None = None):
        super().__init__(detail or self.kind)
        self.detail = detail
        self.provider = provider
        self.retry_after = retry_after
        self.status = status

    @property
    def who(self) -> str:
        return self.provider or "The provider"

    @property
    def hint(self) -> str:
        return f"{self.who} returned an error. Try again, or switch model."


class MissingKey(ProviderError):
    kind = "missing_key"

    @property
    def hint(self) -> str:
        return (f"No API key is set for {self.who}. Add it to the environment or to "
                ".streamlit/secrets.toml, then reload.")


class AuthenticationFailed(ProviderError):
    kind = "authentication"

    @property
    def hint(self) -> str:
        return f"{self.who} rejected the API key. Check the key in your settings."


class PermissionDenied(ProviderError):
    kind = "permission"

    @property
    def hint(self) -> str:
        return f"Your key is not allowed to use this model on {self.who}. Pick another model or ask an admin."


class ModelNotFound(ProviderError):
    kind = "model_not_found"

    @property
    def hint(self) -> str:
        return f"{self.who} does not know this model. Pick another model in the sidebar."


class RateLimited(ProviderError):
    kind = "rate_limited"
    retryable = True

    @property
    def hint(self) -> str:
        wait = f"about {self.retry_after:.0f} s" if self.retry_after else "a moment"
        return f"{self.who} is rate-limiting your requests. Wait {wait} and retry."


class Overloaded(ProviderError):
    kind = "overloaded"
    retryable = True

    @property
    def hint(self) -> str:
        return f"{self.who} is overloaded right now. Try again in a minute, or switch model."


class ContextTooLong(ProviderError):
    kind = "context_too_long"

    @property
    def hint(self) -> str:
        return "The conversation is too long for this model. Shorten your message or start a new chat."


class Timeout(ProviderError):
    kind = "timeout"
    retryable = True

    @property
    def hint(self) -> str:
        return f"{self.who} took too long to answer. Retry, or pick a faster model."


class ConnectionLost(ProviderError):
    kind = "connection"
    retryable = True

    @property
    def hint(self) -> str:
        return f"The connection to {self.who} failed or dropped. Check the network or server, then retry."


class StreamError(ProviderError):
    """The provider reported an error after the reply had started streaming."""

    kind = "stream_error"
    retryable = True

    @property
    def hint(self) -> str:
        return (f"{self.who} failed in the middle of the reply. The partial text is kept; "
                "retry to get a full one.")


# ---------------------------------------------------------------- the streamed reply


class Reply:
    """A streamed reply. Subclasses implement :meth:`_stream` (yield text, update ``self.usage`` and
    ``self.finish_reason`` as the wire reports them), :meth:`_map_error` and :meth:`_close_stream`."""

    def __init__(self, provider: str, model: str):
        self.provider = provider
        self.model = model
        self.chunks: list[str] = []
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.started_at: float | None = None
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self.error: ProviderError | None = None
        self.closed = False
        self.completed = False
        self.attempts = 0  # HTTP attempts made for this reply (> 1: the SDK retried before streaming)
        self.failed_attempts = 0  # of which answered with a retryable status (429, 5xx, ...)
        self._iterating = False

    # -- what subclasses provide
    def _stream(self) -> Iterator[str]:
        raise NotImplementedError

    def _map_error(self, exc: BaseException) -> ProviderError:
        raise NotImplementedError

    def _close_stream(self) -> None:
        raise NotImplementedError

    # -- the public surface
    def __iter__(self) -> Iterator[str]:
        if self._iterating or self.completed:
            raise RuntimeError("a Reply can be iterated only once")
        self._iterating = True
        self.started_at = time.monotonic()
        from chat.providers import transport

        transport.driving(self)
        try:
            for text in self._stream():
                if self.closed:
                    break
                if not text:
                    continue
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                self.chunks.append(text)
                yield text
            else:
                self.completed = True
        except ProviderError as exc:
            self.error = self._midstream(exc)
            if self.error is exc:
                raise
            raise self.error from exc
        except Exception as exc:
            if self.closed:  # the transport errors that closing the stream provokes are not failures
                return
            mapped = self._map_error(exc)
            mapped.__cause__ = exc
            self.error = self._midstream(mapped)
            # keep the typed error in the chain: StreamError <- ConnectionLost <- the SDK's exception
            raise self.error from (exc if self.error is mapped else mapped)
        finally:
            transport.driving(None)
            self.finished_at = time.monotonic()
            self._close_quietly()

    def _midstream(self, err: ProviderError) -> ProviderError:
        """Once text has been shown, any failure is a mid-stream error of the same kind's message."""
        if self.chunks and not isinstance(err, StreamError):
            mid = StreamError(err.detail, provider=err.provider, status=err.status,
                              retry_after=err.retry_after)
            mid.__cause__ = err
            return mid
        return err

    def close(self) -> None:
        """Close the HTTP stream now; the server sees the disconnect at once."""
        self.closed = True
        self._close_quietly()
        if self.finished_at is None and self.started_at is not None:
            self.finished_at = time.monotonic()

    def _close_quietly(self) -> None:
        try:
            self._close_stream()
        except Exception:  # closing must never raise
            pass

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def time_to_first_token(self) -> float | None:
        if self.first_token_at is None or self.started_at is None:
            return None
        return self.first_token_at - self.started_at

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return end - self.started_at


class Provider(Protocol):
    """One configured provider (OpenAI, Anthropic, or a named OpenAI-compatible endpoint)."""

    name: str

    def stream(self, model: str, messages: list[Message], *, system: str | None = None,
               params: Params = Params()) -> Reply: ...
