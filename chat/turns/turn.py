"""One chat turn: the reply to a conversation streamed, its usage, cost and status recorded.

:func:`chat.turns.send` (or ``regenerate`` / ``edit_last``) opens a :class:`Turn`, whose ``stream()`` a page
feeds to ``st.write_stream`` (or a live reply's thread drains). Whatever happens to the stream, the reply row is
finished: complete (the provider said it finished), unfinished (the stream ended without that), stopped (the
consumer closed the generator: a Stop click, a rerun, a closed tab), or error (a provider failure, with the
partial text kept). While streaming, the partial text is checkpointed at least every second, so a crash loses
at most about a second of it.

Reasoning: the turn keeps what the model thought (``reasoning``, ``thinking_seconds``) apart from its text,
so any consumer (a page, a background runner) can show it live; ``stream()`` yields an empty string when new
reasoning has arrived, at most once per flush. Time limits: ``idle_timeout`` bounds the silence between
chunks once the answer flows; before the first answer token, ``first_output_timeout`` does, and every
reasoning delta restarts that clock (a model may think for minutes, sending nothing or only its thoughts).

Tools: when the model asks for tools the turn may run, the calls run (see chat/tool_loop.py) and the model is
called again; each model call is a step, and the reply's usage and cost are those of every step together.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from chat import limits, tokens
from chat.display import SKIPPED_AT_STEP_LIMIT
from chat.providers import takes_temperature
from chat.providers.base import (
    ContextTooLong,
    Message,
    ProviderError,
    Reasoning,
    Reply,
    StreamError,
    Timeout,
    Usage,
)
from chat.store import DatabaseBusy, StoreError
from chat.tool_loop import CallRecord, StepRecord, steps_to_json
from chat.turns.cost import Priced, cache_saved_sum, call_cost, refused_unbilled, sum_calls
from chat.turns.request import fit_context, history_from_rows, with_file_data
from chat.turns.settings import TurnContext, TurnSettings

_DONE = object()


class Turn:
    """One assistant reply in a conversation. :meth:`open` (or :func:`send` and friends) starts it; the
    constructor only sets it up and reads or writes nothing."""

    def __init__(self, ctx: TurnContext, conversation_id: str, settings: TurnSettings):
        provider = ctx.provider
        if settings.params.temperature is not None and not takes_temperature(provider):
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
        self.ctx = ctx
        self.budget = limits.budget(ctx.user, ctx.daily_limit)
        self.steps: list[StepRecord] = []  # the model calls of a reply that used tools (see chat/tool_loop.py)
        self.steps_version = 0  # grows whenever a step or call changes: a consumer redraws when it changed
        self._step_usages: list[Priced] = []  # each closed step's usage and cost
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
                reserve=settings.params.max_tokens or limits.DEFAULT_OUTPUT_RESERVE)
        except ContextTooLong as exc:
            self.error = exc
        self._history = with_file_data(self.store, self._history)
        if self.dropped:
            recorded["context_dropped"] = self.dropped
        # Checked against the spending budget, with the reply's likely cost reserved, in one transaction
        self.message_id, over = limits.start_reply(
            self.ctx, self.conversation_id, settings, self._history, recorded=recorded,
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
        cost, _source = call_cost(self.pricer, self.settings.model_id, usage)
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
                                     status="skipped", error=SKIPPED_AT_STEP_LIMIT) for c in reply.calls]
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
            usage = self._final_usage(reply, text, reasoning)
            ttft = reply.time_to_first_token
            duration = reply.duration
            finish_reason = reply.finish_reason
            tool_calls = reply.tool_calls
        cost, cost_source = call_cost(self.pricer, model_id, usage) if usage else (None, None)
        cache_saved = self.pricer.cache_saving(model_id.provider, model_id.model, usage) if usage else None
        nothing_sent = reply is None or reply.started_at is None  # never iterated: no request made
        if nothing_sent or refused_unbilled(reply, status, text, reasoning):
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
            usage, cost = sum_calls(self._step_usages)
            cache_saved = cache_saved_sum(self.pricer, model_id, self._step_usages)
            first = self._first_reply
            ttft = first.time_to_first_token if first is not None else ttft
            if first is not None and first.started_at is not None:
                duration = (reply.finished_at or time.monotonic()) - first.started_at
            tool_calls = []
            steps = steps_to_json(self.steps)
        self._write_record(
            content=text, status=status, usage=usage, cost=cost, ttft=ttft, duration=duration,
            finish_reason=forced_reason or finish_reason, error=(error.hint if error else None),
            tool_calls=tool_calls, cost_source=cost_source,
            cache_saved=cache_saved if cost is not None and cost_source is None else None,
            reasoning=reasoning or None,
            reasoning_ttft=reply.time_to_first_reasoning if reply is not None else None,
            reasoning_hidden=bool(reply is not None and reply.reasoning_hidden),
            **({"tool_steps": steps} if steps is not None else {}),
        )

    def _final_usage(self, reply: Reply, text: str, reasoning: str) -> Usage:
        """The last model call's usage, estimated where the provider reported none. Reasoning is output too:
        a reply stopped or failed while the model thought is billed for it."""
        model = self.settings.model_id.model
        usage = tokens.fill_missing_usage(reply.usage, messages=self._history, system=self.settings.system,
                                          reply_text=text + reasoning, model=model)
        if not usage.output_exact and reasoning and usage.reasoning_tokens is None:
            usage.reasoning_tokens = tokens.count_text(reasoning, model).tokens
        return usage

    def _write_record(self, **fields) -> None:
        """The finished reply into its row. This write must land: a busy database gets two more chances."""
        for attempt in range(3):
            try:
                self.record = self.store.finish_reply(self.message_id, **fields)
                return
            except DatabaseBusy:
                if attempt == 2:
                    raise
