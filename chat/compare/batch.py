"""Batch runs: every prompt against every target with a bounded number of calls in flight, their rows read
back, and the results as a table, totals per target and CSV."""

from __future__ import annotations

import csv
import io
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chat import turns
from chat.compare.targets import LABELS, MAX_TARGETS, CompareError, check_providers
from chat.display import ending, estimated, format_cost, format_tokens, tokens_per_second, total_cost_text
from chat.providers.base import ProviderError
from chat.safe_text import csv_cell
from chat.store import FAILED_STATUSES, Store, StoreError

MAX_IN_FLIGHT = 16
MAX_BATCH_PROMPTS = 500


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
        return estimated({"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                           "input_exact": self.input_exact, "output_exact": self.output_exact})


class BatchRun:
    """Every prompt against every target, at most ``max_in_flight`` calls at a time, each call with the
    context ``contexts`` gives its model. The user's daily limit is checked as each call starts: once it is
    reached, the remaining calls are refused.

    Each prompt is one compare run (``settings.mode == "batch"``, with the batch id and the prompt's index)
    created when its first call starts; each call is a conversation of that run. Iterate :meth:`run` to
    drive it: it yields a :class:`BatchRow` as each call finishes and ``None`` every ``heartbeat`` seconds
    meanwhile. Closing that generator early (or :meth:`cancel`) stops the calls in flight (their replies
    are saved as stopped) and skips the ones not started; it returns once every worker has left."""

    def __init__(self, contexts: turns.TurnContexts, prompts: Sequence[str], targets: Sequence[turns.TurnSettings],
                 *, max_in_flight: int = 4, batch_id: str | None = None):
        prompts = [p.strip() for p in prompts if p and p.strip()]
        if not prompts:
            raise CompareError("Add at least one prompt.")
        if len(prompts) > MAX_BATCH_PROMPTS:
            raise CompareError(f"A batch takes at most {MAX_BATCH_PROMPTS} prompts; split the list.")
        if not 1 <= len(targets) <= MAX_TARGETS:
            raise CompareError(f"Choose between 1 and {MAX_TARGETS} targets.")
        check_providers(targets, contexts.providers)
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise CompareError(f"Calls in flight must be between 1 and {MAX_IN_FLIGHT}.")
        self.contexts = contexts
        self.store = contexts.store
        self.user = contexts.user
        self.prompts = prompts
        self.targets = list(targets)
        self.labels = list(LABELS[: len(targets)])
        self.max_in_flight = max_in_flight
        self.batch_id = batch_id or uuid.uuid4().hex
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
        turn = turns.send(self.contexts.for_model(target.model_id), cid, prompt, target)
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
        out.append({
            "Target": name,
            "Calls": len(group),
            "Complete": len(complete),
            "Stopped": sum(1 for r in group if r.status == "stopped"),
            "Failed": sum(1 for r in group if r.status in FAILED_STATUSES),
            "In": format_tokens(sum(r.input_tokens or 0 for r in group),
                                estimated=any(r.input_tokens is not None and not r.input_exact for r in group)),
            "Out": format_tokens(sum(r.output_tokens or 0 for r in group),
                                 estimated=any(r.output_tokens is not None and not r.output_exact for r in group)),
            "Cost": total_cost_text(sum(costs), unknown, estimated=any(r.estimated for r in group)),
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
