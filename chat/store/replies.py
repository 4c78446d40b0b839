"""A reply's life in the store: started (checked against the user's spending budget in the same write),
checkpointed while it streams, finished with its figures, or marked interrupted when its process died."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from chat.display import INTERRUPTED_ERROR
from chat.store.engine import Engine
from chat.store.errors import NotFound
from chat.store.messages import insert_message
from chat.store.rows import FINAL_STATUSES, MessageRow, reply_row
from chat.store.sql import dumps, marks, one, update
from chat.store.totals import refresh_totals
from chat.timestamps import now, parse_stamp, stamp

if TYPE_CHECKING:
    from chat.providers.base import Usage

STALE_AFTER = 5.0  # seconds without a write after which a 'streaming' reply is taken for a crashed one


def is_dead(row: MessageRow) -> bool:
    """Whether a stored reply is 'streaming' with no process writing it any more: a live reply is
    checkpointed every second (even while the provider is silent), so one not written for
    :data:`STALE_AFTER` seconds has lost its writer."""
    silent = (datetime.now(UTC) - parse_stamp(row["updated_at"])).total_seconds()
    return row["status"] == "streaming" and silent > STALE_AFTER


@dataclass(frozen=True)
class Budget:
    """A check against a user's spending limit: refuse at or past ``limit`` (USD) spent or reserved since
    ``since`` (a timestamp as :func:`now` writes them); otherwise hold ``reserve`` (USD) for the reply."""

    user: str
    limit: float
    since: str
    reserve: float = 0.0


class StartedReply(NamedTuple):
    id: int
    admitted: bool  # False: refused by the budget, started without a reservation
    spent: float  # the user's known spend since the budget's start, before this reply
    reserved: float  # held by the user's other replies still streaming


def spend_since(db: Any, user: str, since: str) -> tuple[float, float]:
    """(known cost of the user's finished replies, reservations of their replies still streaming) since
    ``since``."""
    # A conversation holding a reply created since ``since`` was updated since then too (every new
    # message touches it), so the user's recently updated conversations are the only ones to read.
    row = db.execute(
        "SELECT COALESCE(SUM(m.cost) FILTER (WHERE m.status != 'streaming'), 0.0),"
        " COALESCE(SUM(m.reserved_cost) FILTER (WHERE m.status = 'streaming'), 0.0)"
        " FROM conversations c JOIN messages m ON m.conversation_id = c.id"
        ' WHERE c."user" = ? AND c.updated_at >= ? AND m.role = \'assistant\' AND m.created_at >= ?',
        [user, since, since]).fetchone()
    return float(row[0]), float(row[1])


class Replies(Engine):
    def start_reply(self, conversation_id: str, *, provider: str, model: str,
                    settings: dict | None = None) -> int:
        """An assistant row with status 'streaming' and no text yet; returns its id."""
        return self.start_reply_within(conversation_id, provider=provider, model=model, settings=settings).id

    def start_reply_within(self, conversation_id: str, *, provider: str, model: str, settings: dict | None = None,
                           budget: Budget | None = None) -> StartedReply:
        """:meth:`start_reply`, checked against a spending budget in the same write transaction.

        With a ``budget``, the user's spend since ``budget.since`` is read while every other budget check of
        that user waits: the known costs of finished replies plus the reservations of replies still
        streaming. Below the limit, the new reply holds ``budget.reserve`` until it finishes; at or past it,
        the reply is refused (started without a reservation; the caller records it as failed). SQLite's
        writers all take the one write lock (``BEGIN IMMEDIATE``); PostgreSQL's take a per-user advisory
        lock for the transaction before the sum, so two checks never both see the same room, whichever
        replica they run on."""
        started = now()
        with self._write() as db:
            self._require(db, conversation_id, lock=True)
            spent = reserved = 0.0
            admitted = True
            if budget is not None:
                self._lock_user(db, budget.user)
                spent, reserved = spend_since(db, budget.user, budget.since)
                admitted = spent + reserved < budget.limit
            message_id = insert_message(db, conversation_id, {
                "role": "assistant", "content": "", "status": "streaming", "provider": provider,
                "model": model, "settings": dumps(settings), "created_at": started, "updated_at": started,
                "reserved_cost": (budget.reserve or None) if budget is not None and admitted else None,
            })
            refresh_totals(db, conversation_id, touch=started)
        return StartedReply(message_id, admitted, spent, reserved)

    def spend_since(self, user: str, since: str) -> tuple[float, float]:
        """(known cost of the user's finished replies, reservations of their replies still streaming),
        over replies created at or after ``since``, in any conversation (chat or compare, deleted or not)."""
        with self.db() as db:
            return spend_since(db, user, since)

    def checkpoint_reply(self, message_id: int, content: str, reasoning: str | None = None,
                         tool_steps: list[dict] | None = None) -> None:
        """Save the partial text (and reasoning and tool steps, when given) of a streaming reply. A reply that
        has already left 'streaming' (finished, or marked interrupted) is left as it is."""
        with self._write() as db:
            db.execute("UPDATE messages SET content = ?, reasoning = COALESCE(?, reasoning), "
                       "tool_steps = COALESCE(?, tool_steps), updated_at = ? WHERE id = ? AND status = 'streaming'",
                       [content, reasoning or None, dumps(tool_steps or None), now(), message_id])

    def finish_reply(self, message_id: int, *, content: str, status: str, usage: Usage | None,
                     cost: float | None, ttft: float | None = None, duration: float | None = None,
                     finish_reason: str | None = None, error: str | None = None,
                     tool_calls: list[str] | None = None, cost_source: str | None = None,
                     reasoning: str | None = None, reasoning_ttft: float | None = None,
                     reasoning_hidden: bool = False, cache_saved: float | None = None,
                     tool_steps: list[dict] | None = None) -> MessageRow:
        """Record the reply's final text, status and figures, and the conversation's totals, in one
        transaction. Finishing the same reply again replaces its figures; it is never counted twice."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, not {status!r}")
        finished = now()
        changes = {
            "content": content, "status": status, "error": error, "cost": cost, "ttft": ttft,
            "duration": duration, "finish_reason": finish_reason, "updated_at": finished,
            "tool_calls": dumps(tool_calls or None), "cost_source": cost_source,
            "input_tokens": None, "output_tokens": None, "cache_read_tokens": None,
            "cache_write_tokens": None, "input_exact": 0, "output_exact": 0, "reserved_cost": None,
            "reasoning": reasoning or None, "reasoning_ttft": reasoning_ttft,
            "reasoning_hidden": 1 if reasoning_hidden else None, "reasoning_tokens": None,
            "cache_saved": cache_saved,
            "tool_steps": dumps(tool_steps or None),
        }
        if usage is not None:
            changes |= {
                "reasoning_tokens": usage.reasoning_tokens,
                "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
                "input_exact": int(bool(usage.input_exact)), "output_exact": int(bool(usage.output_exact)),
            }
        with self._write() as db:
            row = one(db, "SELECT conversation_id, role FROM messages WHERE id = ?", [message_id])
            if row is None:
                raise NotFound("message", message_id)
            if row["role"] != "assistant":
                raise ValueError(f"message {message_id} is a {row['role']} message, not a reply")
            self._lock_conversation(db, row["conversation_id"])
            update(db, "messages", message_id, changes)
            refresh_totals(db, row["conversation_id"], touch=finished)
            return reply_row(one(db, "SELECT * FROM messages WHERE id = ?", [message_id]))

    def mark_dead_replies(self) -> int:
        """The replies :func:`is_dead` would say died marked interrupted, from any process or replica (see
        :meth:`mark_interrupted_replies`). Returns how many."""
        return self.mark_interrupted_replies(stale_after=STALE_AFTER)

    def mark_interrupted_replies(self, *, stale_after: float | None = None) -> int:
        """Replies left 'streaming' by a crash become 'interrupted', keeping their checkpointed text, and
        count as errors. Returns how many.

        With ``stale_after`` (seconds) only rows not written for that long are marked: a live reply is
        checkpointed every second (even while the provider is silent), so this is safe to run at any
        time, from any process or replica sharing the database (whichever sees a stale reply first marks
        it; a reply finished meanwhile is left alone). Without it, every streaming row is marked (only for
        a single process at its start-up)."""
        where = "status = 'streaming'"
        params: list = []
        if stale_after is not None:
            where += " AND updated_at < ?"
            params.append(stamp(datetime.now(UTC) - timedelta(seconds=stale_after)))
        with self.db() as db:  # a read first: the common case writes nothing
            if db.execute(f"SELECT 1 FROM messages WHERE {where} LIMIT 1", params).fetchone() is None:
                return 0
        marked = now()
        with self._write() as db:
            conversation_ids = sorted(row[0] for row in db.execute(
                f"SELECT DISTINCT conversation_id FROM messages WHERE {where}", params).fetchall())
            if not conversation_ids:
                return 0
            for conversation_id in conversation_ids:  # in one order, so two replicas never deadlock
                self._lock_conversation(db, conversation_id)
            count = db.execute(
                f"UPDATE messages SET status = 'interrupted', error = COALESCE(error, ?), reserved_cost = NULL, "
                f"updated_at = ? WHERE {where} AND conversation_id IN ({marks(conversation_ids)})",
                [INTERRUPTED_ERROR, marked, *params, *conversation_ids]).rowcount
            for conversation_id in conversation_ids:
                refresh_totals(db, conversation_id)
        return count
