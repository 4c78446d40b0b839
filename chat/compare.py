"""Comparing models: one prompt sent to 2-4 targets side by side, votes, rankings, and batch runs.

Every call goes through the chat turn machinery (:mod:`chat.turns`), so each target's reply is recorded
exactly like a chat reply (usage, cost, status, partial text when stopped) in a conversation of its own
with ``source="compare"``, linked to one compare run (``compare_runs``) that holds the prompt, the settings
and the vote. "Continue this column as a chat" is then just opening that conversation on the chat page.

- :func:`start_run` opens a run: the compare run, one conversation per target, one :class:`~chat.turns.Turn`
  each. Whoever streams the turns (the page, in parallel fragments; :func:`stream_all` in threads) must
  close each turn's generator when done or stopped: that closes the upstream and saves the reply as stopped.
- :func:`load_run` reads a saved run back for display; :func:`ranks` and :func:`summary_rows` rank it.
- :class:`BatchRun` runs many prompts against all targets with a bounded number of calls in flight.

Labels are A, B, C, D in display order. In blind mode the targets are shuffled before labels are given,
so neither the label nor the position says which model wrote a column; the run's settings record which
target got which label, and a vote is stored as the label (or ``tie`` / ``all_bad``).

Never imports streamlit.
"""

from __future__ import annotations

import contextlib
import csv
import io
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chat import attachments, tokens, turns
from chat.attachments import Attachment
from chat.config import ModelId, parse_model_id
from chat.display import cost_text, csv_cell, ending, first_token_parts, output_text, tokens_per_second
from chat.pricing import Pricer, format_cost, format_tokens
from chat.providers.base import Message, Params, Provider, ProviderError, Usage
from chat.store import Store, StoreError

MIN_TARGETS = 2
MAX_TARGETS = 4
LABELS = "ABCD"
TIE = "tie"
ALL_BAD = "all_bad"
MAX_IN_FLIGHT = 16
MAX_BATCH_PROMPTS = 500

WindowFor = Callable[[ModelId], "int | None"]


class CompareError(ValueError):
    """A compare request that cannot run as asked; ``str(error)`` is one sentence for the UI."""


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One side of a comparison: a model and the settings it answers with. The same model may appear
    twice with different settings."""

    model_id: ModelId
    system: str | None = None
    params: Params = Params()

    @classmethod
    def parse(cls, value: str, *, system: str | None = None, temperature: float | None = None,
              max_tokens: int | None = None) -> Target:
        return cls(parse_model_id(value), (system or "").strip() or None,
                   Params(temperature=temperature, max_tokens=max_tokens))

    @property
    def name(self) -> str:
        return str(self.model_id)

    def turn_settings(self) -> turns.TurnSettings:
        return turns.TurnSettings(model_id=self.model_id, system=self.system, params=self.params)

    def as_dict(self) -> dict:
        return self.turn_settings().as_dict()


def describe_settings(settings: Mapping, *, temperature_supported: bool = True) -> str:
    """The parameters that set a target apart, for a column header: "temperature 0.2 · max 512 tokens"."""
    parts = []
    if settings.get("temperature") is not None:
        unsent = "" if temperature_supported else " (not sent: this provider takes none)"
        parts.append(f"temperature {settings['temperature']:g}{unsent}")
    if settings.get("max_tokens") is not None:
        parts.append(f"max {settings['max_tokens']:,} tokens")
    return " · ".join(parts)


def check_targets(targets: Sequence[Target], providers: Mapping[str, Provider]) -> None:
    if not MIN_TARGETS <= len(targets) <= MAX_TARGETS:
        raise CompareError(f"Choose between {MIN_TARGETS} and {MAX_TARGETS} targets to compare.")
    missing = sorted({t.model_id.provider for t in targets} - set(providers))
    if missing:
        raise CompareError(f"No provider named {', '.join(missing)} is configured; pick another target.")


# ---------------------------------------------------------------- one interactive run


@dataclass
class Column:
    """One target of a live run: its label, conversation and the turn to stream."""

    label: str
    target: Target
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
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None

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
                self.finished_at = time.monotonic()
                self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started_at


def start_run(store: Store, providers: Mapping[str, Provider], pricer: Pricer, *, user: str, prompt: str,
              targets: Sequence[Target], blind: bool = False, window_for: WindowFor | None = None,
              options: Mapping | None = None, rng: random.Random | None = None,
              daily_limit: float | None = None, files: Sequence[Attachment] = (),
              capabilities_for: Callable[[ModelId], Any] | None = None,
              file_limits: attachments.Limits | None = None) -> LiveRun:
    """Save a compare run with one conversation per target (the prompt and its attached ``files`` saved as
    each one's first message; the files' bytes once) and open a turn for each. Nothing is sent yet:
    streaming each turn sends its request. Past the user's ``daily_limit`` (USD) every turn is refused
    before anything is sent, as in a chat. Files over a limit, or of a kind a target cannot read
    (``capabilities_for(model_id).image_input / pdf_input`` False), stop the run before anything is saved."""
    prompt = prompt.strip()
    if not prompt:
        raise CompareError("Write a prompt first.")
    check_targets(targets, providers)
    for target in targets:
        caps = capabilities_for(target.model_id) if capabilities_for is not None and files else None
        try:
            attachments.check(files, limits=file_limits or attachments.Limits(), model=target.model_id.model,
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
    run_id = store.create_compare_run(user=user, prompt=prompt, settings=settings, blind=blind)
    columns: list[Column] = []
    try:
        for pos, target in enumerate(shown):
            label = LABELS[pos]
            cid = store.create_conversation(user=user, source="compare", compare_run_id=run_id,
                                            settings={**target.as_dict(), "label": label})
            turn = turns.send(store, providers[target.model_id.provider], pricer, cid, prompt,
                              target.turn_settings(),
                              context_window=window_for(target.model_id) if window_for else None,
                              user=user, daily_limit=daily_limit, files=tuple(files))
            columns.append(Column(label, target, cid, turn))
    except StoreError:
        # the database failed midway: the columns already opened end as stopped (nothing was sent), so
        # none is left streaming with its spend reserved
        for column in columns:
            with contextlib.suppress(StoreError):
                column.turn.stop()
        raise
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


# ---------------------------------------------------------------- a saved run


@dataclass(frozen=True)
class RunColumn:
    label: str
    conversation_id: str
    settings: dict  # provider, model, system, temperature, max_tokens, label
    reply: dict  # the compared reply: the conversation's first assistant message

    @property
    def name(self) -> str:
        return f"{self.settings.get('provider')}:{self.settings.get('model')}"


@dataclass(frozen=True)
class RunView:
    run: dict
    columns: list[RunColumn]

    @property
    def id(self) -> str:
        return self.run["id"]

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.columns]

    @property
    def vote(self) -> str | None:
        return self.run.get("vote")

    @property
    def revealed(self) -> bool:
        """Whether the model names may be shown: always, unless blind and not yet voted."""
        return not self.run.get("blind") or self.vote is not None

    @property
    def streaming(self) -> bool:
        return any(c.reply.get("status") == "streaming" for c in self.columns)


def load_run(store: Store, run_id: str, *, user: str | None = None) -> RunView | None:
    """A saved run with its columns in label order; None if unknown (or another user's)."""
    run = store.get_compare_run(run_id)
    if run is None or (user is not None and run["user"] != user):
        return None
    columns = []
    for row in store.compare_replies([run_id]):
        settings = row.pop("conversation_settings")
        columns.append(RunColumn(settings.get("label") or "?", row["conversation_id"], settings, row))
    columns.sort(key=lambda c: c.label)
    return RunView(run, columns)


def anonymise(text: str, names: Iterable[str]) -> str:
    """``text`` (an error hint, say) with the provider's names replaced, for blind mode: "OpenAI is
    overloaded right now." -> "The provider is overloaded right now." """
    for name in sorted({n for n in names if n}, key=len, reverse=True):
        if text.startswith(name):
            text = "The provider" + text[len(name):]
        text = text.replace(name, "the provider")
    return text


def column_title(view: RunView, column: RunColumn) -> str:
    if not view.revealed:
        return f"{column.label}: model hidden"
    return f"{column.label}: {column.name}"


# ---------------------------------------------------------------- votes


def vote_choices(labels: Sequence[str]) -> list[tuple[str, str]]:
    """(value, button text) for each vote: "A is better" ... "Tie", "Both bad" (or "All bad")."""
    word = "better" if len(labels) == 2 else "best"
    choices = [(label, f"{label} is {word}") for label in labels]
    choices.append((TIE, "Tie"))
    choices.append((ALL_BAD, "Both bad" if len(labels) == 2 else "All bad"))
    return choices


def vote_text(vote: str | None, labels: Sequence[str]) -> str | None:
    return dict(vote_choices(labels)).get(vote) if vote else None


def cast_vote(store: Store, run_id: str, vote: str | None) -> None:
    """Record (or with None, clear) the vote of a run; only the run's labels, tie and all_bad are valid."""
    run = store.get_compare_run(run_id)
    if run is None:
        raise CompareError("That comparison no longer exists.")
    labels = [t.get("label") for t in run["settings"].get("targets", [])]
    if vote is not None and vote not in dict(vote_choices(labels)):
        raise CompareError(f"{vote!r} is not a vote for this comparison.")
    store.set_compare_vote(run_id, vote)


# ---------------------------------------------------------------- ranking


@dataclass(frozen=True)
class Rank:
    latency: int | None  # by total time; complete replies only
    first_token: int | None
    cost: int | None  # known costs of complete replies only


def _competition_ranks(values: Mapping[str, float | None]) -> dict[str, int | None]:
    """1, 1, 3 style: equal values share a rank; None values get no rank."""
    known = sorted((v, k) for k, v in values.items() if v is not None)
    ranks: dict[str, int | None] = dict.fromkeys(values)
    for position, (value, key) in enumerate(known, start=1):
        tied = next((ranks[k] for v, k in known[: position - 1] if v == value), None)
        ranks[key] = tied or position
    return ranks


def ranks(rows: Mapping[str, Mapping]) -> dict[str, Rank]:
    """Rank reply rows (label -> stored reply) by total time, time to first token and cost. Stopped and
    failed replies are not ranked: a partial reply is neither fast nor cheap in any useful sense."""

    def metric(row: Mapping, key: str) -> float | None:
        return row.get(key) if row.get("status") == "complete" else None

    latency = _competition_ranks({k: metric(r, "duration") for k, r in rows.items()})
    first = _competition_ranks({k: metric(r, "ttft") for k, r in rows.items()})
    cost = _competition_ranks({k: metric(r, "cost") for k, r in rows.items()})
    return {k: Rank(latency[k], first[k], cost[k]) for k in rows}


def leaders(rows: Mapping[str, Mapping]) -> dict[str, list[str]]:
    """The labels ranked first: {"first_token": [...], "latency": [...], "cost": [...]} (ties share)."""
    ranked = ranks(rows)
    return {
        "first_token": [k for k, r in ranked.items() if r.first_token == 1],
        "latency": [k for k, r in ranked.items() if r.latency == 1],
        "cost": [k for k, r in ranked.items() if r.cost == 1],
    }


def summary_line(rows: Mapping[str, Mapping]) -> str:
    """ "Fastest first token: A · Fastest reply: B · Cheapest: A" (empty when nothing completed)."""
    best = leaders(rows)
    parts = []
    for key, words in (("first_token", "Fastest first token"), ("latency", "Fastest reply"),
                       ("cost", "Cheapest")):
        if best[key]:
            parts.append(f"{words}: {', '.join(best[key])}")
    return " · ".join(parts)


def _estimated(row: Mapping) -> bool:
    """Whether a reply's cost rests on estimated tokens (a refused call has no tokens: nothing estimated)."""
    counted = [k for k in ("input", "output") if row.get(f"{k}_tokens") is not None]
    return any(not row.get(f"{k}_exact") for k in counted)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def figures(row: Mapping) -> list[str]:
    """A reply's figures as short lines: timing, tokens, cost and status."""
    timing = first_token_parts(dict(row))
    if row.get("duration") is not None:
        timing.append(f"{row['duration']:.1f} s so far" if row.get("status") == "streaming"
                      else f"{row['duration']:.2f} s total")
    rate = tokens_per_second(dict(row))
    if rate is not None:
        timing.append(f"{rate:,.0f} tok/s")
    counts = []
    if row.get("input_tokens") is not None:
        counts.append(f"{format_tokens(row['input_tokens'], estimated=not row.get('input_exact'))} in")
    out = output_text(dict(row))
    if out:
        counts.append(out)
    lines = [" · ".join(timing), " · ".join(counts)]
    if row.get("status") != "streaming" or "cost" in row:
        last = [cost_text(dict(row), estimated=_estimated(row) or row.get("status") == "streaming")]
        word = ending(dict(row)).word
        if word and row.get("status") != "streaming":
            last.append(word)
        lines.append(" · ".join(last))
    return [line for line in lines if line]


def input_estimate(prompt: str, target: Target) -> int:
    """The prompt's tokens for ``target`` as estimated locally (until the provider reports them)."""
    return tokens.estimate_input([Message("user", prompt)], target.model_id.model, target.system).tokens


def live_row(turn: turns.Turn, *, input_tokens: int | None = None, pricer: Pricer | None = None) -> dict:
    """A streaming reply's figures so far, shaped like a stored reply row (``figures`` draws it). Figures
    the provider has not reported yet are estimated: the output from the text received, the input from
    ``input_tokens`` (see :func:`input_estimate`); with a ``pricer`` the cost so far is estimated too."""
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


def summary_rows(view: RunView) -> list[dict]:
    """One row per column for the summary table, in label order, with its latency and cost ranks."""
    rows = {c.label: c.reply for c in view.columns}
    ranked = ranks(rows)
    out = []
    for column in view.columns:
        reply, rank = column.reply, ranked[column.label]
        rate = tokens_per_second(reply)
        out.append({
            "Target": column.label,
            "Model": column.name if view.revealed else "hidden",
            "Status": ending(reply).label,
            "First token": _seconds(reply.get("ttft")),
            "Total time": _seconds(reply.get("duration")),
            "Tokens/s": "—" if rate is None else f"{rate:,.0f}",
            "In": _tokens_cell(reply, "input"),
            "Out": _tokens_cell(reply, "output"),
            "Cost": cost_text(reply, estimated=_estimated(reply)),
            "Latency rank": _rank_cell(rank.latency),
            "Cost rank": _rank_cell(rank.cost),
        })
    return out


def _rank_cell(rank: int | None) -> str:
    return "—" if rank is None else str(rank)


def _tokens_cell(reply: Mapping, kind: str) -> str:
    value = reply.get(f"{kind}_tokens")
    if value is None:
        return "—"
    return format_tokens(value, estimated=not reply.get(f"{kind}_exact"))


# ---------------------------------------------------------------- batch input


def prompts_from_text(text: str) -> list[str]:
    """One prompt per non-blank line, stripped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _csv_text(data: bytes | str) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CompareError("The CSV file is not UTF-8 text; save it as UTF-8 and upload it again.") from None
    return data.removeprefix("\ufeff")


def csv_columns(data: bytes | str) -> list[str]:
    """The header row of a CSV file."""
    try:
        header = next(csv.reader(io.StringIO(_csv_text(data))), [])
    except csv.Error as exc:
        raise CompareError(f"The CSV file cannot be read: {exc}.") from None
    return [name.strip() for name in header]


def prompts_from_csv(data: bytes | str, column: str) -> list[str]:
    """The non-blank cells of ``column`` (named in the header row), in file order."""
    try:
        reader = csv.DictReader(io.StringIO(_csv_text(data)))
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        if column not in reader.fieldnames:
            raise CompareError(f"The CSV file has no column named {column!r}.")
        return [cell.strip() for row in reader if (cell := row.get(column) or "").strip()]
    except csv.Error as exc:
        raise CompareError(f"The CSV file cannot be read: {exc}.") from None


# ---------------------------------------------------------------- batch runs


@dataclass(frozen=True)
class BatchRow:
    """One call of a batch: a prompt sent to one target."""

    prompt_index: int
    prompt: str
    label: str
    target: str
    status: str
    reply: str = ""
    error: str | None = None
    input_tokens: int | None = None
    input_exact: bool = False
    output_tokens: int | None = None
    output_exact: bool = False
    cost: float | None = None
    ttft: float | None = None
    duration: float | None = None
    run_id: str | None = None
    conversation_id: str | None = None
    finish_reason: str | None = None

    @classmethod
    def from_reply(cls, prompt_index: int, prompt: str, label: str, target: str, reply: Mapping, *,
                   run_id: str | None, conversation_id: str | None) -> BatchRow:
        return cls(prompt_index, prompt, label, target, reply.get("status") or "error",
                   reply.get("content") or "", reply.get("error"), reply.get("input_tokens"),
                   bool(reply.get("input_exact")), reply.get("output_tokens"), bool(reply.get("output_exact")),
                   reply.get("cost"), reply.get("ttft"), reply.get("duration"), run_id, conversation_id,
                   reply.get("finish_reason"))

    @property
    def tokens_per_second(self) -> float | None:
        return tokens_per_second({"output_tokens": self.output_tokens, "duration": self.duration,
                                  "ttft": self.ttft})

    @property
    def estimated(self) -> bool:
        return _estimated({"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                           "input_exact": self.input_exact, "output_exact": self.output_exact})


class BatchRun:
    """Every prompt against every target, at most ``max_in_flight`` calls at a time. The user's
    ``daily_limit`` is checked as each call starts: once it is reached, the remaining calls are refused.

    Each prompt is one compare run (``settings.mode == "batch"``, with the batch id and the prompt's index)
    created when its first call starts; each call is a conversation of that run. Iterate :meth:`run` to
    drive it: it yields a :class:`BatchRow` as each call finishes and ``None`` every ``heartbeat`` seconds
    meanwhile. Closing that generator early (or :meth:`cancel`) stops the calls in flight (their replies
    are saved as stopped) and skips the ones not started; it returns once every worker has left."""

    def __init__(self, store: Store, providers: Mapping[str, Provider], pricer: Pricer, *, user: str,
                 prompts: Sequence[str], targets: Sequence[Target], max_in_flight: int = 4,
                 window_for: WindowFor | None = None, batch_id: str | None = None,
                 daily_limit: float | None = None):
        prompts = [p.strip() for p in prompts if p and p.strip()]
        if not prompts:
            raise CompareError("Add at least one prompt.")
        if len(prompts) > MAX_BATCH_PROMPTS:
            raise CompareError(f"A batch takes at most {MAX_BATCH_PROMPTS} prompts; split the list.")
        if not 1 <= len(targets) <= MAX_TARGETS:
            raise CompareError(f"Choose between 1 and {MAX_TARGETS} targets.")
        missing = sorted({t.model_id.provider for t in targets} - set(providers))
        if missing:
            raise CompareError(f"No provider named {', '.join(missing)} is configured; pick another target.")
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise CompareError(f"Calls in flight must be between 1 and {MAX_IN_FLIGHT}.")
        self.store = store
        self.providers = providers
        self.pricer = pricer
        self.user = user
        self.prompts = prompts
        self.targets = list(targets)
        self.labels = list(LABELS[: len(targets)])
        self.max_in_flight = max_in_flight
        self.window_for = window_for
        self.batch_id = batch_id or uuid.uuid4().hex
        self.daily_limit = daily_limit
        self.total = len(prompts) * len(targets)
        self.rows: list[BatchRow] = []
        self._cancel = threading.Event()
        self._runs: dict[int, str] = {}
        self._runs_lock = threading.Lock()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self, *, heartbeat: float = 0.1) -> Iterator[BatchRow | None]:
        results: queue.SimpleQueue = queue.SimpleQueue()
        executor = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix=f"batch-{self.batch_id[:6]}")
        try:
            for p in range(len(self.prompts)):
                for t in range(len(self.targets)):
                    executor.submit(self._call_into, results, p, t)
            done = 0
            while done < self.total:
                try:
                    row = results.get(timeout=heartbeat)
                except queue.Empty:
                    yield None
                    continue
                done += 1
                if row is not None:
                    self.rows.append(row)
                    yield row
        finally:
            if len(self.rows) < self.total:
                self._cancel.set()
            executor.shutdown(wait=True, cancel_futures=True)

    def _call_into(self, results: queue.SimpleQueue, p: int, t: int) -> None:
        try:
            row = None if self._cancel.is_set() else self._call(p, t)
        except Exception as exc:  # a store failure: reported as that call's error, the others go on
            row = BatchRow(p, self.prompts[p], self.labels[t], self.targets[t].name, "error",
                           error=str(exc) if isinstance(exc, StoreError) else f"Unexpected error: {exc!r}")
        results.put(row)

    def _run_for(self, p: int) -> str:
        with self._runs_lock:
            if p not in self._runs:
                settings = {"mode": "batch", "batch_id": self.batch_id, "prompt_index": p,
                            "prompt_count": len(self.prompts),
                            "targets": [{"label": label, **t.as_dict()} for label, t in zip(self.labels,
                                                                                             self.targets,
                                                                                             strict=True)]}
                self._runs[p] = self.store.create_compare_run(user=self.user, prompt=self.prompts[p],
                                                              settings=settings)
            return self._runs[p]

    def _call(self, p: int, t: int) -> BatchRow:
        target, label, prompt = self.targets[t], self.labels[t], self.prompts[p]
        run_id = self._run_for(p)
        cid = self.store.create_conversation(user=self.user, source="compare", compare_run_id=run_id,
                                             settings={**target.as_dict(), "label": label})
        turn = turns.send(self.store, self.providers[target.model_id.provider], self.pricer, cid, prompt,
                          target.turn_settings(),
                          context_window=self.window_for(target.model_id) if self.window_for else None,
                          user=self.user, daily_limit=self.daily_limit)
        chunks = turn.stream(flush_every=0.25)
        try:
            for _ in chunks:
                if self._cancel.is_set():
                    break
        except ProviderError:
            pass  # recorded on the reply
        finally:
            chunks.close()
            turn.stop()
        return BatchRow.from_reply(p, prompt, label, target.name, turn.record or {}, run_id=run_id,
                                   conversation_id=cid)


def batch_rows(store: Store, batch_id: str, *, user: str | None = None) -> list[BatchRow]:
    """A saved batch's calls, by prompt then label."""
    runs = [r for r in store.compare_runs_in_batch(batch_id) if user is None or r["user"] == user]
    by_id = {r["id"]: r for r in runs}
    rows = []
    for reply in store.compare_replies(list(by_id)):
        run = by_id[reply["compare_run_id"]]
        settings = reply.pop("conversation_settings")
        rows.append(BatchRow.from_reply(
            run["settings"].get("prompt_index", 0), run["prompt"], settings.get("label") or "?",
            f"{settings.get('provider')}:{settings.get('model')}", reply, run_id=run["id"],
            conversation_id=reply["conversation_id"]))
    rows.sort(key=lambda r: (r.prompt_index, r.label))
    return rows


def batch_rows_settled(store: Store, batch_id: str, *, user: str | None = None, timeout: float = 3.0,
                       poll: float = 0.05) -> list[BatchRow]:
    """The batch's calls once none is streaming any more, or as they are after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    rows = batch_rows(store, batch_id, user=user)
    while any(r.status == "streaming" for r in rows) and time.monotonic() < deadline:
        time.sleep(poll)
        rows = batch_rows(store, batch_id, user=user)
    return rows


def batch_expected_calls(store: Store, batch_id: str) -> int:
    """How many calls the batch was asked to make (prompts × targets), from any of its saved runs."""
    runs = store.compare_runs_in_batch(batch_id)
    if not runs:
        return 0
    settings = runs[0]["settings"]
    return int(settings.get("prompt_count") or len(runs)) * len(settings.get("targets") or [])


def batch_table(rows: Iterable[BatchRow]) -> list[dict]:
    """Rows for a results table: per prompt and target, tokens, cost, latency and the reply."""
    return [{
        "#": r.prompt_index + 1,
        "Prompt": r.prompt,
        "Target": f"{r.label}: {r.target}",
        "Status": ending({"status": r.status, "finish_reason": r.finish_reason, "content": r.reply}).label,
        "In": None if r.input_tokens is None else format_tokens(r.input_tokens, estimated=not r.input_exact),
        "Out": None if r.output_tokens is None else format_tokens(r.output_tokens, estimated=not r.output_exact),
        "Cost": format_cost(r.cost, estimated=r.estimated) if r.status != "streaming" else None,
        "First token (s)": None if r.ttft is None else round(r.ttft, 2),
        "Total (s)": None if r.duration is None else round(r.duration, 2),
        "Reply": r.error if r.status == "error" and not r.reply else r.reply,
    } for r in rows]


def batch_totals(rows: Iterable[BatchRow], targets: Sequence[str] | None = None) -> list[dict]:
    """Totals per target: calls, how they ended, tokens, cost (known costs; unknown ones counted), mean
    times of the complete calls."""
    groups: dict[str, list[BatchRow]] = {}
    for name in targets or []:
        groups.setdefault(name, [])
    for r in rows:
        groups.setdefault(f"{r.label}: {r.target}", []).append(r)
    out = []
    for name, group in groups.items():
        complete = [r for r in group if r.status == "complete"]
        costs = [r.cost for r in group if r.cost is not None]
        unknown = sum(1 for r in group if r.cost is None and r.status != "streaming")
        estimated = any(r.estimated for r in group)
        cost_text = format_cost(sum(costs), estimated=estimated) if costs or not unknown else "cost unknown"
        if costs and unknown:
            cost_text += f" + {unknown} unknown"
        out.append({
            "Target": name,
            "Calls": len(group),
            "Complete": len(complete),
            "Stopped": sum(1 for r in group if r.status == "stopped"),
            "Failed": sum(1 for r in group if r.status in ("error", "interrupted", "unfinished")),
            "In": format_tokens(sum(r.input_tokens or 0 for r in group),
                                estimated=any(r.input_tokens is not None and not r.input_exact for r in group)),
            "Out": format_tokens(sum(r.output_tokens or 0 for r in group),
                                 estimated=any(r.output_tokens is not None and not r.output_exact for r in group)),
            "Cost": cost_text,
            "Mean first token (s)": _mean([r.ttft for r in complete]),
            "Mean total (s)": _mean([r.duration for r in complete]),
        })
    return out


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 2) if known else None


CSV_FIELDS = ("prompt_index", "prompt", "label", "target", "status", "input_tokens", "input_exact",
              "output_tokens", "output_exact", "cost_usd", "ttft_s", "total_s", "tokens_per_s", "reply", "error",
              "compare_run_id", "conversation_id")
def batch_csv(rows: Iterable[BatchRow]) -> str:
    """The results as CSV: one line per call, raw numbers (USD, seconds), full reply text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        rate = r.tokens_per_second
        writer.writerow([
            r.prompt_index + 1, csv_cell(r.prompt), r.label, r.target, r.status,
            "" if r.input_tokens is None else r.input_tokens, int(r.input_exact),
            "" if r.output_tokens is None else r.output_tokens, int(r.output_exact),
            "" if r.cost is None else f"{r.cost:.8f}",
            "" if r.ttft is None else f"{r.ttft:.3f}", "" if r.duration is None else f"{r.duration:.3f}",
            "" if rate is None else f"{rate:.1f}", csv_cell(r.reply), csv_cell(r.error), r.run_id or "",
            r.conversation_id or "",
        ])
    return out.getvalue()
