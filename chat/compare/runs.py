"""One interactive compare run: the compare run and one conversation per target saved, a turn opened for
each, the columns streamed in parallel, and a streaming column's figures so far.

:func:`start_run` opens a run. Whoever streams the turns (the page, in parallel fragments; :func:`stream_all`
in threads) must close each turn's generator when done or stopped: that closes the upstream and saves the
reply as stopped."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from chat import attachments, tokens, turns
from chat.attachments import Attachment
from chat.compare.targets import LABELS, CompareError, check_targets
from chat.pricing import Pricer
from chat.providers.base import Message, ProviderError, Usage
from chat.store import StoreError


@dataclass
class Column:
    """One target of a live run: its label, conversation and the turn to stream."""

    label: str
    target: turns.TurnSettings
    conversation_id: str
    turn: turns.Turn


@dataclass
class LiveRun:
    """A run whose replies are being streamed.

    Each column is streamed by whoever :meth:`claim` s it first, who must call :meth:`column_done` when it
    has finished (in a ``finally``). If the run is interrupted before every column was claimed (its
    streamers never started), :meth:`abandon_unclaimed` saves the rest as stopped, so no reply is left
    "streaming". :meth:`wait` returns True once every column has finished."""

    run_id: str
    prompt: str
    blind: bool
    columns: list[Column]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._open = set(range(len(self.columns)))
        self._claimed: set[int] = set()
        self._done = threading.Event()
        if not self._open:
            self._done.set()

    def claim(self, index: int) -> bool:
        """Take column ``index`` to stream it; False if it was taken or abandoned already."""
        with self._lock:
            if index in self._claimed:
                return False
            self._claimed.add(index)
            return True

    def abandon_unclaimed(self) -> list[int]:
        """Save every column nobody has claimed as stopped (nothing was sent for them); returns them."""
        with self._lock:
            left = [i for i in range(len(self.columns)) if i not in self._claimed]
            self._claimed.update(left)
        for index in left:
            try:
                self.columns[index].turn.stop()
            finally:
                self.column_done(index)
        return left

    def column_done(self, index: int) -> None:
        with self._lock:
            self._open.discard(index)
            if not self._open and not self._done.is_set():
                self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done.is_set()


def start_run(contexts: turns.TurnContexts, prompt: str, targets: Sequence[turns.TurnSettings], *,
              blind: bool = False, options: Mapping | None = None, files: Sequence[Attachment] = (),
              rng: random.Random | None = None) -> LiveRun:
    """Save a compare run of ``contexts.user`` with one conversation per target (the prompt and its attached
    ``files`` saved as each one's first message; the files' bytes once) and open a turn for each, each with the
    context ``contexts`` gives its model. Nothing is sent yet: streaming each turn sends its request. Past the
    user's daily limit every turn is refused before anything is sent, as in a chat. Files over
    ``contexts.file_limits``, or of a kind a target cannot read (its capabilities' ``image_input`` /
    ``pdf_input`` False), stop the run before anything is saved.

    OpenAI's stream parser is built (once per process) before returning: the columns' clocks start when they
    are streamed, and a column paying that build would rank unfairly."""
    prompt = prompt.strip()
    if not prompt:
        raise CompareError("Write a prompt first.")
    check_targets(targets, contexts.providers)
    for target in targets:
        caps = contexts.capabilities_of(target.model_id) if files else None
        try:
            attachments.check(files, limits=contexts.file_limits, model=target.model_id.model,
                              image_input=getattr(caps, "image_input", None),
                              pdf_input=getattr(caps, "pdf_input", None))
        except attachments.AttachmentError as exc:
            raise CompareError(exc.hint) from None
    order = list(range(len(targets)))
    if blind:
        (rng or random.Random()).shuffle(order)
    shown = [targets[i] for i in order]
    settings = {
        "mode": "single",
        **(options or {}),
        "targets": [{"label": LABELS[pos], **t.as_dict()} for pos, t in enumerate(shown)],
    }
    store, user = contexts.store, contexts.user
    run_id = store.create_compare_run(user=user, prompt=prompt, settings=settings, blind=blind)
    columns: list[Column] = []
    try:
        for pos, target in enumerate(shown):
            label = LABELS[pos]
            cid = store.create_conversation(user=user, source="compare", compare_run_id=run_id,
                                            settings={**target.as_dict(), "label": label})
            turn = turns.send(contexts.for_model(target.model_id), cid, prompt, target, files=tuple(files))
            columns.append(Column(label, target, cid, turn))
    except StoreError:
        # the database failed midway: the columns already opened end as stopped (nothing was sent), so
        # none is left streaming with its spend reserved
        for column in columns:
            with contextlib.suppress(StoreError):
                column.turn.stop()
        raise
    from chat.providers import openai as openai_adapter

    openai_adapter.warm_up()
    return LiveRun(run_id, prompt, blind, columns)


def stream_column(live: LiveRun, index: int, *, stop: threading.Event | None = None,
                  on_text: Callable[[int, str], None] | None = None, flush_every: float = 0.03) -> None:
    """Drain one column's reply (outside Streamlit: tests, benchmarks). Stops when ``stop`` is set; the
    generator is closed in every case, so a stop closes the upstream and saves the reply as stopped."""
    if not live.claim(index):
        return
    turn = live.columns[index].turn
    chunks = turn.stream(flush_every=flush_every)
    try:
        for chunk in chunks:
            if stop is not None and stop.is_set():
                break
            if chunk and on_text is not None:
                on_text(index, chunk)
    except ProviderError:
        pass  # recorded on the reply (turn.error, turn.record)
    finally:
        chunks.close()
        turn.stop()
        live.column_done(index)


def stream_all(live: LiveRun, *, stop: threading.Event | None = None,
               on_text: Callable[[int, str], None] | None = None) -> LiveRun:
    """Stream every column at once, each in its own thread, and return when all have finished."""
    threads = [threading.Thread(target=stream_column, args=(live, i), kwargs={"stop": stop, "on_text": on_text},
                                name=f"compare-{live.run_id[:6]}-{i}", daemon=True)
               for i in range(len(live.columns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return live


def input_estimate(prompt: str, target: turns.TurnSettings) -> int:
    """The prompt's tokens for ``target`` as estimated locally (until the provider reports them)."""
    return tokens.estimate_input([Message("user", prompt)], target.model_id.model, target.system).tokens


def live_row(turn: turns.Turn, *, input_tokens: int | None = None, pricer: Pricer | None = None) -> dict:
    """A streaming reply's figures so far, shaped like a stored reply row (:func:`chat.display.column_figures`
    draws it). Figures the provider has not reported yet are estimated: the output from the text received, the
    input from ``input_tokens`` (see :func:`input_estimate`); with a ``pricer`` the cost so far is estimated too."""
    reply = turn.reply
    model_id = turn.settings.model_id
    row: dict = {"status": "streaming", "model": model_id.model}
    if reply is None:
        return row
    usage = reply.usage
    row.update(ttft=reply.time_to_first_token, duration=reply.duration,
               reasoning_ttft=reply.time_to_first_reasoning, reasoning_tokens=usage.reasoning_tokens)
    if usage.input_tokens is not None:
        row.update(input_tokens=usage.input_tokens, input_exact=usage.input_exact)
    elif input_tokens is not None:
        row.update(input_tokens=input_tokens, input_exact=False)
    text = turn.text + turn.reasoning  # reasoning is output too
    if usage.output_tokens is not None:
        row.update(output_tokens=usage.output_tokens, output_exact=usage.output_exact)
    elif text:
        row.update(output_tokens=tokens.count_text(text, model_id.model).tokens, output_exact=False)
    if pricer is not None and row.get("input_tokens") is not None:
        so_far = Usage(input_tokens=row["input_tokens"], output_tokens=row.get("output_tokens") or 0,
                       cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens)
        row["cost"] = pricer.cost(model_id.provider, model_id.model, so_far).usd
    return row
