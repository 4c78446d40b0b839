"""A fake LLM provider: a local HTTP server that speaks the streaming wire formats of OpenAI Chat
Completions (``POST /v1/chat/completions``) and Anthropic Messages (``POST /v1/messages``).

Standard library only, so it runs in-process (tests) and as a subprocess (browser tests, benchmarks)::

    with FakeProvider() as server:                     # free loopback port, daemon thread
        server.set_scenario("slow-model", tokens_per_second=20, first_token_delay=0.2)
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="test-key")

    python tests/fake_provider.py --port 8765          # prints "READY http://127.0.0.1:8765"

Scenarios are plain knobs (see ``DEFAULT_KNOBS``), set for one model name or as the default
(``model=None``). The effective scenario of a request is the built-in defaults, updated by the default
scenario, updated by the scenario of the request's model. ``set_scenario`` replaces what was set for
that key; an unknown knob name raises ``ValueError`` (HTTP 400 over ``/_control/scenario``).

Reply text, when ``text`` is not set: ``"Echo: <last user message>"`` followed by filler words until the
reply has ``words`` tokens. A token is one word with its leading whitespace; each token is one streamed
chunk. Reported counts, unless ``input_tokens`` / ``output_tokens`` are set: input = the number of
whitespace-separated words in the system prompt and all messages; output = the number of chunks
sent. ``input_tokens`` is the uncached input (Anthropic's convention): the OpenAI format reports
``prompt_tokens = input_tokens + cache_read_tokens`` with ``cached_tokens = cache_read_tokens``.

If the request sets ``max_tokens`` / ``max_completion_tokens`` below the reply's length, the reply is cut
and ends with ``finish_reason="length"`` (OpenAI) / ``stop_reason="max_tokens"`` (Anthropic).

Imperfect servers (knobs below ``ping_every``): a stream that ends cleanly mid-answer (``end_after``,
with ``framing="close"`` an HTTP/1.0-style body delimited by the socket closing), a ``200`` that is not a
stream (``body``), gateway error pages (``error_html``), choices without an index or counting up
(``choice_index``), UTF-16 surrogate halves in separate chunks (``split_surrogates``), several Anthropic
text blocks, tool calls in both formats, refusals, OpenRouter's ``usage.cost`` and Anthropic's 1-hour cache
writes.

A prompt cache (knob ``prompt_cache``): an Anthropic request carrying ``cache_control`` writes its prefix up to
the mark (the last block for the top-level form) and reports as read the longest prefix an earlier request
wrote, counted in words like every figure here; ``reset()`` empties it.

Control over HTTP (for a subprocess server), no authentication:
``POST /_control/scenario`` ``{"model": null | "name", <knob>: value, ...}``, ``GET /_control/scenario``,
``POST /_control/reset``, ``GET /_control/log`` (optional ``?kind=disconnect``), ``GET /_control/health``.

Log events are dicts with ``kind``, ``t`` (time.monotonic()), ``wall`` (time.time()), ``request`` (a
serial number) and ``model``. Kinds: ``request`` (path, protocol, stream, body, headers with auth values
redacted, auth_header, auth_ok), ``status_error`` (status), ``chunk`` (n, text), ``ping``,
``midstream_error`` (chunks), ``stall`` (chunks), ``drop`` (chunks), ``complete`` (chunks,
finish_reason; logged just before the last write, so a client that has read the whole reply finds it),
``disconnect`` (chunks, planned, during). The server notices a client that closes the
connection while it waits between chunks (select + recv(MSG_PEEK) == b"") within a few milliseconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import select
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_KEY = "test-key"

DEFAULT_KNOBS: dict[str, Any] = {
    # what the reply says
    "text": None,  # exact reply text; None -> "Echo: <last user message>" + filler words
    "words": 20,  # tokens (chunks) in the default text
    "finish_reason": None,  # None -> "stop" (OpenAI) / "end_turn" (Anthropic), or "length"/"max_tokens"
    # pacing
    "tokens_per_second": None,  # None or 0 -> as fast as possible
    "first_token_delay": 0.0,  # seconds between the stream's preamble and the first text chunk
    "headers_delay": 0.0,  # seconds before the response status line (a slow server / pre-stream timeout)
    # usage
    "include_usage": True,  # False: OpenAI never sends the usage chunk; Anthropic omits message_delta
    "input_tokens": None,  # None -> words in system + messages
    "output_tokens": None,  # None -> chunks sent
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,  # Anthropic only (cache_creation_input_tokens)
    # authentication: the expected key, checked in "Authorization: Bearer" or "x-api-key"; None: no check
    "api_key": DEFAULT_KEY,
    # an error instead of the stream
    "status": None,  # 400, 401, 403, 404, 413, 429, 500, 503, 529, ... in the provider's error format
    "context_too_long": False,  # with status None or 400: the provider's context-length 400
    "error_type": None,  # override the error body's type
    "error_code": None,  # override the OpenAI error body's code
    "error_message": None,  # override the error body's message
    "retry_after": None,  # value of a retry-after header on the error response
    "fail_times": None,  # fail only the first N requests of this scenario, then stream normally
    # trouble during the stream, after N text chunks (0 = before the first one)
    "error_after": None,  # an error event (Anthropic) / error data line (OpenAI), then a clean end
    "drop_after": None,  # close the socket abruptly, in the middle of the chunked body
    "stall_after": None,  # stop sending and keep the connection open
    "stall_for": None,  # seconds the stall lasts before streaming resumes; None -> until the client leaves
    "split_utf8": False,  # split every chunk holding a multi-byte character across two network writes
    "split_delay": 0.02,  # seconds between the two halves
    "ping_every": None,  # an extra ping (Anthropic event / OpenAI SSE comment) every N chunks
    # shapes real servers and relays send besides the documented happy path
    "end_after": None,  # after N text chunks end the body cleanly: no finish, no usage, no [DONE]/message_stop
    "framing": "chunked",  # "chunked", or "close": no Transfer-Encoding, the body ends when the socket closes
    "body": None,  # answer a streaming request with 200 and: "json" (a whole completion/message),
    #                "json_error" (an error object), "html" (a sign-in page), "text" (plain text)
    "error_html": False,  # with status: the error body is a gateway's HTML page (nginx / Cloudflare)
    "choice_index": "normal",  # OpenAI: "missing" (no index), "counting" (0, 1, 2, ... per chunk), or
    #                            "second" (a real second choice, "SECOND …", interleaved)
    "split_surrogates": False,  # a character outside the BMP is sent as two chunks, one UTF-16 half each
    "text_blocks": None,  # Anthropic: a list of texts, each streamed as its own text block
    "tool_call": None,  # {"name": ..., "arguments": {...}}: the model asks for a tool after its text
    "refusal": None,  # OpenAI: this text streamed as delta.refusal; both: finish "refusal" unless set
    "usage_cost": None,  # OpenAI format: usage.cost in USD (OpenRouter)
    "cache_write_1h_tokens": 0,  # Anthropic: of cache_write_tokens, written with a 1-hour lifetime
    # a prompt cache, used when cache_read_tokens, cache_write_tokens and input_tokens are not set:
    # "marked": an Anthropic request with cache_control (top-level, or on a block) writes its prefix up to the
    #   mark and reads the longest prefix an earlier request wrote; "auto": every request, in both formats,
    #   as OpenAI's automatic caching does (OpenAI reports no writes); "off": nothing is cached
    "prompt_cache": "marked",
    "cache_min_tokens": 0,  # a prefix shorter than this (in words) is not cached
    # reasoning (thinking) streamed before the answer; trouble knobs count its chunks too
    "reasoning": None,  # the reasoning text; each of its tokens is one chunk, paced like the text
    "reasoning_shape": "native",  # Responses: summary events; Anthropic: a thinking block; Chat Completions:
    #                               "native"/"reasoning_content" (delta.reasoning_content, DeepSeek),
    #                               "reasoning" (delta.reasoning, vLLM/OpenRouter/Ollama), or "think_tags"
    #                               (<think>…</think> at the start of delta.content, no reasoning parser)
    "reasoning_tokens": None,  # reported reasoning tokens (within output); None -> reasoning chunks sent
    "think_split": None,  # think_tags: content re-cut into pieces of this many characters (tags split too)
    "redacted_thinking": False,  # Anthropic: a redacted_thinking block before the text
    # GET /v1/models (both formats; the default scenario's knobs apply)
    "models": None,  # the ids listed, or {"openai": [...], "anthropic": [...]}; None -> MODELS_LISTED
    "models_status": None,  # answer GET /v1/models with this error status instead
}

MODELS_LISTED = {"openai": ["gpt-4o-mini", "gpt-5-mini"], "anthropic": ["claude-haiku-4-5", "claude-sonnet-4-5"]}
ANTHROPIC_CAPABILITIES = {  # what Anthropic's models API reports, per listed model (others: no thinking)
    "claude-sonnet-4-5": {"thinking": True, "effort": True, "max_input_tokens": 200_000, "max_tokens": 64_000},
    "claude-haiku-4-5": {"thinking": True, "effort": False, "max_input_tokens": 200_000, "max_tokens": 64_000},
}

FILLER = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
          "labore et dolore magna aliqua").split()

_AUTH_HEADERS = ("authorization", "x-api-key", "api-key")
_POLL = 0.05  # the longest a waiting handler goes without checking the stop and reset flags


class _Gone(Exception):
    """The client closed the connection (or the server is stopping / was reset)."""


def _tokens(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+$", text)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _messages(body: dict) -> list:
    """The request's messages: ``messages`` (Chat Completions, Anthropic) or ``input`` (Responses)."""
    found = body.get("messages")
    if found is None:
        found = body.get("input")
        if isinstance(found, str):
            found = [{"role": "user", "content": found}]
    return [m for m in found or [] if isinstance(m, dict)]


def _count_words(body: dict) -> int:
    words = len(_content_text(body.get("system") or body.get("instructions") or "").split())
    for message in _messages(body):
        words += len(_content_text(message.get("content")).split())
    return words


def _cache_blocks(body: dict) -> list[tuple[str, str, bool]]:
    """(role, text, marked) of every block a prompt cache covers, in order: the system prompt, then each
    message's content blocks (``instructions`` and ``input`` for Responses). ``marked``: the block carries
    ``cache_control``."""
    blocks: list[tuple[str, str, bool]] = []
    system = body.get("system") or body.get("instructions")  # Responses: instructions
    if isinstance(system, str) and system:
        blocks.append(("system", system, False))
    elif isinstance(system, list):
        blocks += [("system", b.get("text", ""), bool(b.get("cache_control"))) for b in system if isinstance(b, dict)]
    for message in _messages(body):  # Responses: input
        content, role = message.get("content"), str(message.get("role"))
        if isinstance(content, str):
            blocks.append((role, content, False))
        elif isinstance(content, list):
            blocks += [(role, b.get("text", ""), bool(b.get("cache_control"))) for b in content if isinstance(b, dict)]
    return blocks


def default_text(body: dict, words: int) -> str:
    last_user = ""
    for message in _messages(body):
        if message.get("role") == "user":
            last_user = _content_text(message.get("content"))
    text = f"Echo: {last_user}".rstrip()
    have = len(_tokens(text))
    filler = [FILLER[i % len(FILLER)] for i in range(max(0, words - have))]
    return " ".join([text, *filler]) if filler else text


# ---------------------------------------------------------------- error bodies


def _openai_error(status: int, knobs: dict, model: str, key: str | None) -> dict:
    if status == 400 and knobs["context_too_long"]:
        err = ("This model's maximum context length is 128000 tokens. However, your messages resulted in "
               "131072 tokens. Please reduce the length of the messages.", "invalid_request_error",
               "context_length_exceeded")
    else:
        err = {
            400: ("Invalid value for 'temperature': must be between 0 and 2.", "invalid_request_error", None),
            # like the real API it echoes the key it got (real: masked): the adapters must not show it
            401: (f"Incorrect API key provided: {key}. You can find your API key at "
                  "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
            403: (f"Project does not have access to model {model}.", "invalid_request_error",
                  "model_not_found"),
            404: (f"The model `{model}` does not exist or you do not have access to it.",
                  "invalid_request_error", "model_not_found"),
            429: (f"Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1. "
                  "Please try again in 20s.", "requests", "rate_limit_exceeded"),
            500: ("The server had an error while processing your request. Sorry about that!",
                  "server_error", None),
            503: ("The engine is currently overloaded, please try again later.", "server_error", None),
        }.get(status, (f"Error {status}", "server_error" if status >= 500 else "invalid_request_error", None))
    message, type_, code = err
    return {"error": {"message": knobs["error_message"] or message, "type": knobs["error_type"] or type_,
                      "param": None, "code": knobs["error_code"] or code}}


def _anthropic_error(status: int, knobs: dict, model: str) -> dict:
    if status == 400 and knobs["context_too_long"]:
        type_, message = "invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"
    else:
        type_, message = {
            400: ("invalid_request_error", "temperature: range: 0..1"),
            401: ("authentication_error", "invalid x-api-key"),
            403: ("permission_error", "Your API key does not have permission to use the specified resource."),
            404: ("not_found_error", f"model: {model}"),
            413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
            429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
            500: ("api_error", "Internal server error"),
            503: ("api_error", "Service unavailable"),
            529: ("overloaded_error", "Overloaded"),
        }.get(status, ("api_error" if status >= 500 else "invalid_request_error", f"Error {status}"))
    return {"type": "error", "error": {"type": knobs["error_type"] or type_,
                                       "message": knobs["error_message"] or message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}"}


# ---------------------------------------------------------------- wire formats


class _OpenAIWire:
    protocol = "openai"

    def __init__(self, body: dict, knobs: dict):
        self.model = body.get("model", "")
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.usage_wanted = bool((body.get("stream_options") or {}).get("include_usage"))
        self.send_usage = self.usage_wanted and knobs["include_usage"]
        self.limit = body.get("max_completion_tokens") or body.get("max_tokens")
        self.knobs = knobs
        self.sent = 0  # choice chunks sent (the "counting" index)

    def _chunk(self, choices: list, **extra: Any) -> bytes:
        data = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": "fp_fake", "choices": choices, **extra}
        if self.usage_wanted and "usage" not in extra:
            data["usage"] = None
        return _sse(data)

    def _choice(self, delta: dict, finish_reason: str | None = None, index: int = 0) -> dict:
        mode = self.knobs["choice_index"]
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        if mode == "missing":
            del choice["index"]
        elif mode == "counting":
            choice["index"] = self.sent
        self.sent += 1
        return choice

    def preamble(self, usage: dict) -> list[bytes]:
        delta = {"role": "assistant", "content": "", "refusal": None}
        frames = [self._chunk([self._choice(delta)])]
        if self.knobs["choice_index"] == "second":  # an n=2 stream opens each choice before any text
            frames.append(self._chunk([{"index": 1, "delta": delta, "logprobs": None, "finish_reason": None}]))
        return frames

    def text(self, text: str, new_block: bool = False) -> bytes:
        key = "refusal" if self.knobs["refusal"] is not None else "content"
        frame = self._chunk([self._choice({key: text})])
        if self.knobs["choice_index"] == "second":  # what another choice of an n=2 request would say
            frame += self._chunk([{"index": 1, "delta": {"content": " SECOND"}, "logprobs": None,
                                   "finish_reason": None}])
        return frame

    def reasoning(self, text: str) -> bytes:
        key = "reasoning" if self.knobs["reasoning_shape"] == "reasoning" else "reasoning_content"
        return self._chunk([self._choice({key: text})])

    def ping(self) -> bytes:
        return b": ping\n\n"

    def error(self, knobs: dict) -> bytes:
        message = knobs["error_message"] or "The server had an error while processing your request."
        return _sse({"error": {"message": message, "type": knobs["error_type"] or "server_error",
                               "param": None, "code": knobs["error_code"]}})

    def _tool_frames(self) -> list[bytes]:
        call = self.knobs["tool_call"]
        if not call:
            return []
        arguments = json.dumps(call.get("arguments") or {})
        first = {"tool_calls": [{"index": 0, "id": "call_" + uuid.uuid4().hex[:12], "type": "function",
                                 "function": {"name": call["name"], "arguments": ""}}]}
        frames = [self._chunk([self._choice(first)])]
        for i in range(0, len(arguments), 8):  # the arguments arrive in pieces, as they do for real
            piece = {"tool_calls": [{"index": 0, "function": {"arguments": arguments[i:i + 8]}}]}
            frames.append(self._chunk([self._choice(piece)]))
        return frames

    def _usage(self, usage: dict) -> dict:
        prompt = usage["input_tokens"] + usage["cache_read_tokens"]
        data = {"prompt_tokens": prompt, "completion_tokens": usage["output_tokens"],
                "total_tokens": prompt + usage["output_tokens"],
                "prompt_tokens_details": {"cached_tokens": usage["cache_read_tokens"], "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"], "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        if self.knobs["usage_cost"] is not None:
            data["cost"] = self.knobs["usage_cost"]
        return data

    def epilogue(self, finish_reason: str, usage: dict) -> list[bytes]:
        frames = self._tool_frames()
        frames.append(self._chunk([self._choice({}, finish_reason)]))
        if self.send_usage:
            frames.append(self._chunk([], usage=self._usage(usage)))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def default_finish(self, cut: bool) -> str:
        if cut:
            return "length"
        if self.knobs["tool_call"]:
            return "tool_calls"
        return "refusal" if self.knobs["refusal"] is not None else "stop"

    def whole(self, text: str, finish_reason: str, usage: dict) -> dict:
        refused = self.knobs["refusal"] is not None
        message: dict = {"role": "assistant", "content": None if refused else text,
                         "refusal": text if refused else None}
        if self.knobs["reasoning"] and self.knobs["reasoning_shape"] != "think_tags":
            key = "reasoning" if self.knobs["reasoning_shape"] == "reasoning" else "reasoning_content"
            message[key] = self.knobs["reasoning"]
        if self.knobs["tool_call"]:
            call = self.knobs["tool_call"]
            message["tool_calls"] = [{"id": "call_1", "type": "function", "function": {
                "name": call["name"], "arguments": json.dumps(call.get("arguments") or {})}}]
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
                "usage": self._usage(usage)}

    def error_body(self, knobs: dict, model: str) -> dict:
        return {"error": {"message": knobs["error_message"] or f"model '{model}' not found",
                          "type": knobs["error_type"] or "invalid_request_error", "param": None,
                          "code": knobs["error_code"] or "model_not_found"}}


class _ResponsesWire:
    """OpenAI's Responses API stream (``POST /v1/responses``): typed events, a reasoning item with summary
    deltas before the message item, usage and the final status in ``response.completed`` /
    ``response.incomplete``."""

    protocol = "responses"

    def __init__(self, body: dict, knobs: dict):
        self.model = body.get("model", "")
        self.id = f"resp_{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.send_usage = knobs["include_usage"]
        self.limit = body.get("max_output_tokens")
        self.knobs = knobs
        self.seq = 0
        self.index = -1  # output_index of the item being streamed
        self.open: str | None = None  # "reasoning" or "message": the item open now
        self.item_id = ""
        self.sent: dict[str, list[str]] = {"reasoning": [], "message": []}

    def _event(self, type_: str, **data: Any) -> bytes:
        self.seq += 1
        return _sse({"type": type_, "sequence_number": self.seq, **data}, type_)

    def _response(self, status: str, usage: dict | None = None, reason: str | None = None) -> dict:
        output = []
        if self.sent["reasoning"]:
            output.append({"id": "rs_1", "type": "reasoning",
                           "summary": [{"type": "summary_text", "text": "".join(self.sent["reasoning"])}]})
        if self.sent["message"] or status != "in_progress":
            output.append(self._message_item("".join(self.sent["message"]), "completed"))
        return {"id": self.id, "object": "response", "created_at": self.created, "status": status,
                "model": self.model, "output": output if status != "in_progress" else [],
                "incomplete_details": {"reason": reason} if reason else None, "error": None,
                "usage": self._usage(usage) if usage is not None and self.send_usage else None}

    def _message_item(self, text: str, status: str) -> dict:
        kind = "refusal" if self.knobs["refusal"] is not None else "output_text"
        part = {"type": kind, kind if kind == "refusal" else "text": text}
        if kind == "output_text":
            part["annotations"] = []
        return {"id": "msg_1", "type": "message", "role": "assistant", "status": status,
                "content": [part] if text or status == "completed" else []}

    def _usage(self, usage: dict) -> dict:
        total_in = usage["input_tokens"] + usage["cache_read_tokens"]
        data = {"input_tokens": total_in, "input_tokens_details": {"cached_tokens": usage["cache_read_tokens"]},
                "output_tokens": usage["output_tokens"],
                "output_tokens_details": {"reasoning_tokens": usage["reasoning_tokens"]},
                "total_tokens": total_in + usage["output_tokens"]}
        if self.knobs["usage_cost"] is not None:
            data["cost"] = self.knobs["usage_cost"]
        return data

    def preamble(self, usage: dict) -> list[bytes]:
        response = self._response("in_progress")
        return [self._event("response.created", response=response),
                self._event("response.in_progress", response=response)]

    def _close_item(self) -> list[bytes]:
        frames = []
        if self.open == "reasoning":
            text = "".join(self.sent["reasoning"])
            part = {"type": "summary_text", "text": text}
            where = {"item_id": self.item_id, "output_index": self.index, "summary_index": 0}
            frames += [self._event("response.reasoning_summary_text.done", text=text, **where),
                       self._event("response.reasoning_summary_part.done", part=part, **where),
                       self._event("response.output_item.done", output_index=self.index, item={
                           "id": self.item_id, "type": "reasoning", "summary": [part]})]
        elif self.open == "message":
            text = "".join(self.sent["message"])
            item = self._message_item(text, "completed")
            where = {"item_id": self.item_id, "output_index": self.index, "content_index": 0}
            if self.knobs["refusal"] is not None:
                frames.append(self._event("response.refusal.done", refusal=text, **where))
            else:
                frames.append(self._event("response.output_text.done", text=text, logprobs=[], **where))
            frames += [self._event("response.content_part.done", part=item["content"][0], **where),
                       self._event("response.output_item.done", output_index=self.index, item=item)]
        self.open = None
        return frames

    def _open_item(self, kind: str) -> list[bytes]:
        frames = self._close_item()
        self.index += 1
        self.open = kind
        if kind == "reasoning":
            self.item_id = f"rs_{uuid.uuid4().hex[:16]}"
            frames += [self._event("response.output_item.added", output_index=self.index, item={
                "id": self.item_id, "type": "reasoning", "summary": []}),
                self._event("response.reasoning_summary_part.added", item_id=self.item_id,
                            output_index=self.index, summary_index=0, part={"type": "summary_text", "text": ""})]
        else:
            self.item_id = f"msg_{uuid.uuid4().hex[:16]}"
            item = self._message_item("", "in_progress")
            part = ({"type": "refusal", "refusal": ""} if self.knobs["refusal"] is not None
                    else {"type": "output_text", "text": "", "annotations": []})
            frames += [self._event("response.output_item.added", output_index=self.index, item=item),
                       self._event("response.content_part.added", item_id=self.item_id, output_index=self.index,
                                   content_index=0, part=part)]
        return frames

    def reasoning(self, text: str) -> bytes:
        frames = self._open_item("reasoning") if self.open != "reasoning" else []
        self.sent["reasoning"].append(text)
        frames.append(self._event("response.reasoning_summary_text.delta", item_id=self.item_id,
                                  output_index=self.index, summary_index=0, delta=text))
        return b"".join(frames)

    def text(self, text: str, new_block: bool = False) -> bytes:
        frames = self._open_item("message") if self.open != "message" else []
        self.sent["message"].append(text)
        kind = "response.refusal.delta" if self.knobs["refusal"] is not None else "response.output_text.delta"
        frames.append(self._event(kind, item_id=self.item_id, output_index=self.index, content_index=0,
                                  delta=text, **({} if "refusal" in kind else {"logprobs": []})))
        return b"".join(frames)

    def ping(self) -> bytes:
        return b": keep-alive\n\n"

    def error(self, knobs: dict) -> bytes:
        return self._event("error", code=knobs["error_code"] or knobs["error_type"] or "server_error",
                           message=knobs["error_message"] or "The server had an error while processing your request.",
                           param=None)

    def _tool_frames(self) -> list[bytes]:
        call = self.knobs["tool_call"]
        if not call:
            return []
        frames = self._close_item()
        self.index += 1
        arguments = json.dumps(call.get("arguments") or {})
        item = {"id": "fc_1", "type": "function_call", "call_id": "call_" + uuid.uuid4().hex[:12],
                "name": call["name"], "arguments": "", "status": "in_progress"}
        frames.append(self._event("response.output_item.added", output_index=self.index, item=item))
        for i in range(0, len(arguments), 8):
            frames.append(self._event("response.function_call_arguments.delta", item_id="fc_1",
                                      output_index=self.index, delta=arguments[i:i + 8]))
        frames.append(self._event("response.function_call_arguments.done", item_id="fc_1",
                                  output_index=self.index, arguments=arguments))
        frames.append(self._event("response.output_item.done", output_index=self.index,
                                  item={**item, "arguments": arguments, "status": "completed"}))
        return frames

    def epilogue(self, finish_reason: str, usage: dict) -> list[bytes]:
        frames = self._close_item() + self._tool_frames()
        if finish_reason in ("length", "max_output_tokens", "content_filter"):
            reason = "content_filter" if finish_reason == "content_filter" else "max_output_tokens"
            frames.append(self._event("response.incomplete", response=self._response("incomplete", usage, reason)))
        else:
            frames.append(self._event("response.completed", response=self._response("completed", usage)))
        return frames

    def default_finish(self, cut: bool) -> str:
        return "max_output_tokens" if cut else "stop"

    def whole(self, text: str, finish_reason: str, usage: dict) -> dict:
        if self.knobs["reasoning"]:
            self.sent["reasoning"] = [self.knobs["reasoning"]]
        self.sent["message"] = [text]
        reason = None
        if finish_reason in ("length", "max_output_tokens", "content_filter"):
            reason = "content_filter" if finish_reason == "content_filter" else "max_output_tokens"
        data = self._response("incomplete" if reason else "completed", usage, reason)
        if self.knobs["tool_call"]:
            call = self.knobs["tool_call"]
            data["output"].append({"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": call["name"],
                                   "arguments": json.dumps(call.get("arguments") or {}), "status": "completed"})
        return data

    def error_body(self, knobs: dict, model: str) -> dict:
        return _OpenAIWire.error_body(self, knobs, model)  # type: ignore[arg-type]


class _AnthropicWire:
    protocol = "anthropic"

    def __init__(self, body: dict, knobs: dict):
        self.model = body.get("model", "")
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.send_usage = knobs["include_usage"]
        self.limit = body.get("max_tokens")
        self.knobs = knobs
        self.block = 0  # the index of the text block being streamed
        self.thinking = False  # a thinking block is open

    def _usage(self, usage: dict, output_tokens: int) -> dict:
        data = {"input_tokens": usage["input_tokens"],
                "cache_creation_input_tokens": usage["cache_write_tokens"],
                "cache_read_input_tokens": usage["cache_read_tokens"], "output_tokens": output_tokens}
        if self.knobs["cache_write_1h_tokens"]:
            one_hour = self.knobs["cache_write_1h_tokens"]
            data["cache_creation"] = {"ephemeral_5m_input_tokens": usage["cache_write_tokens"] - one_hour,
                                      "ephemeral_1h_input_tokens": one_hour}
        return data

    def preamble(self, usage: dict) -> list[bytes]:
        message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": self._usage(usage, 1)}
        frames = [_sse({"type": "message_start", "message": message}, "message_start")]
        if self.knobs["redacted_thinking"]:
            frames += [_sse({"type": "content_block_start", "index": self.block, "content_block": {
                "type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa"}},
                "content_block_start"), _sse({"type": "content_block_stop", "index": self.block}, "content_block_stop")]
            self.block += 1
        if self.knobs["reasoning"]:
            self.thinking = True
            frames.append(_sse({"type": "content_block_start", "index": self.block, "content_block": {
                "type": "thinking", "thinking": "", "signature": ""}}, "content_block_start"))
        else:
            frames.append(self._block_start())
        return [*frames, self.ping()]

    def reasoning(self, text: str) -> bytes:
        return _sse({"type": "content_block_delta", "index": self.block,
                     "delta": {"type": "thinking_delta", "thinking": text}}, "content_block_delta")

    def _end_thinking(self) -> bytes:
        self.thinking = False
        return _sse({"type": "content_block_delta", "index": self.block,
                     "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}},
                    "content_block_delta")

    def _block_start(self) -> bytes:
        return _sse({"type": "content_block_start", "index": self.block,
                     "content_block": {"type": "text", "text": ""}}, "content_block_start")

    def text(self, text: str, new_block: bool = False) -> bytes:
        frame = b""
        if self.thinking:
            new_block = True
            frame = self._end_thinking()
        if new_block:
            frame += _sse({"type": "content_block_stop", "index": self.block}, "content_block_stop")
            self.block += 1
            frame += self._block_start()
        return frame + _sse({"type": "content_block_delta", "index": self.block,
                             "delta": {"type": "text_delta", "text": text}}, "content_block_delta")

    def ping(self) -> bytes:
        return _sse({"type": "ping"}, "ping")

    def error(self, knobs: dict) -> bytes:
        return _sse({"type": "error", "error": {"type": knobs["error_type"] or "overloaded_error",
                                                "message": knobs["error_message"] or "Overloaded"}}, "error")

    def _tool_frames(self) -> list[bytes]:
        call = self.knobs["tool_call"]
        if not call:
            return []
        index = self.block + 1
        arguments = json.dumps(call.get("arguments") or {})
        frames = [_sse({"type": "content_block_start", "index": index, "content_block": {
            "type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:12], "name": call["name"], "input": {}}},
            "content_block_start")]
        for i in range(0, len(arguments), 8):
            frames.append(_sse({"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": arguments[i:i + 8]}}, "content_block_delta"))
        frames.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        return frames

    def epilogue(self, finish_reason: str, usage: dict) -> list[bytes]:
        frames = [self._end_thinking()] if self.thinking else []
        frames.append(_sse({"type": "content_block_stop", "index": self.block}, "content_block_stop"))
        frames += self._tool_frames()
        if self.send_usage:
            counts: dict = {"output_tokens": usage["output_tokens"]}
            if self.knobs["reasoning"] or self.knobs["redacted_thinking"]:
                counts["output_tokens_details"] = {"thinking_tokens": usage["reasoning_tokens"]}
            frames.append(_sse({"type": "message_delta",
                                "delta": {"stop_reason": finish_reason, "stop_sequence": None},
                                "usage": counts}, "message_delta"))
        frames.append(_sse({"type": "message_stop"}, "message_stop"))
        return frames

    def default_finish(self, cut: bool) -> str:
        if cut:
            return "max_tokens"
        if self.knobs["tool_call"]:
            return "tool_use"
        return "refusal" if self.knobs["refusal"] is not None else "end_turn"

    def whole(self, text: str, finish_reason: str, usage: dict) -> dict:
        content: list[dict] = [{"type": "text", "text": text}] if text else []
        if self.knobs["reasoning"]:
            content.insert(0, {"type": "thinking", "thinking": self.knobs["reasoning"], "signature": "Eq"})
        if self.knobs["tool_call"]:
            call = self.knobs["tool_call"]
            content.append({"type": "tool_use", "id": "toolu_1", "name": call["name"],
                            "input": call.get("arguments") or {}})
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": finish_reason,
                "stop_sequence": None, "usage": self._usage(usage, usage["output_tokens"])}

    def error_body(self, knobs: dict, model: str) -> dict:
        return {"type": "error", "error": {"type": knobs["error_type"] or "not_found_error",
                                           "message": knobs["error_message"] or f"model '{model}' not found"}}


def _sse(data: dict, event: str | None = None) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    try:
        return f"{head}data: {payload}\n\n".encode()
    except UnicodeEncodeError:  # half a surrogate pair: only JSON's \\uXXXX escapes can carry it
        payload = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
        return f"{head}data: {payload}\n\n".encode()


def _surrogate_halves(token: str) -> list[str]:
    """``token`` as chunks that split every character outside the BMP between its two UTF-16 halves."""
    out, current = [], ""
    for char in token:
        if ord(char) > 0xFFFF:
            units = char.encode("utf-16-le")
            high = units[:2].decode("utf-16-le", "surrogatepass")
            low = units[2:].decode("utf-16-le", "surrogatepass")
            out.append(current + high)
            current = low
        else:
            current += char
    out.append(current)
    return [part for part in out if part]


_HTML_PAGES = {
    502: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
         "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
    504: "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway "
         "Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
}
SIGN_IN_PAGE = ("<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=\"/login\">"
                "<input name=\"user\"><button>Sign in</button></form></body></html>")


def _html_error_page(status: int) -> str:
    if status in _HTML_PAGES:
        return _HTML_PAGES[status]
    return (f"<!DOCTYPE html><html><head><title>{status} error</title></head><body><h1>Error {status}</h1>"
            "<p>The origin web server did not answer in time.</p><p>cloudflare</p></body></html>")


# ---------------------------------------------------------------- the request handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each token leaves at once (no Nagle + delayed-ACK stalls)
    timeout = 120  # idle keep-alive connections
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing
    def _json(self, status: int, data: Any, headers: dict | None = None) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def _client_gone(self, wait: float = 0.0) -> bool:
        """Wait up to ``wait`` seconds; True as soon as the client has closed the connection."""
        try:
            readable, _, _ = select.select([self.connection], [], [], wait)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _sleep_until(self, deadline: float) -> None:
        """Sleep, watching the socket: raise _Gone when the client leaves or the server stops/resets."""
        while True:
            if self.server.provider._stale(self._generation):
                raise _Gone("server")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._client_gone(min(remaining, _POLL)):
                raise _Gone("client")
            # data waiting but not EOF (a pipelined request): avoid spinning on a readable socket
            if remaining > 0 and select.select([self.connection], [], [], 0)[0]:
                time.sleep(min(remaining, 0.005))

    def _write(self, data: bytes) -> None:
        if self._client_gone():
            raise _Gone("client")
        try:
            self.wfile.write(data)
        except OSError as exc:
            raise _Gone("client") from exc

    def _chunk(self, data: bytes, split: bool = False, split_delay: float = 0.0) -> None:
        cut = _mid_character(data) if split else None
        if cut is None:
            self._write(self._frame(data))
            return
        self._write(self._frame(data[:cut]))  # half a character ...
        self._sleep_until(time.monotonic() + split_delay)
        self._write(self._frame(data[cut:]))  # ... then the rest

    def _frame(self, data: bytes) -> bytes:
        """``data`` as one piece of the body: a chunk of the chunked encoding, or raw bytes when the body
        is delimited by closing the connection."""
        if getattr(self, "_framing", "chunked") == "close":
            return data
        return b"%x\r\n%s\r\n" % (len(data), data)

    def _end_body(self) -> None:
        """End the body cleanly: the chunked encoding's last chunk, or closing the connection."""
        if getattr(self, "_framing", "chunked") == "close":
            self.close_connection = True
            self.wfile.flush()
            self._abort()
        else:
            self._write(b"0\r\n\r\n")

    # -- routes
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        provider = self.server.provider
        if url.path == "/_control/log":
            kind = parse_qs(url.query).get("kind", [None])[0]
            self._json(200, {"events": provider.events(kind)})
        elif url.path == "/_control/scenario":
            self._json(200, provider.scenarios())
        elif url.path == "/_control/health":
            self._json(200, {"ok": True})
        elif url.path in ("/v1/models", "/models"):
            self._models()
        else:
            self._json(404, {"error": {"message": f"no route GET {url.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        provider = self.server.provider
        try:
            body = self._read_json()
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        if path == "/_control/scenario":
            if not isinstance(body, dict):
                self._json(400, {"error": "expected a JSON object"})
                return
            model = body.pop("model", None)
            try:
                provider.set_scenario(model, **body)
            except ValueError as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, {"ok": True, "scenarios": provider.scenarios()})
        elif path == "/_control/reset":
            provider.reset()
            self._json(200, {"ok": True})
        elif path in ("/v1/chat/completions", "/chat/completions"):
            self._complete(_OpenAIWire, body)
        elif path in ("/v1/messages", "/messages"):
            self._complete(_AnthropicWire, body)
        elif path in ("/v1/responses", "/responses"):
            self._complete(_ResponsesWire, body)
        else:
            self._json(404, {"error": {"message": f"no route POST {path}", "type": "not_found"}})

    # -- the models an endpoint serves
    def _models(self) -> None:
        """``GET /v1/models`` in Anthropic's shape (asked with an ``anthropic-version`` header: capabilities,
        context window, max output) or OpenAI's. ``models_status`` fails it; wrong keys get 401."""
        provider = self.server.provider
        knobs = provider.scenario_for("")
        anthropic_format = bool(self.headers.get("anthropic-version"))
        given = None
        for name in _AUTH_HEADERS:
            if self.headers.get(name):
                given = self.headers[name].removeprefix("Bearer ").strip()
                break
        log = provider._logger(provider._next_request_id(), "", provider._generation)
        log("models", format="anthropic" if anthropic_format else "openai")
        status = knobs["models_status"] or (401 if knobs["api_key"] is not None and given != knobs["api_key"] else None)
        if status:
            body = (_anthropic_error(status, knobs, "") if anthropic_format
                    else _openai_error(status, knobs, "", given))
            self._json(status, body)
            return
        kind = "anthropic" if anthropic_format else "openai"
        ids = knobs["models"] if knobs["models"] is not None else MODELS_LISTED
        if isinstance(ids, dict):
            ids = ids.get(kind, MODELS_LISTED[kind])
        if not anthropic_format:
            self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "fake"} for m in ids]})
            return
        data = []
        for m in ids:
            caps = ANTHROPIC_CAPABILITIES.get(m, {})
            yes = {"supported": True}
            no = {"supported": False}
            effort = bool(caps.get("effort"))
            thinking = bool(caps.get("thinking"))
            data.append({
                "type": "model", "id": m, "display_name": m, "created_at": "2025-10-01T00:00:00Z",
                "lifecycle": "active", "max_input_tokens": caps.get("max_input_tokens"),
                "max_tokens": caps.get("max_tokens"),
                "capabilities": {
                    "batch": yes, "citations": yes, "code_execution": no, "image_input": yes, "pdf_input": yes,
                    "structured_outputs": yes, "server_tools": no, "context_management": no,
                    "effort": {"supported": effort, **{k: (yes if effort else no) for k in
                                                       ("low", "medium", "high", "max")}},
                    "thinking": {"supported": thinking, "types": {
                        "adaptive": yes if thinking else no, "enabled": yes if thinking else no,
                        "disabled": yes, "between_tools": no}},
                }})
        self._json(200, {"data": data, "has_more": False, "first_id": ids[0] if ids else None,
                         "last_id": ids[-1] if ids else None})

    # -- one completion
    def _complete(self, wire_class: type, body: dict) -> None:
        provider = self.server.provider
        self._generation = provider._generation
        self._framing = "chunked"
        model = str(body.get("model", ""))
        knobs = provider.scenario_for(model)
        rid = provider._next_request_id()
        protocol = wire_class.protocol

        auth_header, given = None, None
        for name in _AUTH_HEADERS:
            value = self.headers.get(name)
            if value:
                auth_header = name
                given = value.removeprefix("Bearer ").strip() if name == "authorization" else value.strip()
                break
        auth_ok = knobs["api_key"] is None or given == knobs["api_key"]
        headers = {k.lower(): ("<redacted>" if k.lower() in _AUTH_HEADERS else v) for k, v in self.headers.items()}
        log = provider._logger(rid, model, self._generation)
        log("request", path=self.path, protocol=protocol, stream=bool(body.get("stream")), body=body,
            headers=headers, auth_header=auth_header, auth_ok=auth_ok)

        status = knobs["status"]
        if status is None and knobs["context_too_long"]:
            status = 400
        if not auth_ok:
            status = 401
        elif status is not None and not provider._should_fail(model, knobs["fail_times"]):
            status = None
        if status is not None:
            self._error(status, protocol, knobs, model, given, log)
            return

        wire = wire_class(body, knobs)
        block_starts: set[int] = set()
        if knobs["text_blocks"] is not None and protocol == "anthropic":
            tokens = []
            for block in knobs["text_blocks"]:
                if tokens:
                    block_starts.add(len(tokens))
                tokens += _tokens(block)
        else:
            text = knobs["refusal"] if knobs["refusal"] is not None else knobs["text"]
            tokens = _tokens(text if text is not None else default_text(body, knobs["words"]))
        cut = bool(wire.limit) and len(tokens) > wire.limit
        if cut:
            tokens = tokens[: wire.limit]
        finish = knobs["finish_reason"] or wire.default_finish(cut)
        thoughts = _tokens(knobs["reasoning"]) if knobs["reasoning"] else []
        reasoning_tokens = len(thoughts)
        if thoughts and protocol == "openai" and knobs["reasoning_shape"] == "think_tags":
            # no reasoning parser on the server: the thinking is part of the content, tags and all
            content = "<think>" + knobs["reasoning"] + "</think>\n\n" + "".join(tokens).lstrip()
            size = knobs["think_split"]
            tokens = ([content[i:i + size] for i in range(0, len(content), size)] if size else _tokens(content))
            thoughts, reasoning_tokens = [], 0
        if knobs["redacted_thinking"] and protocol == "anthropic":
            reasoning_tokens = max(reasoning_tokens, 12)  # thinking the provider encrypted, billed all the same
        if knobs["reasoning_tokens"] is not None:
            reasoning_tokens = knobs["reasoning_tokens"]
        parts = [("reasoning", t) for t in thoughts] + [("text", t) for t in tokens]
        block_starts = {i + len(thoughts) for i in block_starts}
        usage = {"input_tokens": knobs["input_tokens"] if knobs["input_tokens"] is not None
                 else _count_words(body),
                 "output_tokens": knobs["output_tokens"] if knobs["output_tokens"] is not None
                 else len(parts) + (reasoning_tokens if knobs["redacted_thinking"] else 0),
                 "reasoning_tokens": reasoning_tokens,
                 "cache_read_tokens": knobs["cache_read_tokens"], "cache_write_tokens": knobs["cache_write_tokens"]}
        if knobs["input_tokens"] is None and not knobs["cache_read_tokens"] and not knobs["cache_write_tokens"]:
            read, written = provider._use_prompt_cache(body, protocol, knobs)
            usage.update(input_tokens=usage["input_tokens"] - read - written, cache_read_tokens=read,
                         cache_write_tokens=written)

        sent = 0
        during = "headers"
        try:
            if knobs["headers_delay"]:
                self._sleep_until(time.monotonic() + knobs["headers_delay"])
            if not body.get("stream") or knobs["body"] == "json":
                log("complete", chunks=len(tokens), finish_reason=finish, stream=False)
                self._json(200, wire.whole("".join(tokens), finish, usage))
                return
            if knobs["body"] is not None:
                self._not_a_stream(knobs["body"], wire, knobs, model, log)
                return
            self._framing = knobs["framing"]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            if self._framing == "close":
                self.send_header("Connection", "close")
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            during = "preamble"
            for frame in wire.preamble(usage):
                self._chunk(frame)
            start = time.monotonic() + float(knobs["first_token_delay"] or 0)
            tps = knobs["tokens_per_second"]
            for index in range(len(parts) + 1):
                during = parts[index][0] if index < len(parts) else "text"
                if self._trouble(index, wire, knobs, log):
                    return
                if index == len(parts):
                    break
                self._sleep_until(start + (index / tps if tps else 0))
                if knobs["ping_every"] and index and index % knobs["ping_every"] == 0:
                    self._chunk(wire.ping())
                    log("ping", chunks=sent)
                kind, token = parts[index]
                if kind == "reasoning":
                    self._chunk(wire.reasoning(token), knobs["split_utf8"], knobs["split_delay"])
                    sent = index + 1
                    log("reasoning", n=sent, text=token)
                    continue
                pieces = _surrogate_halves(token) if knobs["split_surrogates"] else [token]
                for n, piece in enumerate(pieces):
                    self._chunk(wire.text(piece, new_block=index in block_starts and n == 0),
                                knobs["split_utf8"], knobs["split_delay"])
                sent = index + 1
                log("chunk", n=sent, text=token)
            during = "epilogue"
            # logged before the write, so a client that has read the whole reply always finds it logged
            # (if the write fails, a "disconnect" with during="epilogue" follows)
            log("complete", chunks=sent, finish_reason=finish)
            # the last frames and the end of the body in one write: a client that closes the
            # connection as soon as it has read [DONE] / message_stop is not a disconnect
            if self._framing == "close":
                self._write(b"".join(wire.epilogue(finish, usage)))
                self._end_body()
            else:
                self._write(b"".join(self._frame(f) for f in wire.epilogue(finish, usage)) + b"0\r\n\r\n")
        except _Gone as gone:
            self.close_connection = True
            if str(gone) == "client":
                log("disconnect", chunks=sent, planned=len(parts), during=during)
            else:
                self._abort()

    def _trouble(self, index: int, wire: Any, knobs: dict, log: Any) -> bool:
        """Before text chunk ``index + 1``: stall, drop or error as the scenario says. True: stop here."""
        if knobs["stall_after"] == index:
            log("stall", chunks=index)
            forever = knobs["stall_for"] is None
            self._sleep_until(float("inf") if forever else time.monotonic() + knobs["stall_for"])
        if knobs["drop_after"] == index:
            log("drop", chunks=index)
            self._abort()
            return True
        if knobs["error_after"] == index:
            log("midstream_error", chunks=index)
            self._write(self._frame(wire.error(knobs)))
            self._end_body()
            return True
        if knobs["end_after"] == index:  # a clean end of the body with the answer unfinished
            log("end_early", chunks=index)
            self._end_body()
            return True
        return False

    def _not_a_stream(self, kind: str, wire: Any, knobs: dict, model: str, log: Any) -> None:
        """A 200 to a streaming request whose body is not an event stream."""
        if kind == "json_error":
            raw, content_type = json.dumps(wire.error_body(knobs, model)).encode(), "application/json"
        elif kind == "html":
            raw, content_type = SIGN_IN_PAGE.encode(), "text/html; charset=utf-8"
        elif kind == "text":
            raw, content_type = b"upstream connect error or disconnect/reset before headers", "text/plain"
        else:
            raise ValueError(f"unknown body kind {kind!r}")
        log("not_a_stream", body=kind)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _abort(self) -> None:
        """Close the connection without finishing the chunked body."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _error(self, status: int, protocol: str, knobs: dict, model: str, key: str | None, log: Any) -> None:
        if protocol in ("openai", "responses"):
            body = _openai_error(status, knobs, model, key)
        else:
            body = _anthropic_error(status, knobs, model)
        if knobs["error_html"]:
            log("status_error", status=status, html=True)
            raw = _html_error_page(status).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(raw)))
            if knobs["retry_after"] is not None:
                self.send_header("retry-after", str(knobs["retry_after"]))
            self.end_headers()
            try:
                self.wfile.write(raw)
            except OSError:
                self.close_connection = True
            return
        headers = {}
        if knobs["retry_after"] is not None:
            headers["retry-after"] = str(knobs["retry_after"])
        if protocol == "anthropic":
            headers["request-id"] = body["request_id"]
        log("status_error", status=status)
        try:
            self._json(status, body, headers)
        except OSError:
            self.close_connection = True


def _mid_character(data: bytes) -> int | None:
    """The index just after the first byte of the first multi-byte UTF-8 character, if any."""
    for i, byte in enumerate(data):
        if byte >= 0xC0:
            return i + 1
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    provider: FakeProvider

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client resetting an idle keep-alive connection is normal, not worth a traceback
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


# ---------------------------------------------------------------- the public object


class FakeProvider:
    """The fake provider server. ``start()`` binds a free loopback port (or ``port``) and serves from a
    daemon thread; ``url`` is ``http://127.0.0.1:<port>`` (OpenAI clients add ``/v1``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = DEFAULT_KEY):
        self.host = host
        self.port = port
        self.api_key = api_key
        self.log: list[dict] = []
        self._lock = threading.Condition()
        self._default: dict[str, Any] = {}
        self._models: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, int] = {}
        self._prompt_cache: set[str] = set()  # the prefixes written to the cache (chained hashes)
        self._request_id = 0
        self._generation = 0
        self._stopping = False
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> FakeProvider:
        self._stopping = False
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.provider = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-provider-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- scenarios
    def set_scenario(self, model: str | None = None, **knobs: Any) -> None:
        """Set the scenario of ``model`` (None: the default one), replacing what was set for it before."""
        unknown = sorted(set(knobs) - set(DEFAULT_KNOBS))
        if unknown:
            raise ValueError(f"unknown scenario knob(s): {', '.join(unknown)}; known: {', '.join(DEFAULT_KNOBS)}")
        with self._lock:
            if model is None:
                self._default = dict(knobs)
            else:
                self._models[model] = dict(knobs)
            self._failures.pop(model or "", None)

    def scenario_for(self, model: str) -> dict[str, Any]:
        with self._lock:
            return {**DEFAULT_KNOBS, "api_key": self.api_key, **self._default, **self._models.get(model, {})}

    def scenarios(self) -> dict[str, Any]:
        with self._lock:
            return {"default": dict(self._default), "models": {m: dict(k) for m, k in self._models.items()}}

    def reset(self) -> None:
        """Forget scenarios and the log; streams still running from before are cut off."""
        with self._lock:
            self._default, self._models, self._failures = {}, {}, {}
            self._prompt_cache = set()
            self.log = []
            self._generation += 1

    # -- the log
    def events(self, kind: str | None = None, **match: Any) -> list[dict]:
        with self._lock:
            return [e for e in self.log if (kind is None or e["kind"] == kind)
                    and all(e.get(k) == v for k, v in match.items())]

    def wait_for(self, kind: str, timeout: float = 2.0, **match: Any) -> dict:
        """The first logged event of ``kind`` (whose fields equal ``match``), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self.log:
                    if event["kind"] == kind and all(event.get(k) == v for k, v in match.items()):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {kind!r} event {match or ''} within {timeout} s")
                self._lock.wait(remaining)

    @property
    def requests(self) -> list[dict]:
        return self.events("request")

    def sent_messages(self, request: dict | None = None) -> list[dict]:
        """The messages a request (default: the last one) carried: ``messages`` (Chat Completions,
        Anthropic) or ``input`` (Responses)."""
        return _messages((request or self.last_request)["body"])

    @property
    def last_request(self) -> dict:
        requests = self.requests
        if not requests:
            raise LookupError("no request logged yet")
        return requests[-1]

    # -- for the handler
    def _stale(self, generation: int) -> bool:
        return self._stopping or generation != self._generation

    def _next_request_id(self) -> int:
        with self._lock:
            self._request_id += 1
            return self._request_id

    def _use_prompt_cache(self, body: dict, protocol: str, knobs: dict) -> tuple[int, int]:
        """(tokens read from the cache, tokens written to it) for this request, in words; remembers what it
        writes. See the ``prompt_cache`` knob."""
        mode = knobs["prompt_cache"]
        blocks = _cache_blocks(body)
        if not blocks or mode == "off" or (mode == "marked" and protocol != "anthropic"):
            return 0, 0
        if mode == "auto" or body.get("cache_control"):
            mark = len(blocks) - 1
        else:
            mark = max((i for i, block in enumerate(blocks) if block[2]), default=None)
            if mark is None:
                return 0, 0
        keys, totals, chain, words = [], [], hashlib.sha1(), 0
        for role, text, _ in blocks[: mark + 1]:
            chain.update(json.dumps([role, text]).encode())
            keys.append(chain.hexdigest())
            words += len(text.split())
            totals.append(words)
        if totals[mark] < knobs["cache_min_tokens"]:
            return 0, 0
        with self._lock:
            read = max((totals[i] for i in range(mark + 1) if keys[i] in self._prompt_cache), default=0)
            self._prompt_cache.add(keys[mark])
        written = totals[mark] - read if protocol == "anthropic" else 0  # OpenAI reports no writes
        return read, written

    def _should_fail(self, model: str, fail_times: int | None) -> bool:
        if fail_times is None:
            return True
        key = model if model in self._models else ""
        with self._lock:
            done = self._failures.get(key, 0)
            self._failures[key] = done + 1
            return done < fail_times

    def _logger(self, request: int, model: str, generation: int):
        def log(kind: str, **fields: Any) -> None:
            event = {"kind": kind, "t": time.monotonic(), "wall": time.time(), "request": request,
                     "model": model, **fields}
            with self._lock:
                if generation != self._generation:  # a stream from before a reset
                    return
                self.log.append(event)
                self._lock.notify_all()

        return log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI / Anthropic streaming server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--api-key", default=DEFAULT_KEY, help="the key clients must send")
    parser.add_argument("--no-auth", action="store_true", help="accept any key, or none")
    parser.add_argument("--scenario", default=None, help="default scenario knobs as a JSON object")
    args = parser.parse_args(argv)

    server = FakeProvider(args.host, args.port, api_key=None if args.no_auth else args.api_key)
    if args.scenario:
        server.set_scenario(None, **json.loads(args.scenario))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"READY {server.url} port={server.port}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
