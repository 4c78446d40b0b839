"""One chat turn: the user's message saved first, the reply streamed, its usage, cost and status recorded.

The page builds a :class:`TurnContext` (store, provider, pricer, limits) and calls :func:`send` (or
:func:`regenerate` / :func:`edit_last`) to get a :class:`Turn`, then feeds ``turn.stream()`` to
``st.write_stream``. Whatever happens to the stream, the reply row is finished:
complete (the provider said it finished), unfinished (the stream ended without that), stopped (the consumer
closed the generator: a Stop click, a rerun, a closed tab), or error (a provider failure, with the partial
text kept). While streaming, the partial text is checkpointed at
least every second, so a crash loses at most about a second of it.

Reasoning: the turn keeps what the model thought (``reasoning``, ``thinking_seconds``) apart from its text,
so any consumer (a page, a background runner) can show it live; ``stream()`` yields an empty string when new
reasoning has arrived, at most once per flush. Time limits: ``idle_timeout`` bounds the silence between
chunks once the answer flows; before the first answer token, ``first_output_timeout`` does, and every
reasoning delta restarts that clock (a model may think for minutes, sending nothing or only its thoughts).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chat import attachments, limits, tokens
from chat.attachments import Attachment
from chat.config import Endpoint, ModelId, parse_model_id
from chat.display import ending
from chat.models import listed_context_window
from chat.pricing import Pricer
from chat.providers.base import (
    ContextTooLong,
    Message,
    Params,
    Provider,
    ProviderError,
    Reasoning,
    Reply,
    StreamError,
    Timeout,
    ToolCall,
    Usage,
)
from chat.store import DatabaseBusy, NotFound, Store, StoreError
from chat.tool_loop import CallRecord, StepRecord, ToolRunner, steps_from_json, steps_to_json

DEFAULT_OUTPUT_RESERVE = 4096
CONTINUE_PROMPT = "Continue exactly where your previous reply stopped."
_DONE = object()


@dataclass(frozen=True)
class TurnSettings:
    """What produces a reply: a model, the system prompt and the parameters it answers with. Recorded on the
    reply so one can always tell what produced it. A chat turn has one; each target of a comparison or a
    batch is one (the same model may appear twice with different settings)."""

    model_id: ModelId
    system: str | None = None
    params: Params = Params()
    tools: tuple[str, ...] = ()  # the MCP servers whose tools the model may use (by name)

    @classmethod
    def parse(cls, value: str, *, system: str | None = None, temperature: float | None = None,
              max_tokens: int | None = None) -> TurnSettings:
        """Settings from a ``provider:model`` id and the parameters a form gives (a blank system prompt: none)."""
        return cls(parse_model_id(value), (system or "").strip() or None,
                   Params(temperature=temperature, max_tokens=max_tokens))

    @property
    def name(self) -> str:
        return str(self.model_id)

    def as_dict(self) -> dict:
        return {"provider": self.model_id.provider, "model": self.model_id.model, "system": self.system or "",
                **self.params.as_dict(), **({"tools": list(self.tools)} if self.tools else {})}


def context_window(endpoint: Endpoint | None, model: str) -> int | None:
    """Tokens the model accepts: the endpoint's configured figure, else genai-prices' listing for the
    built-in providers, else unknown (the request is sent whole and the provider judges)."""
    if endpoint is None:
        return None
    if endpoint.context_window:
        return endpoint.context_window
    if endpoint.name in ("openai", "anthropic"):
        return listed_context_window(endpoint.name, model)
    return None


def _sum_usage(parts: list[tuple[Usage | None, float | None]]) -> tuple[Usage | None, float | None]:
    """The usage and cost of several model calls together; the cost is unknown when any part's is."""
    total = Usage(input_tokens=0, output_tokens=0, input_exact=True, output_exact=True)
    cost: float | None = 0.0
    reasoning = None
    for usage, part_cost in parts:
        if usage is None:
            continue
        total.input_tokens += usage.input_tokens or 0
        total.output_tokens += usage.output_tokens or 0
        total.cache_read_tokens += usage.cache_read_tokens
        total.cache_write_tokens += usage.cache_write_tokens
        total.cache_write_1h_tokens += usage.cache_write_1h_tokens
        total.input_exact = total.input_exact and usage.input_exact
        total.output_exact = total.output_exact and usage.output_exact
        if usage.reasoning_tokens:
            reasoning = (reasoning or 0) + usage.reasoning_tokens
        cost = None if cost is None or part_cost is None else cost + part_cost
    total.reasoning_tokens = reasoning
    return total, cost


def _step_messages(row: dict) -> list[Message]:
    """A reply that used tools, as the provider needs it back: per step, the assistant's text with its calls,
    then the results; then the final answer."""
    out: list[Message] = []
    for step in steps_from_json(row.get("tool_steps")):
        calls = [c for c in step.calls if c.status != "skipped"]
        if calls:
            out.append(Message("assistant", step.text, tool_calls=tuple(
                ToolCall(c.id, c.wire_name, c.arguments) for c in calls)))
            out.append(Message("user", "", tool_results=tuple(ToolRunner.results(calls))))
        elif step.text.strip():
            out.append(Message("assistant", step.text))
    return out


def history_from_rows(rows: list[dict]) -> list[Message]:
    """The messages sent to the provider: visible rows, in order, always a valid request.

    - A stopped or failed partial reply is sent as it was shown; an empty reply (it failed before its first
      token, or only asked for a tool) is left out, and the user messages around it are sent as one.
    - A refused or filtered exchange (the reply and the message it answered) is left out: sent again, it
      invites the same answer.
    - The request opens with a user message and never has two of them in a row."""
    out: list[Message] = []
    for row in rows:
        if row.get("superseded"):
            continue
        files = tuple(Attachment.from_meta(meta) for meta in row.get("attachments") or ())
        if row["role"] == "assistant":
            if ending(row).left_out:
                while out and out[-1].role == "user":
                    out.pop()
                continue
            if row.get("tool_steps") and out:
                out += _step_messages(row)
                if out[-1].role == "user":  # the reply ended with results it never answered
                    out.append(Message("assistant", "(no answer)"))
                continue
            if not (row.get("content") or "").strip() or not out:
                continue
        elif out and out[-1].role == "user" and not out[-1].tool_results:
            out[-1] = Message("user", "\n\n".join(t for t in (out[-1].content, row["content"]) if t),
                              out[-1].attachments + files)
            continue
        out.append(Message(row["role"], row["content"], files))
    return out


def with_file_data(store: Store, history: list[Message]) -> list[Message]:
    """``history`` with its attachments' bytes read from the store. A file no longer stored (purged) is
    left out, and the message says so, so the request still goes."""
    out = []
    for message in history:
        if not message.attachments:
            out.append(message)
            continue
        kept, gone = [], []
        for item in message.attachments:
            try:
                kept.append(item if item.data is not None else dataclasses.replace(item, data=store.blob(item.sha256)))
            except NotFound:
                gone.append(item.name)
        content = message.content + "".join(f"\n\n(The attached file {name} is no longer stored.)" for name in gone)
        out.append(Message(message.role, content, tuple(kept)))
    return out


def message_tokens(message: Message, model: str) -> int:
    """≈ tokens of one message in a request: its text, 3 of framing, and its attachments."""
    total = tokens.count_text(message.content, model).tokens + 3
    for item in message.attachments:
        total += attachments.estimate_tokens(item, model, lambda text: tokens.count_text(text, model).tokens)
    return total


def fit_context(history: list[Message], *, model: str, system: str | None, context_window: int | None,
                reserve: int) -> tuple[list[Message], int]:
    """Leave out the oldest messages until the request fits ``context_window - reserve`` tokens.

    Returns (messages to send, how many were left out). Raises ContextTooLong when even the newest
    message alone does not fit, before anything is sent."""
    if not context_window or not history:
        return history, 0
    budget = context_window - reserve
    if budget <= 0:
        budget = context_window // 2
    overhead = 3 + (tokens.count_text(system, model).tokens + 3 if system else 0)
    sizes = [message_tokens(m, model) for m in history]
    total = overhead + sum(sizes)
    start = 0
    while total > budget and start < len(history) - 1:
        total -= sizes[start]
        start += 1
    # A request must open with a user message (Anthropic requires it).
    while start < len(history) - 1 and history[start].role != "user":
        total -= sizes[start]
        start += 1
    if total > budget:
        files = history[-1].attachments
        raise ContextTooLong(
            f"the newest message needs about {total:,} tokens"
            + (f" with its {len(files)} attached file{'s' if len(files) != 1 else ''}" if files else "")
            + f"; this model takes about {budget:,}",
        )
    return history[start:], start


@dataclass(frozen=True)
class TurnContext:
    """What a turn runs with besides its conversation and settings: where it is stored, who answers, what it
    costs, and its limits. A page builds one per turn it starts; a comparison one per target.

    Unset timeouts come from the provider (build_provider gives it the configured ones). ``daily_limit``
    (USD) is ``user``'s spending limit; none when unset. ``tools``: the runner of the MCP tools the model
    may call in this turn (one runner per turn)."""

    store: Store
    provider: Provider
    pricer: Pricer
    context_window: int | None = None
    user: str | None = None
    daily_limit: float | None = None
    idle_timeout: float | None = None
    first_output_timeout: float | None = None
    tools: ToolRunner | None = None


class Turn:
    """One assistant reply in a conversation. :meth:`open` (or :func:`send` and friends) starts it; the
    constructor only sets it up and reads or writes nothing."""

    def __init__(self, ctx: TurnContext, conversation_id: str, settings: TurnSettings):
        provider = ctx.provider
        if settings.params.temperature is not None and not getattr(provider, "supports_temperature", True):
            # Not sent, so not recorded either: the reply's settings say what produced it.
            settings = dataclasses.replace(settings, params=dataclasses.replace(settings.params, temperature=None))
        self.store = ctx.store
        self.provider = provider
        self.pricer = ctx.pricer
        self.conversation_id = conversation_id
        self.settings = settings
        self.context_window = ctx.context_window
        self.message_id: int | None = None  # the reply row, once opened
        self.reply: Reply | None = None
        self.record: dict | None = None
        self.error: ProviderError | None = None
        self.dropped = 0
        # unset limits come from the provider (build_provider gives it the configured ones)
        self.idle_timeout = (ctx.idle_timeout if ctx.idle_timeout is not None
                             else getattr(provider, "idle_timeout", None))
        self.first_output_timeout = (ctx.first_output_timeout if ctx.first_output_timeout is not None
                                     else getattr(provider, "first_output_timeout", None)) or self.idle_timeout
        self._received: list[str] = []
        self._reasoning: list[str] = []
        self.reasoning_version = 0  # grows with every reasoning delta: a consumer redraws when it changed
        self._history: list[Message] = []
        self._stop_requested = False
        self._finishing = threading.Lock()
        self.tools = ctx.tools
        self.budget = limits.budget(ctx.user, ctx.daily_limit)
        self.steps: list[StepRecord] = []  # the model calls of a reply that used tools (see chat/tool_loop.py)
        self.steps_version = 0  # grows whenever a step or call changes: a consumer redraws when it changed
        self._step_usages: list[tuple[Usage | None, float | None]] = []
        self._stepped: Reply | None = None  # the last reply already counted as a step
        self._first_reply: Reply | None = None
        self._step_start = 0
        self._steps_end = 0  # where the text after the last closed step begins
        self._separate = False

    @classmethod
    def open(cls, ctx: TurnContext, conversation_id: str, settings: TurnSettings) -> Turn:
        """The reply to the conversation's messages as they are, started: the history read and fitted to the
        context window, and the reply row started, checked against the spending budget with its likely cost
        reserved (one transaction). A reply refused before anything is sent (too long, over budget) is
        recorded as failed at once; streaming it raises that error."""
        turn = cls(ctx, conversation_id, settings)
        turn._open()
        return turn

    def _open(self) -> None:
        settings = self.settings
        rows = self.store.messages(self.conversation_id)
        model = settings.model_id.model
        recorded = settings.as_dict()
        try:
            self._history, self.dropped = fit_context(
                history_from_rows(rows), model=model, system=settings.system, context_window=self.context_window,
                reserve=settings.params.max_tokens or DEFAULT_OUTPUT_RESERVE)
        except ContextTooLong as exc:
            self.error = exc
        self._history = with_file_data(self.store, self._history)
        if self.dropped:
            recorded["context_dropped"] = self.dropped
        # Checked against the spending budget, with the reply's likely cost reserved, in one transaction
        self.message_id, over = limits.start_reply(
            self.store, self.pricer, self.conversation_id, provider=settings.model_id.provider, model=model,
            settings=recorded, messages=self._history, system=settings.system, max_tokens=settings.params.max_tokens,
            budget=self.budget if self.error is None else None)
        self.error = self.error or over
        if self.error is not None:  # refused before anything was sent: recorded as a failed reply
            self._finish("error", error=self.error)

    @property
    def finished(self) -> bool:
        return self.record is not None

    def request_stop(self) -> None:
        """Stop the reply from any thread (a Stop click while another thread streams it): the upstream is
        closed at once and the stream ends with the partial text saved as stopped."""
        self._stop_requested = True
        if self.reply is not None:
            self.reply.close()
        if self.tools is not None:
            self.tools.cancel()  # a running tool call ends now

    @property
    def text(self) -> str:
        """The reply's text received so far."""
        return "".join(self._received)

    @property
    def text_after_steps(self) -> str:
        """The text of the model call under way after the reply's tool steps (all of it when none)."""
        return self.text[self._steps_end:].lstrip("\n")

    @property
    def reasoning(self) -> str:
        """The reasoning received so far (apart from the text)."""
        return "".join(self._reasoning)

    @property
    def reasoning_hidden(self) -> bool:
        return bool(self.reply is not None and self.reply.reasoning_hidden)

    @property
    def answering(self) -> bool:
        """The answer has started (its first token arrived)."""
        return bool(self._received)

    @property
    def thinking_seconds(self) -> float | None:
        """How long the model has thought: from the request to the first answer token (or until now)."""
        reply = self.reply
        if reply is None or reply.started_at is None:
            return None
        end = reply.first_token_at or reply.finished_at or time.monotonic()
        return end - reply.started_at

    @property
    def reasoned(self) -> bool:
        """The reply shows signs of reasoning: text, hidden reasoning, or reasoning tokens reported."""
        reply = self.reply
        return bool(self._reasoning or (reply is not None and (reply.reasoning_hidden
                                                                or reply.usage.reasoning_tokens)))

    @contextmanager
    def running(self) -> Iterator[Turn]:
        """Whatever happens inside the block (a Stop, a rerun, an error before streaming even starts), the
        reply row leaves 'streaming': open the block right after creating the turn."""
        try:
            yield self
        finally:
            self.stop()

    def stream(self, *, flush_every: float = 0.03, checkpoint_every: float = 1.0,
               heartbeat: float = 0.1) -> Iterator[str]:
        """Yield the reply's text, coalesced to about one chunk per ``flush_every`` seconds.

        When the provider is silent for ``heartbeat`` seconds an empty string is yielded, so the consumer
        gets a chance to notice a Stop. Closing this generator (``.close()``) stops the reply: the HTTP
        stream is closed at once and the partial text is saved as stopped. With ``idle_timeout``, a reply
        that brings no text for that long fails as timed out, even if the provider keeps the connection
        alive with pings (which reset the SDK's own read timeout)."""
        if self.error is not None:
            raise self.error
        if self._stop_requested:  # stopped before it was sent: nothing reaches the provider
            self._finish("stopped")
            return
        last_checkpoint = time.monotonic()
        try:
            while self.tools is not None and not self.tools.ready():  # a chosen tool server is still being listed
                if self._stop_requested:
                    self._finish("stopped")
                    return
                if time.monotonic() - last_checkpoint >= checkpoint_every:  # alive, not crashed
                    self._checkpoint()
                    last_checkpoint = time.monotonic()
                time.sleep(min(heartbeat, 0.05))
                yield ""
        except BaseException:  # closed while waiting (Stop, rerun): nothing was sent
            self._finish("stopped")
            raise
        while True:
            ended = yield from self._stream_reply(flush_every=flush_every, checkpoint_every=checkpoint_every,
                                                  heartbeat=heartbeat)
            if ended:
                return
            yield from self._tool_step(heartbeat, checkpoint_every)
            if self.finished:
                return

    def _stream_reply(self, *, flush_every: float, checkpoint_every: float, heartbeat: float):
        """Stream one model call; True when the turn has finished (or failed), False when the model asked for
        tools this turn may run (the caller runs them and calls the model again)."""
        model = self.settings.model_id.model
        extra = {"tools": self.tools.defs} if self.tools is not None and self.tools.defs else {}
        try:
            self.reply = self.provider.stream(model, self._history, system=self.settings.system or None,
                                              params=self.settings.params, **extra)
        except ProviderError as exc:
            self._finish("error", error=exc)
            raise
        if self._first_reply is None:
            self._first_reply = self.reply
        self._step_start = len(self.text)

        items: queue.SimpleQueue = queue.SimpleQueue()
        reply = self.reply

        def pump() -> None:
            try:
                for text in reply.parts():
                    items.put(text)
                items.put(_DONE)
            except BaseException as exc:  # handed to the consumer, which decides
                items.put(exc)

        threading.Thread(target=pump, name=f"reply-{self.message_id}", daemon=True).start()

        received = self._received
        pending: list[str] = []
        thought = False  # reasoning arrived since the consumer was last woken
        last_flush = 0.0
        last_checkpoint = last_text = time.monotonic()
        try:
            while True:
                wait = (heartbeat if not (pending or thought)
                        else max(0.0, last_flush + flush_every - time.monotonic()))
                try:
                    item = items.get(timeout=wait)
                    if self._stop_requested:
                        item = _DONE
                except queue.Empty:
                    if self._stop_requested:
                        break
                    now = time.monotonic()
                    if pending:
                        yield self._flush(pending)
                        last_flush = time.monotonic()
                    else:
                        yield ""  # a heartbeat, or news of reasoning (turn.reasoning_version)
                        if thought:
                            last_flush = time.monotonic()
                    thought = False
                    limit = self.idle_timeout if received else self.first_output_timeout
                    if limit and now - last_text > limit:
                        reply.close()
                        silent = f"no text for {limit:.0f} s"
                        raise (StreamError if received else Timeout)(silent, provider=reply.provider) from None
                    if now - last_checkpoint >= checkpoint_every:  # keeps a live row fresh while silent
                        self._checkpoint()
                        last_checkpoint = now
                    continue
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    if pending:
                        yield self._flush(pending)
                    raise item
                if isinstance(item, Reasoning):  # activity: it restarts the clock, and the consumer hears of it
                    self._reasoning.append(item)
                    self.reasoning_version += 1
                    now = last_text = time.monotonic()
                    thought = True
                    if not pending and now - last_flush >= flush_every:
                        thought = False
                        yield ""
                        last_flush = time.monotonic()
                    if now - last_checkpoint >= checkpoint_every:
                        self._checkpoint()
                        last_checkpoint = now
                    continue
                if self._separate:  # the first text of a step after tool calls: a paragraph of its own
                    self._separate = False
                    item = "\n\n" + item
                received.append(item)
                pending.append(item)
                now = last_text = time.monotonic()
                if now - last_flush >= flush_every:
                    thought = False
                    yield self._flush(pending)
                    last_flush = time.monotonic()
                if now - last_checkpoint >= checkpoint_every:
                    self._checkpoint()
                    last_checkpoint = now
            if pending:
                yield self._flush(pending)
            if self._stop_requested:
                reply.close()
                self._finish("stopped")
            elif self.tools is not None and self.tools.defs and reply.calls:
                return False
            else:
                self._finish("complete" if reply.provider_finished else "unfinished")
            return True
        except ProviderError as exc:
            self._finish("error", error=exc)
            raise
        except BaseException:
            # GeneratorExit (the consumer closed us: Stop, rerun, closed tab) or anything unexpected:
            # close the upstream at once and keep what was received, marked stopped. No yielding here.
            reply.close()
            self._finish("stopped")
            raise
        finally:
            reply.close()

    def _close_step(self, reply: Reply) -> StepRecord:
        """The model call ``reply`` as a step: its text, usage and cost (counted once, when it closes)."""
        text = self.text[self._step_start:].lstrip("\n")
        usage = tokens.fill_missing_usage(reply.usage, messages=self._history, system=self.settings.system,
                                          reply_text=text + "".join(reply.reasoning_chunks),
                                          model=self.settings.model_id.model)
        model_id = self.settings.model_id
        cost = self.pricer.cost(model_id.provider, model_id.model, usage).usd
        if cost is None and usage.provider_cost is not None:
            cost = usage.provider_cost
        self._step_usages.append((usage, cost))
        self._stepped = reply
        return StepRecord(text=text, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                          exact=usage.exact, cost=cost, duration=reply.duration, finish_reason=reply.finish_reason)

    def _spent_so_far(self) -> float:
        return sum(cost or 0.0 for _, cost in self._step_usages)

    def _tool_step(self, heartbeat: float, checkpoint_every: float = 1.0):
        """Run the calls the last model call asked for (approval, in parallel), then hand the results back to
        the history for the next call. Finishes the turn at the step limit, at the spend limit or on a Stop.
        While calls wait for the user or run, the row is still checkpointed every ``checkpoint_every``
        seconds: a row left unwritten looks like a crashed reply (any process marks it interrupted)."""
        reply = self.reply
        runner = self.tools
        step = self._close_step(reply)
        self._steps_end = len(self.text)
        self.steps.append(step)
        if len(self.steps) >= runner.max_steps:
            step.calls = [CallRecord(id=c.id, wire_name=c.name, server=None, tool=c.name, arguments=c.arguments,
                                     status="skipped", error="The step limit was reached.") for c in reply.calls]
            self.steps_version += 1
            self._finish("unfinished", finish_reason="step_limit")
            return
        step.calls = runner.start(reply.calls)
        self.steps_version += 1
        self._checkpoint()
        last_checkpoint = time.monotonic()
        try:
            while not runner.poll():
                if self._stop_requested:
                    runner.cancel()
                    break
                self.steps_version += 1
                if time.monotonic() - last_checkpoint >= checkpoint_every:
                    self._checkpoint()
                    last_checkpoint = time.monotonic()
                time.sleep(min(heartbeat, 0.05))
                yield ""
        except BaseException:
            runner.cancel()
            self.steps_version += 1
            self._finish("stopped")
            raise
        self.steps_version += 1
        if self._stop_requested:
            self._finish("stopped")
            return
        self._checkpoint()  # the step's calls settled: stored before the next model call
        over = self._over_budget()
        if over is not None:
            self._finish("error", error=over)
            return
        self._history = [*self._history,
                         Message("assistant", step.text, tool_calls=tuple(reply.calls)),
                         Message("user", "", tool_results=tuple(runner.results(step.calls)))]
        self._separate = bool(self.text)
        yield ""

    def _over_budget(self) -> ProviderError | None:
        """The spend limit, checked before each further model call with what this reply has cost so far."""
        if self.budget is None:
            return None
        spent, reserved = self.store.spend_since(self.budget.user, self.budget.since)
        if spent + reserved + self._spent_so_far() >= self.budget.limit:
            return limits.SpendLimitReached(spent + self._spent_so_far(), self.budget.limit, reserved)
        return None

    def decide(self, call_id: str, approve: bool) -> None:
        """Approve or deny a tool call waiting for the user (from any thread)."""
        if self.tools is not None:
            self.tools.decide(call_id, approve)
            self.steps_version += 1

    @property
    def waiting_calls(self) -> list[CallRecord]:
        return self.tools.waiting if self.tools is not None else []

    def _checkpoint(self) -> None:
        """The reply so far into its row. After tool steps, the text of the model call under way goes with
        them as a step of its own, so whoever reads the row (another app process following it, a transcript
        of a crashed reply) sees every step and the answer as far as it got; the finish replaces it."""
        steps = None
        if self.steps:
            steps = list(self.steps)
            if self.text_after_steps:
                steps.append(StepRecord(text=self.text_after_steps))
        try:
            self.store.checkpoint_reply(self.message_id, self.text, self.reasoning or None,
                                        steps_to_json(steps) if steps else None)
        except StoreError:
            pass  # the database is busy or gone for a moment: the next checkpoint (or the finish) retries

    @staticmethod
    def _flush(pending: list[str]) -> str:
        text = "".join(pending)
        pending.clear()
        return text

    def stop(self) -> None:
        """Stop from outside the generator (e.g. the consumer is gone): close upstream, save as stopped."""
        if self.reply is not None:
            self.reply.close()
        if self.tools is not None:
            self.tools.cancel()
        if not self.finished:
            self._finish("stopped")

    def _finish(self, status: str, error: ProviderError | None = None, finish_reason: str | None = None) -> None:
        with self._finishing:  # the streaming thread and a Stop from another thread may both get here
            self._finish_once(status, error, finish_reason)

    def _finish_once(self, status: str, error: ProviderError | None, forced_reason: str | None = None) -> None:
        if self.finished:
            return
        if self.tools is not None:
            self.tools.cancel()
        self.error = error
        reply = self.reply
        model_id = self.settings.model_id
        text = self.text
        usage = None
        ttft = duration = None
        finish_reason = None
        tool_calls: list[str] = []
        reasoning = self.reasoning
        if reply is not None:
            # reasoning is output too: a reply stopped or failed while the model thought is billed for it
            usage = tokens.fill_missing_usage(reply.usage, messages=self._history, system=self.settings.system,
                                              reply_text=text + reasoning, model=model_id.model)
            if not usage.output_exact and reasoning and usage.reasoning_tokens is None:
                usage.reasoning_tokens = tokens.count_text(reasoning, model_id.model).tokens
            ttft = reply.time_to_first_token
            duration = reply.duration
            finish_reason = reply.finish_reason
            tool_calls = reply.tool_calls
        cost = self.pricer.cost(model_id.provider, model_id.model, usage).usd if usage else None
        cache_saved = self.pricer.cache_saving(model_id.provider, model_id.model, usage) if usage else None
        cost_source = None
        if cost is None and usage is not None and usage.provider_cost is not None:
            cost, cost_source = usage.provider_cost, "provider"  # no price of ours: what the server billed
        nothing_sent = reply is None or reply.started_at is None  # never iterated: no request made
        refused = (status == "error" and not text and not reasoning and not reply.usage.input_exact
                   and not reply.reasoning_hidden) if reply else False
        if nothing_sent or refused:
            # nothing reached the provider, or it refused: nothing billed
            usage, cost, cost_source, cache_saved = None, 0.0, None, None
        steps = None
        if self.steps:  # a reply that used tools: every model call of the loop counts
            if reply is not None and reply is not self._stepped and not nothing_sent:
                final = StepRecord(text=text[self._step_start:].lstrip("\n"), input_tokens=usage.input_tokens
                                   if usage else None, output_tokens=usage.output_tokens if usage else None,
                                   exact=bool(usage and usage.exact), cost=cost, duration=reply.duration,
                                   finish_reason=reply.finish_reason)
                self.steps.append(final)
                self._step_usages.append((usage, cost))
            usage, cost = _sum_usage(self._step_usages)
            savings = [self.pricer.cache_saving(model_id.provider, model_id.model, part)
                       for part, _ in self._step_usages if part is not None]  # each model call's own
            cache_saved = None if all(x is None for x in savings) else sum(x or 0.0 for x in savings)
            first = self._first_reply
            ttft = first.time_to_first_token if first is not None else ttft
            if first is not None and first.started_at is not None:
                duration = (reply.finished_at or time.monotonic()) - first.started_at
            tool_calls = []
            steps = steps_to_json(self.steps)
        if forced_reason:
            finish_reason = forced_reason
        for attempt in range(3):  # the final write must land: a busy database gets two more chances
            try:
                self.record = self.store.finish_reply(
                    self.message_id, content=text, status=status, usage=usage, cost=cost, ttft=ttft,
                    duration=duration, finish_reason=finish_reason,
                    error=(error.hint if error else None), tool_calls=tool_calls, cost_source=cost_source,
                    cache_saved=cache_saved if cost is not None and cost_source is None else None,
                    reasoning=reasoning or None,
                    reasoning_ttft=reply.time_to_first_reasoning if reply is not None else None,
                    reasoning_hidden=bool(reply is not None and reply.reasoning_hidden),
                    **({"tool_steps": steps} if steps is not None else {}),
                )
                return
            except DatabaseBusy:
                if attempt == 2:
                    raise


def send(ctx: TurnContext, conversation_id: str, prompt: str, settings: TurnSettings, *,
         files: tuple[Attachment, ...] = ()) -> Turn:
    """Save the user's message and its files (committed before any provider call), then open the reply.
    Past the user's daily spending limit the reply is refused (recorded as failed, nothing sent)."""
    ctx.store.add_user_message(conversation_id, prompt, files)
    return answer(ctx, conversation_id, settings)


def answer(ctx: TurnContext, conversation_id: str, settings: TurnSettings) -> Turn:
    """Open the reply to the conversation's messages as they are (the user's message already saved).
    Past the user's daily spending limit, counting what replies still streaming have reserved, the reply is
    refused (recorded as failed, nothing sent)."""
    return Turn.open(ctx, conversation_id, settings)


def last_position(rows: list[dict], role: str) -> int | None:
    for row in reversed(rows):
        if row["role"] == role and not row.get("superseded"):
            return row["position"]
    return None


def regenerate(ctx: TurnContext, conversation_id: str, settings: TurnSettings) -> Turn:
    """Replace the last reply (or retry a failed one): the old reply is superseded, not erased, so what
    it cost stays counted."""
    rows = ctx.store.messages(conversation_id)
    user_pos = last_position(rows, "user")
    if user_pos is None:
        raise ValueError("there is no message to answer")
    ctx.store.supersede_from(conversation_id, user_pos + 1)
    return answer(ctx, conversation_id, settings)


def edit_last(ctx: TurnContext, conversation_id: str, prompt: str, settings: TurnSettings) -> Turn:
    """Replace the last user message with ``prompt`` and answer it afresh; its attached files go with the
    new one."""
    rows = ctx.store.messages(conversation_id)
    user_pos = last_position(rows, "user")
    if user_pos is None:
        raise ValueError("there is no message to edit")
    last_user = next(r for r in rows if r["position"] == user_pos)
    files = tuple(Attachment.from_meta(meta) for meta in last_user.get("attachments") or ())
    ctx.store.supersede_from(conversation_id, user_pos)
    return send(ctx, conversation_id, prompt, settings, files=files)



# ---------------------------------------------------------------- versions of the last reply, the next send


def reply_versions(rows: list[dict]) -> list[dict]:
    """The versions of the conversation's last reply, oldest first: every reply after the last visible user
    message (``rows`` must include the superseded ones). Regenerate adds one; a superseded version with no
    text (a failure before its first token) is left out. The visible one is what is shown and what the
    next message continues from."""
    user_pos = last_position(rows, "user")
    if user_pos is None:
        return []
    return [r for r in rows if r["role"] == "assistant" and r["position"] > user_pos
            and (not r.get("superseded") or (r.get("content") or "").strip())]


def show_version(store: Store, conversation_id: str, message_id: int) -> None:
    """Show (and continue from) this version of the last reply; the others stay stored, superseded."""
    store.show_reply(conversation_id, message_id)


@dataclass(frozen=True)
class NextCost:
    """What sending the conversation as it stands would cost on a model, before the user's next message:
    ``input_tokens`` (history and system prompt, counted locally), the output at ``output_tokens`` (the max
    tokens setting, else DEFAULT_OUTPUT_RESERVE). Costs are None when the model's price is unknown."""

    model: str
    input_tokens: int
    output_tokens: int
    input_cost: float | None
    total_cost: float | None


def next_cost(pricer: Pricer, settings: TurnSettings, rows: list[dict]) -> NextCost:
    """The estimate shown under the input: the visible ``rows`` as they would be sent to ``settings``'
    model, and a reply as long as it may get. Cache discounts are not counted: an upper bound."""
    model_id = settings.model_id
    input_tokens = tokens.estimate_input(history_from_rows(rows), model_id.model, settings.system).tokens
    output_tokens = settings.params.max_tokens or DEFAULT_OUTPUT_RESERVE
    input_cost = pricer.cost(model_id.provider, model_id.model, Usage(input_tokens, 0)).usd
    total = pricer.cost(model_id.provider, model_id.model, Usage(input_tokens, output_tokens)).usd
    return NextCost(str(model_id), input_tokens, output_tokens, input_cost, total)
