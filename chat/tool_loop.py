"""The steps of a reply that uses tools: which calls the model asked for, whether the user let them run, what
they gave back, how long they took and what each model call of the loop cost.

A :class:`ToolRunner` belongs to one turn. The turn hands it a step's calls (:meth:`ToolRunner.start`); calls
to tools not marked read-only by their server (and not on a trusted server) wait for :meth:`ToolRunner.decide`
(Approve / Deny from a page, any thread); the rest run at once, in parallel, on the MCP loop. The turn polls
:meth:`ToolRunner.poll` between heartbeats, so a Stop (:meth:`ToolRunner.cancel`) ends a running call at once.

Results are data: they are kept whole (``result``), shown truncated (:func:`shown`), and handed back to the
model as text. A denied call tells the model it was denied; a failed one tells it the error.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from dataclasses import asdict, dataclass, field

from chat.mcp_servers import Call, ServerUnavailable, Toolbox, ToolSpec
from chat.providers.base import ToolCall, ToolDef, ToolResult

SHOWN_CHARS = 2000  # characters of a result shown before "show all"
DENIED = "The user denied this tool call; it was not run."
STOPPED = "The reply was stopped before this tool call finished."


@dataclass
class CallRecord:
    """One tool call of a step, as stored with the reply (JSON) and shown in its status block."""

    id: str
    wire_name: str
    server: str | None
    tool: str
    arguments: str
    status: str = "running"  # waiting (for approval), running, done, failed, denied, stopped
    needs_approval: bool = False
    result: str | None = None  # the whole result text
    error: str | None = None
    started_at: float | None = None  # wall clock
    duration: float | None = None  # seconds the call ran

    @property
    def arguments_shown(self) -> str:
        try:
            return json.dumps(json.loads(self.arguments or "{}"), indent=2, ensure_ascii=False)
        except ValueError:
            return self.arguments


@dataclass
class StepRecord:
    """One model call of the loop: its text, the calls it asked for, and what it cost."""

    text: str = ""
    calls: list[CallRecord] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    exact: bool = True
    cost: float | None = None
    duration: float | None = None
    finish_reason: str | None = None


def steps_to_json(steps: list[StepRecord]) -> list[dict]:
    return [asdict(s) for s in steps]


def steps_from_json(data: list[dict] | None) -> list[StepRecord]:
    out = []
    for raw in data or []:
        raw = dict(raw)
        calls = [CallRecord(**c) for c in raw.pop("calls", [])]
        out.append(StepRecord(calls=calls, **raw))
    return out


def shown(text: str | None, limit: int = SHOWN_CHARS) -> tuple[str, bool]:
    """(what a page shows of a result, whether it was truncated)."""
    text = text or ""
    return (text, False) if len(text) <= limit else (text[:limit] + "…", True)


def tool_defs(specs: list[ToolSpec]) -> list[ToolDef]:
    return [ToolDef(name=s.wire_name, description=s.description or s.name, parameters=s.input_schema) for s in specs]


class ToolRunner:
    """Runs one step's calls for a turn (see the module docstring)."""

    def __init__(self, toolbox: Toolbox, specs: list[ToolSpec] | None = None, *, servers: tuple[str, ...] = (),
                 max_steps: int = 10):
        """With ``specs``, these tools; else the tools of the ``servers`` chosen, known once their listings
        settle (:meth:`ready`: the turn waits for it on its own thread, so a page never does)."""
        self.toolbox = toolbox
        self.servers = tuple(servers)
        self.max_steps = max_steps
        self.specs: dict[str, ToolSpec] = {}
        self.defs: list[ToolDef] = []
        self._ready = False
        if specs is not None:
            self._use(specs)
        self._lock = threading.Lock()
        self._decisions: dict[str, bool] = {}
        self._running: dict[str, Call] = {}
        self._records: list[CallRecord] = []

    def _use(self, specs: list[ToolSpec]) -> None:
        self.specs = {s.wire_name: s for s in specs}
        self.defs = tool_defs(specs)
        self._ready = True

    def ready(self) -> bool:
        """Whether the tools are known: every chosen server listed, or failed (its tools are then left out).
        Never waits."""
        if not self._ready:
            tools, _errors, pending = self.toolbox.tools(self.servers, wait=0)
            if not pending:
                self._use(tools)
        return self._ready

    def start(self, calls: list[ToolCall]) -> list[CallRecord]:
        records = []
        for call in calls:
            spec = self.specs.get(call.name)
            record = CallRecord(id=call.id, wire_name=call.name, server=spec.server if spec else None,
                                tool=spec.name if spec else call.name, arguments=call.arguments)
            if spec is None:
                record.status, record.error = "failed", f"There is no tool named {call.name!r}."
            else:
                record.needs_approval = self.toolbox.needs_approval(spec)
                record.status = "waiting" if record.needs_approval else "running"
            records.append(record)
        with self._lock:
            self._records = records
        for record in records:
            if record.status == "running":
                self._launch(record)
        return records

    def _launch(self, record: CallRecord) -> None:
        spec = self.specs[record.wire_name]
        try:
            arguments = json.loads(record.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError("not an object")
        except ValueError:
            record.status, record.error = "failed", "The arguments were not a JSON object."
            return
        record.status = "running"
        record.started_at = time.time()
        self._running[record.id] = self.toolbox.call(spec, arguments)

    def decide(self, call_id: str, approve: bool) -> None:
        """Approve or deny a waiting call (from any thread)."""
        with self._lock:
            self._decisions[call_id] = approve

    def poll(self) -> bool:
        """Take decisions and finished calls into the records; True when every call of the step is settled."""
        with self._lock:
            decisions = dict(self._decisions)
            records = list(self._records)
        for record in records:
            if record.status == "waiting" and record.id in decisions:
                if decisions[record.id]:
                    self._launch(record)
                else:
                    record.status = "denied"
            call = self._running.get(record.id)
            if record.status == "running" and call is not None and call.done():
                self._settle(record, call)
        return all(r.status not in ("waiting", "running") for r in records)

    def _settle(self, record: CallRecord, call: Call) -> None:
        record.duration = time.monotonic() - call.started
        try:
            output = call.result(0)
        except ServerUnavailable as exc:
            record.status, record.error = "failed", exc.hint
        except concurrent.futures.CancelledError:
            record.status = "stopped"
        else:
            record.result = output.text
            record.status = "failed" if output.is_error else "done"
            if output.is_error:
                record.error = output.text or "The tool reported an error."
        self._running.pop(record.id, None)

    def cancel(self) -> None:
        """Stop: running calls are cancelled (their connections closed), waiting ones end unrun."""
        with self._lock:
            records = list(self._records)
        for record in records:
            call = self._running.pop(record.id, None)
            if call is not None:
                call.cancel()
                record.duration = time.monotonic() - call.started
            if record.status in ("waiting", "running"):
                record.status = "stopped"

    @staticmethod
    def results(records: list[CallRecord]) -> list[ToolResult]:
        out = []
        for r in records:
            if r.status == "done":
                out.append(ToolResult(r.id, r.wire_name, r.result or ""))
            elif r.status == "denied":
                out.append(ToolResult(r.id, r.wire_name, DENIED, is_error=True))
            elif r.status == "stopped":
                out.append(ToolResult(r.id, r.wire_name, STOPPED, is_error=True))
            else:
                out.append(ToolResult(r.id, r.wire_name, f"Error: {r.error or 'the tool failed'}", is_error=True))
        return out
