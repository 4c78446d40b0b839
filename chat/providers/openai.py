"""OpenAI Chat Completions, streamed; also any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp).

Usage is asked for with ``stream_options={"include_usage": True}``: the last chunk (``choices == []``)
carries it. A stream that stops early never gets that chunk, so the usage stays inexact (None) and the
caller estimates it.

The token limit goes out as ``max_completion_tokens`` to OpenAI itself (its reasoning models reject
``max_tokens``) and as ``max_tokens`` to every other endpoint (Ollama documents only ``max_tokens``;
vLLM and llama.cpp accept it too). ``max_tokens_param`` overrides the choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from chat.providers._common import error_for_status, looks_like_context_too_long, redact, retry_after_seconds
from chat.providers._sdk import SDKReply
from chat.providers.base import (
    ConnectionLost,
    Message,
    Overloaded,
    Params,
    ProviderError,
    RateLimited,
    StreamError,
    Timeout,
)

if TYPE_CHECKING:
    from openai import Stream
    from openai.types.chat import ChatCompletionChunk

NO_PARAMS = Params()  # Params is frozen: one shared default is safe
_RATE_LIMIT_TYPES = {"rate_limit_exceeded", "rate_limit_error", "requests", "tokens"}
_OVERLOAD_TYPES = {"overloaded", "overloaded_error", "server_overloaded", "engine_overloaded"}


class OpenAIProvider:
    """One OpenAI (or OpenAI-compatible) endpoint. ``client=None`` means no key is configured: iterating
    a reply then raises :class:`MissingKey`. ``label`` is the name errors and the UI show."""

    supports_temperature = True

    def __init__(self, name: str, client: openai.OpenAI | None, label: str | None = None, *,
                 max_tokens_param: str | None = None):
        self.name = name
        self.client = client
        self.label = label or ("OpenAI" if name == "openai" else name)
        self.max_tokens_param = max_tokens_param or ("max_completion_tokens" if name == "openai" else "max_tokens")

    def request(self, model: str, messages: list[Message], *, system: str | None = None,
                params: Params = NO_PARAMS) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for this turn."""
        wire = [{"role": "system", "content": system}] if system else []
        wire += [{"role": m.role, "content": m.content} for m in messages]
        kwargs: dict[str, Any] = {"model": model, "messages": wire, "stream": True,
                                  "stream_options": {"include_usage": True}}
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.max_tokens is not None:
            kwargs[self.max_tokens_param] = params.max_tokens
        return kwargs

    def stream(self, model: str, messages: list[Message], *, system: str | None = None,
               params: Params = NO_PARAMS) -> OpenAIReply:
        return OpenAIReply(self, model, self.request(model, messages, system=system, params=params))


class OpenAIReply(SDKReply):
    def _open(self) -> Stream[ChatCompletionChunk]:
        return self._client.chat.completions.create(**self._kwargs)

    def _texts(self, stream: Stream[ChatCompletionChunk]) -> Iterator[str]:
        for chunk in stream:
            if chunk.usage is not None:
                self._take_usage(chunk.usage)
            for choice in chunk.choices:
                if choice.index != 0:
                    continue
                if choice.finish_reason:
                    self.finish_reason = choice.finish_reason
                if choice.delta is not None and choice.delta.content:
                    yield choice.delta.content

    def _take_usage(self, usage: Any) -> None:
        details = getattr(usage, "prompt_tokens_details", None)
        cached = (getattr(details, "cached_tokens", None) or 0) if details is not None else 0
        self.usage.input_tokens = max(0, (usage.prompt_tokens or 0) - cached)
        self.usage.cache_read_tokens = cached
        self.usage.output_tokens = usage.completion_tokens or 0
        self.usage.input_exact = self.usage.output_exact = True

    def _map_error(self, exc: BaseException) -> ProviderError:
        return map_openai_error(exc, provider=self.provider, key=getattr(self._client, "api_key", None))


def map_openai_error(exc: BaseException, *, provider: str, key: str | None = None) -> ProviderError:
    """The typed error for an exception from the OpenAI SDK (or from httpx2 under it)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, (openai.APITimeoutError, httpx2.TimeoutException)):
        return Timeout(redact(str(exc), key) or "timed out", provider=provider)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx2.TimeoutException):
            return Timeout(redact(str(exc), key), provider=provider)
        detail = str(exc) + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")
        return ConnectionLost(redact(detail, key), provider=provider)
    if isinstance(exc, (httpx2.TransportError, httpx2.StreamError)):
        return ConnectionLost(redact(f"{type(exc).__name__}: {exc}", key), provider=provider)
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else exc.message
        code = body.get("code") or ""
        detail = redact(f"HTTP {exc.status_code}" + (f" {code}" if code else "") + f": {message}", key)
        if exc.status_code == 429 and code == "insufficient_quota":  # out of credit: waiting will not help
            return ProviderError(detail, provider=provider, status=429)
        return error_for_status(
            exc.status_code, detail, provider=provider, retry_after=retry_after_seconds(exc.response.headers),
            context_too_long=looks_like_context_too_long(code, message))
    if isinstance(exc, openai.APIError):  # an error sent inside the stream (HTTP 200)
        body = exc.body if isinstance(exc.body, dict) else {}
        kind = str(body.get("code") or body.get("type") or "")
        detail = redact(exc.message + (f" ({kind})" if kind else ""), key)
        if kind in _RATE_LIMIT_TYPES or body.get("type") in _RATE_LIMIT_TYPES:
            return RateLimited(detail, provider=provider)
        if kind in _OVERLOAD_TYPES or body.get("type") in _OVERLOAD_TYPES:
            return Overloaded(detail, provider=provider)
        return StreamError(detail, provider=provider)
    return ProviderError(redact(f"{type(exc).__name__}: {exc}", key), provider=provider)
