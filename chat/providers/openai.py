"""OpenAI Chat Completions, streamed; also any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp).

Usage is asked for with ``stream_options={"include_usage": True}``: the last chunk (``choices == []``)
carries it. A stream that stops early never gets that chunk, so the usage stays inexact (None) and the
caller estimates it. The reply is finished when a choice reports its ``finish_reason``.

One choice is read. Relays and local runtimes that stream one choice may leave ``index`` out or count it up
with every chunk; a real second choice shows itself by an index coming back after another one appeared, and
from then on only the first is read.

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
from chat.providers._sdk import SDKReply, field
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
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._seen: list[int] = []  # choice indices in order of appearance
        self._several = False  # a real second choice showed itself

    def _open(self) -> Stream[ChatCompletionChunk]:
        return self._client.chat.completions.create(**self._kwargs)

    def _texts(self, stream: Stream[ChatCompletionChunk]) -> Iterator[str]:
        for chunk in stream:
            if chunk.usage is not None:
                self._take_usage(chunk.usage)
            for choice in self._ours(chunk.choices or []):
                if choice.finish_reason:
                    self._finish(choice.finish_reason)
                delta = choice.delta
                if delta is None:
                    continue
                for call in delta.tool_calls or []:
                    name = field(field(call, "function"), "name")
                    if name:
                        self.tool_calls.append(name)
                if delta.content:
                    yield delta.content
                refusal = getattr(delta, "refusal", None)
                if refusal:
                    self.finish_reason = self.finish_reason or "refusal"
                    yield refusal

    def _ours(self, choices: list) -> list:
        """The choices of a chunk that belong to the one choice read (see the module docstring)."""
        if len(choices) > 1:
            self._several = True
        ours = []
        for choice in choices:
            index = getattr(choice, "index", None)
            if index is None:
                ours.append(choice)
                continue
            if not self._several and self._seen and index in self._seen and index != self._seen[-1]:
                self._several = True  # an earlier index came back: the server streams several choices
            if index not in self._seen:
                self._seen.append(index)
            if not self._several or index == self._seen[0]:
                ours.append(choice)
        return ours[:1] if self._several else ours

    def _finish(self, reason: str) -> None:
        # a refusal streamed as text may end with "stop": the refusal is what the reply was
        if self.finish_reason != "refusal":
            self.finish_reason = reason
        self.provider_finished = True

    def _take_usage(self, usage: Any) -> None:
        details = field(usage, "prompt_tokens_details")
        cached = (field(details, "cached_tokens") or 0) if details is not None else 0
        self.usage.input_tokens = max(0, (field(usage, "prompt_tokens") or 0) - cached)
        self.usage.cache_read_tokens = cached
        self.usage.output_tokens = field(usage, "completion_tokens") or 0
        self.usage.input_exact = self.usage.output_exact = True
        cost = field(usage, "cost")  # OpenRouter reports what it billed
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
            self.usage.provider_cost = float(cost)

    def _whole_text(self, data: dict) -> str | None:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        message = choice.get("message") or {}
        if isinstance(data.get("usage"), dict):
            self._take_usage(data["usage"])
        for call in message.get("tool_calls") or []:
            name = field(field(call, "function") or {}, "name")
            if name:
                self.tool_calls.append(name)
        if message.get("refusal"):
            self.finish_reason = "refusal"
        if choice.get("finish_reason"):
            self._finish(choice["finish_reason"])
        return str(message.get("content") or message.get("refusal") or "")

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
