"""OpenAI: the Responses API for OpenAI itself, Chat Completions for every OpenAI-compatible endpoint (Ollama,
vLLM, llama.cpp, LM Studio, OpenRouter, DeepSeek), both streamed.

**Responses** (``api="responses"``, the default for the endpoint named "openai"): ``store=False`` (nothing
kept server-side), the system prompt as ``instructions``, ``max_output_tokens``, and for reasoning models
``reasoning={"effort": ..., "summary": "auto"}`` so the reasoning summary streams
(``response.reasoning_summary_text.delta``) before the answer (``response.output_text.delta``). Usage and
the end come with ``response.completed`` (finished) or ``response.incomplete`` (``incomplete_details.reason``:
``max_output_tokens`` is a cut, ``content_filter`` a block); a stream without either is unfinished. Input
tokens include cached ones (``input_tokens_details.cached_tokens``, taken out here); output tokens include
reasoning (``output_tokens_details.reasoning_tokens``). An ``error`` event or ``response.failed`` mid-stream
is a typed error.

**Chat Completions** (every other endpoint):

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

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from chat import attachments
from chat.providers.base import (
    ConnectionLost,
    Message,
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
from chat.providers.think_tags import ThinkTags

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
                 max_tokens_param: str | None = None, api: str | None = None,
                 reasons: Callable[[str], bool | None] | None = None):
        self.name = name
        self.client = client
        self.label = label or ("OpenAI" if name == "openai" else name)
        self.max_tokens_param = max_tokens_param or ("max_completion_tokens" if name == "openai" else "max_tokens")
        self.api = api or ("responses" if name == "openai" else "chat")
        if self.api not in ("responses", "chat"):
            raise ValueError(f"api must be 'responses' or 'chat', not {self.api!r}")
        self.reasons = reasons or (lambda model: None)  # whether a model reasons (None: unknown)

    def request(self, model: str, messages: list[Message], *, system: str | None = None,
                params: Params = NO_PARAMS, tools: list[ToolDef] | None = None) -> dict[str, Any]:
        """The keyword arguments of ``responses.create`` or ``chat.completions.create`` for this turn."""
        if self.api == "responses":
            return self.responses_request(model, messages, system=system, params=params, tools=tools)
        return self.chat_request(model, messages, system=system, params=params, tools=tools)

    def responses_request(self, model: str, messages: list[Message], *, system: str | None = None,
                          params: Params = NO_PARAMS, tools: list[ToolDef] | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": model, "input": _responses_input(messages), "stream": True,
                                  "store": False}
        if tools:
            kwargs["tools"] = [{"type": "function", "name": t.name, "description": t.description,
                                "parameters": t.parameters, "strict": False} for t in tools]
        if system:
            kwargs["instructions"] = system
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.max_tokens is not None:
            kwargs["max_output_tokens"] = params.max_tokens
        if params.reasoning_effort is not None or self.reasons(model):
            kwargs["reasoning"] = {"summary": "auto"} | (
                {"effort": params.reasoning_effort} if params.reasoning_effort is not None else {})
        return kwargs

    def chat_request(self, model: str, messages: list[Message], *, system: str | None = None,
                     params: Params = NO_PARAMS, tools: list[ToolDef] | None = None) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for this turn."""
        wire = [{"role": "system", "content": system}] if system else []
        wire += _chat_messages(messages)
        kwargs: dict[str, Any] = {"model": model, "messages": wire, "stream": True,
                                  "stream_options": {"include_usage": True}}
        if tools:
            kwargs["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                                 "parameters": t.parameters}} for t in tools]
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.max_tokens is not None:
            kwargs[self.max_tokens_param] = params.max_tokens
        if params.reasoning_effort is not None:
            kwargs["reasoning_effort"] = params.reasoning_effort
        return kwargs

    def stream(self, model: str, messages: list[Message], *, system: str | None = None,
               params: Params = NO_PARAMS, tools: list[ToolDef] | None = None) -> OpenAIReply | ResponsesReply:
        kwargs = self.request(model, messages, system=system, params=params, tools=tools)
        return (ResponsesReply if self.api == "responses" else OpenAIReply)(self, model, kwargs)


def _chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat Completions messages: tool calls on the assistant message, one ``tool`` message per result."""
    wire: list[dict[str, Any]] = []
    for m in messages:
        if m.tool_results:
            wire += [{"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in m.tool_results]
            if m.content:
                wire.append({"role": m.role, "content": m.content})
        elif m.tool_calls:
            wire.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls]})
        else:
            wire.append({"role": m.role, "content": chat_content(m)})
    return wire


def _responses_input(messages: list[Message]) -> list[dict[str, Any]]:
    """Responses input items: ``function_call`` items after the assistant's text, ``function_call_output``
    items for the results."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.tool_results:
            items += [{"type": "function_call_output", "call_id": r.call_id, "output": r.content}
                      for r in m.tool_results]
            if m.content:
                items.append({"role": m.role, "content": m.content})
            continue
        if m.content or m.attachments or not m.tool_calls:
            items.append({"role": m.role, "content": responses_content(m)})
        items += [{"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}
                  for c in m.tool_calls]
    return items


def responses_content(message: Message) -> str | list[dict]:
    """A message's content for the Responses API: its text as it is, or with attachments a list of parts:
    ``input_text`` (the words, then text files as fenced blocks), ``input_image`` (a data URL, downscaled,
    no metadata) and ``input_file`` (a PDF as base64 with its filename)."""
    if not message.attachments:
        return message.content
    text = attachments.with_texts(message.content, message.attachments)
    parts: list[dict] = [{"type": "input_text", "text": text}] if text.strip() else []
    for item in message.attachments:
        if item.kind == "image":
            media_type, data = attachments.image_for(item, "responses")
            parts.append({"type": "input_image", "image_url": attachments.data_url(media_type, data)})
        elif item.kind == "pdf":
            parts.append({"type": "input_file", "filename": item.name,
                          "file_data": attachments.data_url(attachments.PDF, item.data)})
    return parts


def chat_content(message: Message) -> str | list[dict]:
    """A message's content for Chat Completions: its text as it is, or with attachments a ``text`` part (the
    words, then text files and the PDFs' extracted text as fenced blocks: these servers take no files) and
    an ``image_url`` part per image (a data URL, downscaled, no metadata)."""
    if not message.attachments:
        return message.content
    parts: list[dict] = [{"type": "text", "text": attachments.with_texts(message.content, message.attachments,
                                                                         pdf_as_text=True)}]
    for item in message.attachments:
        if item.kind == "image":
            media_type, data = attachments.image_for(item, "chat")
            parts.append({"type": "image_url", "image_url": {"url": attachments.data_url(media_type, data)}})
    return parts


class OpenAIReply(SDKReply):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._seen: list[int] = []  # choice indices in order of appearance
        self._several = False  # a real second choice showed itself
        self._tags = ThinkTags()
        self._building: dict[int, dict[str, str]] = {}  # tool calls by index, as their deltas arrive

    def _open(self, **extra: Any) -> Stream[ChatCompletionChunk]:
        return self._client.chat.completions.create(**as_built({**self._kwargs, **extra}, "messages"))

    def _texts(self, stream: Stream[ChatCompletionChunk]) -> Iterator[str]:
        yield from self._chunks(stream)
        yield from self._tags.flush()
        self.calls = [ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"] or "{}")
                      for i, c in sorted(self._building.items()) if c["name"]]

    def _chunks(self, stream: Stream[ChatCompletionChunk]) -> Iterator[str]:
        for chunk in stream:
            if chunk.usage is not None:
                self._take_usage(chunk.usage)
            for choice in self._ours(chunk.choices or []):
                if choice.finish_reason:
                    self._finish(choice.finish_reason)
                delta = choice.delta
                if delta is None:
                    continue
                for position, call in enumerate(delta.tool_calls or []):
                    function = field(call, "function")
                    name = field(function, "name")
                    index = field(call, "index")
                    building = self._building.setdefault(index if isinstance(index, int) else position,
                                                         {"id": "", "name": "", "arguments": ""})
                    if field(call, "id"):
                        building["id"] = field(call, "id")
                    if name:
                        self.tool_calls.append(name)
                        building["name"] = name
                    building["arguments"] += field(function, "arguments") or ""
                thought = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
                if isinstance(thought, str) and thought:
                    yield Reasoning(thought)
                if delta.content:
                    yield from self._tags.feed(delta.content)
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
        completion = field(usage, "completion_tokens_details")
        reasoning = field(completion, "reasoning_tokens") if completion is not None else None
        self.usage.reasoning_tokens = reasoning if isinstance(reasoning, int) and reasoning > 0 else None
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
        for i, call in enumerate(message.get("tool_calls") or []):
            name = field(field(call, "function") or {}, "name")
            if name:
                self.tool_calls.append(name)
                self.calls.append(ToolCall(id=str(call.get("id") or f"call_{i}"), name=name,
                                           arguments=field(call["function"], "arguments") or "{}"))
        if message.get("refusal"):
            self.finish_reason = "refusal"
        if choice.get("finish_reason"):
            self._finish(choice["finish_reason"])
        thought = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(thought, str):
            self.think(thought)
        tags = ThinkTags()
        pieces = tags.feed(str(message.get("content") or message.get("refusal") or "")) + tags.flush()
        for piece in pieces:
            if isinstance(piece, Reasoning):
                self.think(piece)
        return "".join(p for p in pieces if not isinstance(p, Reasoning))

    def _map_error(self, exc: BaseException) -> ProviderError:
        return map_openai_error(exc, provider=self.provider, key=getattr(self._client, "api_key", None))


class ResponsesReply(SDKReply):
    """A reply over the Responses API (see the module docstring)."""

    def _open(self, **extra: Any) -> Any:
        return self._client.responses.create(**as_built({**self._kwargs, **extra}, "input"))

    def _texts(self, stream: Any) -> Iterator[str]:
        parts_seen: set[tuple[str, int]] = set()
        for event in stream:
            kind = getattr(event, "type", "")
            if kind == "response.output_text.delta":
                yield event.delta
            elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
                yield Reasoning(event.delta)
            elif kind == "response.reasoning_summary_part.added":
                key = (str(getattr(event, "item_id", "")), int(getattr(event, "summary_index", 0) or 0))
                if self.reasoning_chunks and key not in parts_seen:
                    yield Reasoning("\n\n")  # summaries come in parts: a paragraph each
                parts_seen.add(key)
            elif kind == "response.refusal.delta":
                self.finish_reason = "refusal"
                yield event.delta
            elif kind == "response.output_item.added":
                item = event.item
                if field(item, "type") in ("function_call", "custom_tool_call") and field(item, "name"):
                    self.tool_calls.append(field(item, "name"))
            elif kind == "response.output_item.done":
                item = event.item
                if field(item, "type") == "function_call" and field(item, "name"):
                    self.calls.append(ToolCall(id=field(item, "call_id") or field(item, "id") or "",
                                               name=field(item, "name"), arguments=field(item, "arguments") or "{}"))
            elif kind in ("response.completed", "response.incomplete"):
                self._take_response(event.response)
            elif kind == "response.failed":
                self._take_response(event.response)
                error = field(event.response, "error")
                raise _stream_error(field(error, "code"), field(error, "message") or "the response failed",
                                    provider=self.provider, key=getattr(self._client, "api_key", None))
            elif kind == "error":
                raise _stream_error(getattr(event, "code", None), getattr(event, "message", None) or "error",
                                    provider=self.provider, key=getattr(self._client, "api_key", None))

    def _take_response(self, response: Any) -> None:
        usage = field(response, "usage")
        if usage is not None:
            cached = field(field(usage, "input_tokens_details"), "cached_tokens") or 0
            self.usage.input_tokens = max(0, (field(usage, "input_tokens") or 0) - cached)
            self.usage.cache_read_tokens = cached
            self.usage.output_tokens = field(usage, "output_tokens") or 0
            reasoning = field(field(usage, "output_tokens_details"), "reasoning_tokens")
            self.usage.reasoning_tokens = reasoning if isinstance(reasoning, int) and reasoning > 0 else None
            self.usage.input_exact = self.usage.output_exact = True
            cost = field(usage, "cost")
            if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
                self.usage.provider_cost = float(cost)
        status = field(response, "status")
        if status == "completed":
            if self.finish_reason != "refusal":
                self.finish_reason = "tool_calls" if self.tool_calls else "stop"
            self.provider_finished = True
        elif status == "incomplete":
            reason = field(field(response, "incomplete_details"), "reason")
            self.finish_reason = reason or "incomplete"
            self.provider_finished = True

    def _whole_text(self, data: dict) -> str | None:
        output = data.get("output")
        if data.get("object") != "response" or not isinstance(output, list):
            return None
        texts = []
        for item in output:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "reasoning":
                self.think("\n\n".join(str(part.get("text") or "") for part in item.get("summary") or []
                                        if isinstance(part, dict)))
            elif item.get("type") == "message":
                for part in item.get("content") or []:
                    if isinstance(part, dict) and part.get("type") == "output_text":
                        texts.append(str(part.get("text") or ""))
                    elif isinstance(part, dict) and part.get("type") == "refusal":
                        self.finish_reason = "refusal"
                        texts.append(str(part.get("refusal") or ""))
            elif item.get("type") in ("function_call", "custom_tool_call") and item.get("name"):
                self.tool_calls.append(item["name"])
                if item.get("type") == "function_call":
                    self.calls.append(ToolCall(id=str(item.get("call_id") or item.get("id") or ""), name=item["name"],
                                               arguments=str(item.get("arguments") or "{}")))
        self._take_response(data)
        return "".join(texts)

    def _map_error(self, exc: BaseException) -> ProviderError:
        return map_openai_error(exc, provider=self.provider, key=getattr(self._client, "api_key", None))


_warming = threading.Lock()
_warm = False


def warm_up() -> None:
    """Read one Responses event through the SDK over an in-memory transport, once per process (a second
    caller waits for the first). The SDK builds its parser for the union of ~80 stream event types on first
    use (about a second): done in the app's background preload, and waited for before a comparison
    starts its columns, no reply's timing carries it (a column paying it would rank unfairly)."""
    global _warm
    with _warming:
        if _warm:
            return
        _warm_up()
        _warm = True


def _warm_up() -> None:
    body = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"x",'
            b'"item_id":"m","output_index":0,"content_index":0,"sequence_number":1}\n\n')

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with openai.OpenAI(api_key="warm-up", base_url="http://warm-up.invalid/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(answer))) as client:
        for _ in client.responses.create(model="warm-up", input="x", stream=True):
            pass


def _stream_error(code: Any, message: Any, *, provider: str, key: str | None) -> ProviderError:
    """The typed error of an ``error`` event or a failed response in the middle of a Responses stream."""
    code = str(code or "")
    detail = redact(f"{message}" + (f" ({code})" if code else ""), key)
    if code in _RATE_LIMIT_TYPES:
        return RateLimited(detail, provider=provider)
    if code in _OVERLOAD_TYPES:
        return Overloaded(detail, provider=provider)
    return StreamError(detail, provider=provider)


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
