"""Anthropic Messages, streamed as raw events (``client.messages.create(stream=True)``).

Raw events rather than ``messages.stream(...)``: the raw SDK ``Stream`` is the HTTP response and its
``close()`` closes it at once, and there is no accumulated message we do not need.

Usage: ``message_start`` carries the exact input and cache tokens, so even a stopped reply keeps them;
``message_delta`` carries the cumulative output tokens (replace, never add). ``message_start``'s
``output_tokens`` (a placeholder, usually 1) is not taken: output stays None and inexact until
``message_delta`` arrives. Cache writes with a 1-hour lifetime (``cache_creation.ephemeral_1h_input_tokens``)
are kept apart, since they cost more. The reply is finished at ``message_stop``.

Several text blocks are separated by a blank line, as the provider's own clients show them.

Thinking: ``thinking`` blocks stream ``thinking_delta`` (yielded as :class:`Reasoning`) and a closing
``signature_delta`` (not needed: thinking is not sent back in later turns); a ``redacted_thinking`` block
marks the reply's reasoning as hidden by the provider. ``message_delta``'s
``usage.output_tokens_details.thinking_tokens`` is the reasoning within the output tokens. Thinking "on" is
sent as ``{"type": "adaptive", "display": "summarized"}``, or for a model that takes only a budget
(``thinking_mode(model) == "enabled"``) as ``{"type": "enabled", "budget_tokens": N}`` with N >= 1024 counted
in ``max_tokens`` (raised to fit when it is smaller); "off" as ``{"type": "disabled"}``; the effort as
``output_config={"effort": ...}``.

Prompt caching: a follow-up turn of a long conversation (at least :data:`CACHE_FROM_CHARS` characters in the
system prompt and messages, and an earlier exchange) asks for Anthropic's automatic caching with a top-level
``cache_control={"type": "ephemeral"}``: the API marks the request's last block, so this turn writes the
conversation to the cache and the next one reads it back (cache reads cost a tenth of input; the write costs
1.25× input, once). Shorter requests are sent unmarked: below the model's minimum (1,024 tokens and up) a
mark does nothing, and a one-off question would pay for a write it never reads.

No temperature: anthropic 2.x sends ``anthropic-version: 2026-10-21`` and has dropped the sampling
parameters from ``messages.create``; that API version answers 400 to ``temperature``/``top_p``/``top_k`` at
any value. ``Params.temperature`` is therefore ignored here (``supports_temperature`` is False).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2

from chat import attachments
from chat.providers.base import (
    ConnectionLost,
    Message,
    MissingKey,
    Overloaded,
    Params,
    ProviderError,
    RateLimited,
    Reasoning,
    StreamError,
    Timeout,
    ToolCall,
    ToolDef,
)
from chat.providers.http_errors import error_for_status, looks_like_context_too_long, redact, retry_after_seconds
from chat.providers.sdk_reply import SDKReply, as_built, field

if TYPE_CHECKING:
    from anthropic import Stream
    from anthropic.types import RawMessageStreamEvent

NO_PARAMS = Params()  # Params is frozen: one shared default is safe
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens
MIN_THINKING_BUDGET = 1024
CACHE_FROM_CHARS = 4 * 1024  # about 1,024 tokens, the smallest prompt Anthropic caches (more on some models)
CACHE_CONTROL = {"type": "ephemeral"}  # the 5-minute cache


def wants_cache(messages: list[Message], system: str | None) -> bool:
    """Whether a request is worth caching: a follow-up (an earlier user message) of a long conversation."""
    if sum(m.role == "user" for m in messages) < 2:
        return False
    return len(system or "") + sum(len(m.content) for m in messages) >= CACHE_FROM_CHARS


class AnthropicProvider:
    """Anthropic's Messages API. ``client=None`` means no key is configured: iterating a reply then
    raises :class:`MissingKey`."""

    supports_temperature = False

    def __init__(self, name: str = "anthropic", client: anthropic.Anthropic | None = None,
                 label: str | None = None, *, thinking_mode: Callable[[str], str | None] | None = None,
                 prompt_cache: bool = True):
        self.name = name
        self.client = client
        self.label = label or ("Anthropic" if name == "anthropic" else name)
        # "adaptive" or "enabled" (a budget), as the models API says per model; None: unknown (adaptive)
        self.thinking_mode = thinking_mode or (lambda model: None)
        self.prompt_cache = prompt_cache  # False: never ask for caching (to measure what caching saves)

    def request(self, model: str, messages: list[Message], *, system: str | None = None,
                params: Params = NO_PARAMS, tools: list[ToolDef] | None = None) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for this turn."""
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": [_wire_message(m) for m in messages],
            "max_tokens": params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                               for t in tools]
        if self.prompt_cache and wants_cache(messages, system):
            kwargs["cache_control"] = dict(CACHE_CONTROL)
        if params.thinking == "on":
            if self.thinking_mode(model) == "enabled":
                budget = max(MIN_THINKING_BUDGET, min(kwargs["max_tokens"] // 2, 16_000))
                if kwargs["max_tokens"] <= budget:
                    kwargs["max_tokens"] += budget  # the budget is counted in max_tokens
                kwargs["thinking"] = {"type": "enabled", "budget_tokens": budget}
            else:
                kwargs["thinking"] = {"type": "adaptive", "display": "summarized"}
        elif params.thinking == "off":
            kwargs["thinking"] = {"type": "disabled"}
        if params.reasoning_effort is not None:
            kwargs["output_config"] = {"effort": params.reasoning_effort}
        # params.temperature is not sent: see the module docstring
        return kwargs

    def stream(self, model: str, messages: list[Message], *, system: str | None = None,
               params: Params = NO_PARAMS, tools: list[ToolDef] | None = None) -> AnthropicReply:
        return AnthropicReply(self, model, self.request(model, messages, system=system, params=params, tools=tools))


def _arguments(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _wire_message(m: Message) -> dict[str, Any]:
    """A message as Anthropic takes it: ``tool_use`` blocks after the assistant's text, ``tool_result``
    blocks (before any text) in the user message that answers them."""
    if m.tool_results:
        blocks: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content, "is_error": r.is_error}
            for r in m.tool_results]
        if m.content:
            blocks.append({"type": "text", "text": m.content})
        return {"role": m.role, "content": blocks}
    if m.tool_calls:
        blocks = [{"type": "text", "text": m.content}] if m.content else []
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _arguments(c.arguments)}
                   for c in m.tool_calls]
        return {"role": m.role, "content": blocks}
    return {"role": m.role, "content": content(m)}


def content(message: Message) -> str | list[dict]:
    """A message's content: its text as it is, or with attachments a list of blocks: ``image`` and
    ``document`` (base64 PDF, titled with its name) blocks first, as Anthropic advises, then the words with
    text files as fenced blocks (no empty text block: the API refuses one)."""
    if not message.attachments:
        return message.content
    blocks: list[dict] = []
    for item in message.attachments:
        if item.kind == "image":
            media_type, data = attachments.image_for(item, "anthropic")
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": media_type,
                                                       "data": attachments.b64(data)}})
        elif item.kind == "pdf":
            blocks.append({"type": "document", "title": item.name,
                           "source": {"type": "base64", "media_type": attachments.PDF,
                                      "data": attachments.b64(item.data)}})
    text = attachments.with_texts(message.content, message.attachments)
    if text.strip():
        blocks.append({"type": "text", "text": text})
    return blocks


class AnthropicReply(SDKReply):
    def _open(self, **extra: Any) -> Stream[RawMessageStreamEvent]:
        return self._client.messages.create(**as_built({**self._kwargs, **extra}, "messages"))

    def _texts(self, stream: Stream[RawMessageStreamEvent]) -> Iterator[str]:
        new_block = False
        building: dict[int, list[str]] = {}  # tool_use blocks by index: [id, name, partial json]
        try:
            yield from self._events(stream, building, new_block)
        finally:
            self.calls = [ToolCall(id=b[0], name=b[1], arguments=b[2] or "{}") for _, b in sorted(building.items())]

    def _events(self, stream: Stream[RawMessageStreamEvent], building: dict[int, list[str]],
                new_block: bool) -> Iterator[str]:
        for event in stream:
            if event.type == "message_start":
                self._take_usage(event.message.usage, start=True)
            elif event.type == "content_block_start":
                block = event.content_block
                if block.type == "thinking":
                    if self.reasoning_chunks:
                        yield Reasoning("\n\n")
                    if getattr(block, "thinking", None):
                        yield Reasoning(block.thinking)
                elif block.type == "redacted_thinking":
                    self.reasoning_hidden = True
                elif block.type == "text":
                    new_block = bool(self.chunks)
                elif block.type in ("tool_use", "server_tool_use") and getattr(block, "name", None):
                    self.tool_calls.append(block.name)
                    if block.type == "tool_use":
                        building[event.index] = [block.id, block.name, ""]
            elif event.type == "content_block_delta":
                if event.delta.type == "input_json_delta" and event.index in building:
                    building[event.index][2] += event.delta.partial_json or ""
                    continue
                if event.delta.type == "thinking_delta" and event.delta.thinking:
                    yield Reasoning(event.delta.thinking)
                elif event.delta.type == "text_delta" and event.delta.text:
                    text = event.delta.text
                    if new_block and not text.startswith("\n") and not self.chunks[-1].endswith("\n\n"):
                        text = "\n\n" + text
                    new_block = False
                    yield text
            elif event.type == "message_delta":
                if event.delta.stop_reason:
                    self.finish_reason = event.delta.stop_reason
                self._take_usage(event.usage, start=False)
            elif event.type == "message_stop":
                self.provider_finished = True

    def _take_usage(self, usage: Any, *, start: bool) -> None:
        if usage is None:
            return
        u = self.usage
        # every figure is cumulative: a later event's value replaces the earlier one
        if field(usage, "input_tokens") is not None:
            u.input_tokens = field(usage, "input_tokens")
            u.input_exact = True
        if field(usage, "cache_read_input_tokens") is not None:
            u.cache_read_tokens = field(usage, "cache_read_input_tokens")
        if field(usage, "cache_creation_input_tokens") is not None:
            u.cache_write_tokens = field(usage, "cache_creation_input_tokens")
        creation = field(usage, "cache_creation")
        if creation is not None and field(creation, "ephemeral_1h_input_tokens") is not None:
            u.cache_write_1h_tokens = field(creation, "ephemeral_1h_input_tokens")
        if not start and field(usage, "output_tokens") is not None:
            u.output_tokens = field(usage, "output_tokens")
            u.output_exact = True
            thinking = field(field(usage, "output_tokens_details"), "thinking_tokens")
            if isinstance(thinking, int) and thinking > 0:
                u.reasoning_tokens = thinking

    def _whole_text(self, data: dict) -> str | None:
        content = data.get("content")
        if data.get("type") != "message" or not isinstance(content, list):
            return None
        if isinstance(data.get("usage"), dict):
            self._take_usage(data["usage"], start=False)
        texts = []
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and block.get("text"):
                texts.append(block["text"])
            elif block.get("type") == "thinking" and block.get("thinking"):
                self.think(str(block["thinking"]))
            elif block.get("type") == "redacted_thinking":
                self.reasoning_hidden = True
            elif block.get("type") in ("tool_use", "server_tool_use") and block.get("name"):
                self.tool_calls.append(block["name"])
                if block.get("type") == "tool_use":
                    self.calls.append(ToolCall(id=str(block.get("id") or ""), name=block["name"],
                                               arguments=json.dumps(block.get("input") or {})))
        if data.get("stop_reason"):
            self.finish_reason = data["stop_reason"]
            self.provider_finished = True
        return "\n\n".join(texts)

    def _map_error(self, exc: BaseException) -> ProviderError:
        return map_anthropic_error(exc, provider=self.provider, key=getattr(self._client, "api_key", None))


def _error_fields(body: object) -> tuple[str, str]:
    """(type, message) of an Anthropic error body ``{"type": "error", "error": {"type", "message"}}``."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("type") or ""), str(error.get("message") or "")
    return "", ""


def map_anthropic_error(exc: BaseException, *, provider: str, key: str | None = None) -> ProviderError:
    """The typed error for an exception from the Anthropic SDK, including the raw httpx2 errors it lets
    through in the middle of a stream."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, (anthropic.APITimeoutError, httpx2.TimeoutException)):
        return Timeout(redact(f"{type(exc).__name__}: {exc}", key), provider=provider)
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx2.TimeoutException):
            return Timeout(redact(str(exc), key), provider=provider)
        detail = str(exc) + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")
        return ConnectionLost(redact(detail, key), provider=provider)
    if isinstance(exc, (httpx2.TransportError, httpx2.StreamError)):
        return ConnectionLost(redact(f"{type(exc).__name__}: {exc}", key), provider=provider)
    if isinstance(exc, anthropic.APIStatusError):
        kind, message = _error_fields(exc.body)
        message = message or exc.message
        if exc.status_code == 200:  # an `event: error` in the middle of the stream
            detail = redact(f"{kind or 'error'}: {message}", key)
            if kind == "overloaded_error":
                return Overloaded(detail, provider=provider)
            if kind == "rate_limit_error":
                return RateLimited(detail, provider=provider)
            return StreamError(detail, provider=provider)
        detail = redact(f"HTTP {exc.status_code}" + (f" {kind}" if kind else "") + f": {message}", key)
        retry_after = retry_after_seconds(exc.response.headers)
        if kind == "overloaded_error":
            return Overloaded(detail, provider=provider, status=exc.status_code, retry_after=retry_after)
        return error_for_status(exc.status_code, detail, provider=provider, retry_after=retry_after,
                                context_too_long=looks_like_context_too_long(message))
    if isinstance(exc, anthropic.CredentialsError) or (
            isinstance(exc, TypeError) and "authentication method" in str(exc)):
        return MissingKey(redact(str(exc), key), provider=provider)
    return ProviderError(redact(f"{type(exc).__name__}: {exc}", key), provider=provider)
