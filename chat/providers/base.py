"""The one small interface every provider implements, the streamed Reply, and typed errors.

A provider turns (model, messages, system prompt, parameters) into a :class:`Reply`. Iterating the reply
drives the HTTP stream and yields text chunks; once the iteration ends (finished, failed or closed) the
reply exposes the full text, usage, finish reason, time to first token and duration.

A reply is finished only when the provider said so (``provider_finished``): a stream that just ends is not.

Reasoning (a model's thinking before it answers) travels apart from the answer: adapters yield it as
:class:`Reasoning` pieces, the reply keeps it in ``reasoning_chunks`` with its own first-token time, and
iterating a reply yields the answer only (:meth:`Reply.parts` yields both).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from chat.usage import Usage as Usage  # re-exported: the providers' interface reports it

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked to run: the provider's call id, the tool's wire name, the arguments as the
    JSON text the model wrote."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class ToolResult:
    """What is handed back to the model for one call (a result, an error, or a refusal, as text)."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolDef:
    """A tool offered to the model: its wire name, what it does, a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict


@dataclass(frozen=True)
class Message:
    """One message of a request. An assistant message may carry ``tool_calls`` (it asked for tools); a user
    message may carry ``tool_results`` (the answers to the previous message's calls)."""

    role: Role
    content: str
    attachments: tuple = ()  # chat.attachments.Attachment, with their data, for a user message
    tool_calls: tuple[ToolCall, ...] = ()  # keyword only in practice: callers pass attachments third
    tool_results: tuple[ToolResult, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "attachments", tuple(self.attachments))


EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")  # every level either provider names
THINKING = ("on", "off")  # Anthropic's thinking, when chosen; None leaves it to the model


@dataclass(frozen=True)
class Params:
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None  # OpenAI reasoning.effort / Anthropic output_config.effort
    thinking: str | None = None  # "on" / "off" (Anthropic); None: the model's default

    def as_dict(self) -> dict:
        """What is recorded with a reply; the reasoning settings only when chosen."""
        out: dict = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.reasoning_effort is not None:
            out["reasoning_effort"] = self.reasoning_effort
        if self.thinking is not None:
            out["thinking"] = self.thinking
        return out


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


class ServerSaid(ProviderError):
    """The server answered 200 with an error object instead of a reply; its own words are the detail."""

    kind = "server_error"

    @property
    def hint(self) -> str:
        return f"{self.who} answered with an error: {self.detail}"


class NotAReply(ProviderError):
    """The server answered 200 with something that is not a model reply (a web page, plain text)."""

    kind = "not_a_reply"

    def __init__(self, detail: str = "", *, provider: str = "", web_page: bool = False, **kwargs):
        super().__init__(detail, provider=provider, **kwargs)
        self.web_page = web_page

    @property
    def hint(self) -> str:
        if self.web_page:
            return (f"{self.who} answered with a web page, not a model reply: a sign-in proxy or gateway may be "
                    "in the way. Check the endpoint's address.")
        return f"{self.who} answered with something that is not a model reply: {self.detail}"


class GatewayError(ProviderError):
    """A gateway in front of the provider (nginx, Cloudflare, a load balancer) answered 502/504/52x."""

    kind = "gateway"
    retryable = True

    @property
    def hint(self) -> str:
        return (f"The gateway in front of {self.who} answered HTTP {self.status}: the server behind it is down, "
                "restarting or too slow. Try again in a minute.")


# ---------------------------------------------------------------- the streamed reply

_SURROGATE = re.compile("[\ud800-\udfff]")


class Reasoning(str):
    """A piece of the model's reasoning (its thinking), as opposed to a piece of its answer."""


HIDDEN_REASONING = "reasoning hidden by the provider"


def _whole_characters(text: str) -> str:
    """``text`` with UTF-16 surrogate halves that meet joined into one character and any unpaired half
    replaced by U+FFFD (a JSON string may carry either; neither can be stored or shown)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


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
        self.completed = False  # the iteration ran to its end without an error or a close
        self.provider_finished = False  # the provider said the reply is finished (a finish/stop reason)
        self.tool_calls: list[str] = []  # names of the tools the model asked to use
        self.calls: list[ToolCall] = []  # the calls themselves (id, name, arguments), once the stream ended
        self.attempts = 0  # HTTP attempts made for this reply (> 1: the SDK retried before streaming)
        self.failed_attempts = 0  # of which answered with a retryable status (429, 5xx, ...): "retrying…"
        self.reasoning_chunks: list[str] = []  # the reasoning received, apart from the answer
        self.first_reasoning_at: float | None = None
        self.reasoning_hidden = False  # the provider sent reasoning it keeps encrypted (redacted)
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
        """The answer's text, chunk by chunk (reasoning is kept on the reply, not yielded)."""
        parts = self.parts()
        try:
            for part in parts:
                if not isinstance(part, Reasoning):
                    yield part
        finally:
            parts.close()

    def think(self, text: str) -> None:
        """Record reasoning that arrived whole (a non-streamed answer)."""
        if text:
            if self.first_reasoning_at is None:
                self.first_reasoning_at = time.monotonic()
            self.reasoning_chunks.append(text)

    def parts(self) -> Iterator[str]:
        """The answer's text and the reasoning (as :class:`Reasoning`), in the order they arrive."""
        if self._iterating or self.completed:
            raise RuntimeError("a Reply can be iterated only once")
        self._iterating = True
        self.started_at = time.monotonic()
        held = ""  # the first half of a surrogate pair, until its second half arrives
        try:
            for text in self._stream():
                if self.closed:
                    break
                if not text:
                    continue
                if isinstance(text, Reasoning):
                    self.think(_whole_characters(text))
                    yield Reasoning(self.reasoning_chunks[-1])
                    continue
                text, held = held + text, ""
                if "\ud800" <= text[-1] <= "\udbff":
                    text, held = text[:-1], text[-1]
                text = _whole_characters(text)
                if not text:
                    continue
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                self.chunks.append(text)
                yield text
            else:
                self.completed = True
                if held:  # a first half that no second half followed
                    self.chunks.append("\ufffd")
                    yield "\ufffd"
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
    def reasoning(self) -> str:
        return "".join(self.reasoning_chunks)

    @property
    def time_to_first_reasoning(self) -> float | None:
        if self.first_reasoning_at is None or self.started_at is None:
            return None
        return self.first_reasoning_at - self.started_at

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
               params: Params = Params(), tools: list[ToolDef] | None = None) -> Reply: ...
