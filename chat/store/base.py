"""The store's interface and the logic both engines share: conversations, messages, totals, compare runs,
History's queries, spending budgets. Every SQL statement of the app is in this package.

``Store(target)`` opens the engine ``target`` names: a ``postgresql://`` URL opens
:class:`chat.store.postgres.PostgresStore`, anything else is a SQLite file path
(:class:`chat.store.sqlite.SqliteStore`). One Store is meant to live in ``st.cache_resource``; it hands out
pooled connections to one thread at a time, and a thread that asks again while it holds one gets the same
one back.

The SQL here is written once for both engines (``?`` placeholders; identifiers such as ``"user"`` quoted);
what differs (transactions and locks, JSON, full-text search, index hints) is a method the engines
override. Every write is one short transaction. On SQLite a writer holds the whole file (``BEGIN
IMMEDIATE``); on PostgreSQL each write locks the rows it depends on (the conversation ``FOR UPDATE``, a
per-user advisory lock for a budget), so "next position = max + 1", the kept totals and the spend check
stay exact across threads, processes and replicas.

The per-conversation totals (tokens, cost, counts, models) are recomputed from the conversation's own
messages inside the same transaction as each write that can change them. A listing reads them without
touching ``messages``; a reply counts once it has left ``streaming``, however often it is finished.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from chat.display import INTERRUPTED_ERROR
from chat.store.rows import ConversationRow, MessageRow
from chat.store.search import (
    SEARCH_TIME_LIMIT,
)

if TYPE_CHECKING:
    from chat.attachments import Attachment
    from chat.providers.base import Usage


SOURCES = ("chat", "compare")
FINAL_STATUSES = ("complete", "unfinished", "stopped", "error", "interrupted")
TITLE_LENGTH = 60
BUSY_TIMEOUT_MS = 15000  # how long a write waits for another writer before DatabaseBusy


class StoreError(Exception):
    """Base of every error the store raises. ``str(error)`` is one sentence a UI can show as it is."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer version of this code; it is left untouched."""

    def __init__(self, unknown: list[str]):
        self.unknown = unknown
        super().__init__(
            "The chat database was written by a newer version of this app; upgrade the app to open it."
        )


def now() -> str:
    """ISO-8601 UTC to the microsecond, with 'Z': fixed width, so it sorts as text."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_busy_timeout_ms() -> int:
    """``chat.store.BUSY_TIMEOUT_MS``, read when a store opens (so it can be changed there, as tests do)."""
    import chat.store

    return chat.store.BUSY_TIMEOUT_MS


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database (``postgresql://...`` or ``postgres://...``)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


# ---------------------------------------------------------------- typed errors


class DatabaseUnavailable(StoreError):
    """The database cannot be opened, read or written. ``reason`` is one of ``read_only``, ``corrupt``,
    ``cannot_open``, ``full``, ``io``. ``path`` is the file, or the server's URL without its password."""

    _messages = {
        "read_only": "The chat database at {path} is read-only, so chats cannot be saved.",
        "corrupt": "The file at {path} is not a readable chat database; move it aside to start a new one.",
        "cannot_open": "The chat database at {path} cannot be opened ({detail}).",
        "full": "The disk holding the chat database at {path} is full.",
        "io": "The chat database at {path} could not be read or written ({detail}).",
        "unreachable": "The chat database at {path} cannot be reached.",
    }

    def __init__(self, path: object, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(self._messages[reason].format(path=self.path, detail=detail or reason))


class DatabaseBusy(StoreError):
    """Another writer held what this write needs for longer than the busy timeout."""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__("The chat database is busy with another writer; try again in a moment.")


class NotFound(StoreError, LookupError):
    def __init__(self, what: str, key: object):
        self.key = key
        super().__init__(f"That {what} no longer exists.")


# ---------------------------------------------------------------- spending budgets


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


# ---------------------------------------------------------------- History's filters


STATUSES = {  # status filter -> the condition on the kept totals
    "stopped": "c.stopped_count > 0",
    "failed": "c.error_count > 0",
    "stopped or failed": "(c.stopped_count > 0 OR c.error_count > 0)",
}


@dataclass(frozen=True)
class Filters:
    """Which conversations: every field None (or False) means "any". Dates are UTC days, inclusive, on the
    conversation's last activity. ``model`` is a ``provider:model`` id. ``deleted`` True shows only the
    deleted conversations (to restore them); otherwise deleted ones are hidden."""

    user: str | None = None
    since: date | None = None
    until: date | None = None
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    source: str | None = None
    deleted: bool = False

    def __post_init__(self):
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {tuple(STATUSES)}, not {self.status!r}")
        if self.source is not None and self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")


# ---------------------------------------------------------------- helpers


def title_from(text: str, limit: int = TITLE_LENGTH) -> str:
    """A one-line title: the first non-blank line, whitespace collapsed, cut near ``limit`` characters."""
    line = next((" ".join(ln.split()) for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _dumps(value: dict | list | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _rows(db: Any, sql: str, params: Any = ()) -> list[dict]:
    cursor = db.execute(sql, params)
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


def _one(db: Any, sql: str, params: Any = ()) -> dict | None:
    rows = _rows(db, sql, params)
    return rows[0] if rows else None


def _conversation(row: dict) -> ConversationRow:
    row.pop("rowid", None)  # PostgreSQL's stand-in for SQLite's rowid: the order rows were created in
    row["settings"] = json.loads(row["settings"] or "{}")
    row["models"] = json.loads(row["models"] or "[]")
    return row


def _compare_run(row: dict) -> dict:  # Compare page addition
    row.pop("rowid", None)
    row["settings"] = json.loads(row["settings"] or "{}")
    row["blind"] = bool(row["blind"])
    return row


def _message(row: dict) -> MessageRow:
    for column in ("search_vector", "owner", "conversation_deleted"):  # PostgreSQL's search columns
        row.pop(column, None)
    row["settings"] = None if row["settings"] is None else json.loads(row["settings"])
    row["tool_calls"] = json.loads(row["tool_calls"]) if row.get("tool_calls") else []
    if "tool_steps" in row:
        row["tool_steps"] = json.loads(row["tool_steps"]) if row["tool_steps"] else None
    for flag in ("input_exact", "output_exact", "superseded"):
        row[flag] = bool(row[flag])
    return row


def _marks(values: list | tuple) -> str:
    return ", ".join("?" for _ in values)


_TOTALS_SQL = """
SELECT
  COUNT(*) FILTER (WHERE superseded = 0) AS message_count,
  COUNT(*) FILTER (WHERE counted) AS reply_count,
  COALESCE(SUM(input_tokens) FILTER (WHERE counted), 0) AS input_tokens,
  COALESCE(SUM(output_tokens) FILTER (WHERE counted), 0) AS output_tokens,
  COALESCE(SUM(cache_read_tokens) FILTER (WHERE counted), 0) AS cache_read_tokens,
  COALESCE(SUM(cache_write_tokens) FILTER (WHERE counted), 0) AS cache_write_tokens,
  COALESCE(SUM(cost) FILTER (WHERE counted), 0.0) AS cost,
  COUNT(*) FILTER (WHERE counted AND cost IS NULL) AS unknown_cost_count,
  COUNT(*) FILTER (WHERE counted AND status = 'stopped') AS stopped_count,
  COUNT(*) FILTER (WHERE counted AND status IN ('error', 'interrupted', 'unfinished')) AS error_count
FROM (
  SELECT *, role = 'assistant' AND status != 'streaming' AS counted
  FROM messages WHERE conversation_id = ?
) AS m
"""

_MODELS_SQL = """
SELECT provider || ':' || model FROM messages
WHERE conversation_id = ? AND role = 'assistant' AND provider IS NOT NULL AND model IS NOT NULL
GROUP BY 1 ORDER BY MIN(position)
"""



# ---------------------------------------------------------------- the store


class Store:
    """The interface, and the logic both engines share. ``Store(path_or_url, **options)`` opens the right
    engine; the options are each engine's (``busy_timeout_ms`` and ``pool_size`` for both)."""

    engine = ""  # "sqlite" or "postgresql"

    def __new__(cls, target: Any = None, *args: Any, **kwargs: Any):
        if cls is Store:
            if is_postgres_url(target):
                from chat.store.postgres import PostgresStore as cls
            else:
                from chat.store.sqlite import SqliteStore as cls
        return super().__new__(cls)

    # -- what each engine provides

    @contextmanager
    def db(self) -> Iterator[Any]:
        """A connection for this thread's use until the block ends (re-entrant within a thread), with
        ``execute(sql, params)`` taking ``?`` placeholders. Errors about the database come out as
        :class:`DatabaseUnavailable` or :class:`DatabaseBusy`."""
        raise NotImplementedError
        yield

    @contextmanager
    def _write(self) -> Iterator[Any]:
        """One short write transaction, committed when the block ends (a savepoint if one is open)."""
        raise NotImplementedError
        yield

    def close(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        """Where the data is, for messages: the file, or the server's URL without its password."""
        raise NotImplementedError

    def _lock_conversation(self, db: Any, conversation_id: str) -> None:
        """Inside a write: hold the conversation against other writers until the transaction ends."""

    def _lock_user(self, db: Any, user: str) -> None:
        """Inside a write: hold the user's spending against other budget checks until it ends."""

    _for_update = ""  # appended to a read inside a write that the write depends on

    def _json_text(self, column: str, key: str) -> str:
        """SQL: the text at ``key`` of the JSON object in ``column``."""
        return f"json_extract({column}, '$.{key}')"

    def _json_number(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def _contains(self, column: str) -> str:
        """SQL: ``column`` contains the parameter as a substring."""
        return f"instr({column}, ?) > 0"

    def _totals_source(self, filters: Filters) -> str:
        """``conversations c`` for sums and counts over the filtered conversations."""
        return "conversations c"

    # -- conversations

    def create_conversation(self, *, user: str, source: str = "chat", title: str | None = None,
                            settings: dict | None = None, compare_run_id: str | None = None) -> str:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        conversation_id = uuid.uuid4().hex
        stamp = now()
        with self._write() as db:
            self._insert(db, "conversations", {
                "id": conversation_id, "user": user, "title": title or "", "source": source,
                "compare_run_id": compare_run_id, "created_at": stamp, "updated_at": stamp,
                "settings": _dumps(settings or {}),
            })
        return conversation_id

    def get_conversation(self, conversation_id: str, *, include_deleted: bool = False) -> ConversationRow | None:
        with self.db() as db:
            row = _one(db, "SELECT * FROM conversations WHERE id = ?", [conversation_id])
        if row is None or (row["deleted_at"] is not None and not include_deleted):
            return None
        return _conversation(row)

    def update_conversation(self, conversation_id: str, *, title: str | None = None,
                            settings: dict | None = None) -> None:
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if settings is not None:
            changes["settings"] = _dumps(settings)
        if not changes:
            return
        changes["updated_at"] = now()
        with self._write() as db:
            self._set(db, "conversations", conversation_id, changes)

    def recent_conversations(self, user: str | None, *, limit: int = 20,
                             source: str | None = "chat") -> list[dict]:
        """Conversations not deleted, newest ``updated_at`` first. ``user`` / ``source`` None: all."""
        where, params = ["deleted_at IS NULL"], []
        if user is not None:
            where.append('"user" = ?')
            params.append(user)
        if source is not None:
            where.append("source = ?")
            params.append(source)
        sql = (f"SELECT * FROM conversations WHERE {' AND '.join(where)} "
               "ORDER BY updated_at DESC, rowid DESC LIMIT ?")
        with self.db() as db:
            return [_conversation(row) for row in _rows(db, sql, [*params, limit])]

    def chat_list(self, user: str, *, limit: int = 20) -> list[ConversationRow]:
        """The user's chats for the Chat page's sidebar, newest first: conversations started there, and
        those continued there from Compare (a compare conversation with more than its compared exchange)."""
        sql = ("SELECT * FROM conversations WHERE deleted_at IS NULL AND \"user\" = ? "
               "AND (source = 'chat' OR message_count > 2 OR reply_count > 1) "
               "ORDER BY updated_at DESC, rowid DESC LIMIT ?")
        with self.db() as db:
            return [_conversation(row) for row in _rows(db, sql, [user, limit])]

    def soft_delete(self, conversation_id: str) -> None:
        with self._write() as db:
            self._require(db, conversation_id)
            db.execute("UPDATE conversations SET deleted_at = COALESCE(deleted_at, ?) WHERE id = ?",
                       [now(), conversation_id])

    def restore(self, conversation_id: str) -> None:
        with self._write() as db:
            self._set(db, "conversations", conversation_id, {"deleted_at": None})

    # -- messages

    def add_user_message(self, conversation_id: str, content: str, attachments: Sequence[Attachment] = ()) -> dict:
        """Store the user's message (with its attached files) and commit before returning; names the
        conversation if unnamed. A file's bytes are stored once however often it is attached (sha256)."""
        stamp = now()
        with self._write() as db:
            conversation = self._require(db, conversation_id, lock=True)
            message_id = self._insert_message(db, conversation_id, {
                "role": "user", "content": content, "status": "complete",
                "created_at": stamp, "updated_at": stamp,
            })
            self._insert_attachments(db, message_id, attachments, stamp)
            if not conversation["title"].strip():
                title = content if content.strip() or not attachments else ", ".join(a.name for a in attachments)
                db.execute("UPDATE conversations SET title = ? WHERE id = ?",
                           [title_from(title), conversation_id])
            self._refresh_totals(db, conversation_id, touch=stamp)
            row = _message(_one(db, "SELECT * FROM messages WHERE id = ?", [message_id]))
            row["attachments"] = self._attachments_of(db, [message_id]).get(message_id, [])
            return row

    # -- attachments (content-addressed blobs)

    def _insert_blob(self, db: Any, sha256: str, data: bytes, stamp: str) -> None:
        """Inside a write: store a file's bytes under their sha256 unless a blob of that hash is there."""
        raise NotImplementedError

    def _insert_attachments(self, db: Any, message_id: int, attachments: Sequence[Attachment],
                            stamp: str) -> None:
        for position, item in enumerate(attachments):
            if item.data is not None:
                self._insert_blob(db, item.sha256, item.data, stamp)
            elif db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", [item.sha256]).fetchone() is None:
                raise ValueError(f"{item.name}: no data given and none stored")
            db.execute("INSERT INTO attachments (message_id, position, sha256, name, media_type, size, width, "
                       "height, pages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [message_id, position, item.sha256, item.name, item.media_type, item.size, item.width,
                        item.height, item.pages])

    @staticmethod
    def _attachments_of(db: Any, message_ids: list[int]) -> dict[int, list[dict]]:
        """Each message's attachments (metadata, no bytes), in order."""
        found: dict[int, list[dict]] = {}
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in _rows(db, "SELECT message_id, sha256, name, media_type, size, width, height, pages "
                                 f"FROM attachments WHERE message_id IN ({marks}) ORDER BY message_id, position",
                             chunk):
                found.setdefault(row.pop("message_id"), []).append(row)
        return found

    def attachments_of(self, message_ids: list[int]) -> dict[int, list[dict]]:
        with self.db() as db:
            return self._attachments_of(db, message_ids)

    def blob(self, sha256: str) -> bytes:
        """The bytes of a stored file. Raises NotFound when no blob has that hash."""
        with self.db() as db:
            row = db.execute("SELECT data FROM blobs WHERE sha256 = ?", [sha256]).fetchone()
        if row is None:
            raise NotFound("blob", sha256)
        return bytes(row[0])

    def purge_blobs(self, *, deleted_conversations: bool = False) -> int:
        """Remove the stored files no attachment refers to; returns how many. Files of soft-deleted
        conversations are kept (an undo brings them back with their messages) unless
        ``deleted_conversations``: then those conversations lose their files for good (their messages say
        which files they had no more), and a file another conversation still holds stays."""
        with self._write() as db:
            if deleted_conversations:
                db.execute("DELETE FROM attachments WHERE message_id IN (SELECT m.id FROM messages m JOIN "
                           "conversations c ON c.id = m.conversation_id WHERE c.deleted_at IS NOT NULL)")
            return db.execute("DELETE FROM blobs WHERE NOT EXISTS "
                              "(SELECT 1 FROM attachments a WHERE a.sha256 = blobs.sha256)").rowcount

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
        stamp = now()
        with self._write() as db:
            self._require(db, conversation_id, lock=True)
            spent = reserved = 0.0
            admitted = True
            if budget is not None:
                self._lock_user(db, budget.user)
                spent, reserved = self._spend_since(db, budget.user, budget.since)
                admitted = spent + reserved < budget.limit
            message_id = self._insert_message(db, conversation_id, {
                "role": "assistant", "content": "", "status": "streaming", "provider": provider,
                "model": model, "settings": _dumps(settings), "created_at": stamp, "updated_at": stamp,
                "reserved_cost": (budget.reserve or None) if budget is not None and admitted else None,
            })
            self._refresh_totals(db, conversation_id, touch=stamp)
        return StartedReply(message_id, admitted, spent, reserved)

    def spend_since(self, user: str, since: str) -> tuple[float, float]:
        """(known cost of the user's finished replies, reservations of their replies still streaming),
        over replies created at or after ``since``, in any conversation (chat or compare, deleted or not)."""
        with self.db() as db:
            return self._spend_since(db, user, since)

    def checkpoint_reply(self, message_id: int, content: str, reasoning: str | None = None,
                         tool_steps: list[dict] | None = None) -> None:
        """Save the partial text (and reasoning and tool steps, when given) of a streaming reply. A reply that
        has already left 'streaming' (finished, or marked interrupted) is left as it is."""
        with self._write() as db:
            db.execute("UPDATE messages SET content = ?, reasoning = COALESCE(?, reasoning), "
                       "tool_steps = COALESCE(?, tool_steps), updated_at = ? WHERE id = ? AND status = 'streaming'",
                       [content, reasoning or None, _dumps(tool_steps or None), now(), message_id])

    def finish_reply(self, message_id: int, *, content: str, status: str, usage: Usage | None,
                     cost: float | None, ttft: float | None = None, duration: float | None = None,
                     finish_reason: str | None = None, error: str | None = None,
                     tool_calls: list[str] | None = None, cost_source: str | None = None,
                     reasoning: str | None = None, reasoning_ttft: float | None = None,
                     reasoning_hidden: bool = False, cache_saved: float | None = None,
                     tool_steps: list[dict] | None = None) -> dict:
        """Record the reply's final text, status and figures, and the conversation's totals, in one
        transaction. Finishing the same reply again replaces its figures; it is never counted twice."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, not {status!r}")
        stamp = now()
        changes = {
            "content": content, "status": status, "error": error, "cost": cost, "ttft": ttft,
            "duration": duration, "finish_reason": finish_reason, "updated_at": stamp,
            "tool_calls": _dumps(tool_calls or None), "cost_source": cost_source,
            "input_tokens": None, "output_tokens": None, "cache_read_tokens": None,
            "cache_write_tokens": None, "input_exact": 0, "output_exact": 0, "reserved_cost": None,
            "reasoning": reasoning or None, "reasoning_ttft": reasoning_ttft,
            "reasoning_hidden": 1 if reasoning_hidden else None, "reasoning_tokens": None,
            "cache_saved": cache_saved,
            "tool_steps": _dumps(tool_steps or None),
        }
        if usage is not None:
            changes |= {
                "reasoning_tokens": usage.reasoning_tokens,
                "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                "cache_read_tokens": usage.cache_read_tokens, "cache_write_tokens": usage.cache_write_tokens,
                "input_exact": int(bool(usage.input_exact)), "output_exact": int(bool(usage.output_exact)),
            }
        with self._write() as db:
            row = _one(db, "SELECT conversation_id, role FROM messages WHERE id = ?", [message_id])
            if row is None:
                raise NotFound("message", message_id)
            if row["role"] != "assistant":
                raise ValueError(f"message {message_id} is a {row['role']} message, not a reply")
            self._lock_conversation(db, row["conversation_id"])
            self._set(db, "messages", message_id, changes)
            self._refresh_totals(db, row["conversation_id"], touch=stamp)
            return _message(_one(db, "SELECT * FROM messages WHERE id = ?", [message_id]))

    def messages(self, conversation_id: str, *, include_superseded: bool = False,
                 after_position: int | None = None) -> list[MessageRow]:
        """The conversation's messages in order (those after ``after_position`` only, when given)."""
        sql = "SELECT * FROM messages WHERE conversation_id = ?"
        params: list = [conversation_id]
        if not include_superseded:
            sql += " AND superseded = 0"
        if after_position is not None:
            sql += " AND position > ?"
            params.append(after_position)
        with self.db() as db:
            rows = [_message(row) for row in _rows(db, sql + " ORDER BY position", params)]
            files = self._attachments_of(db, [r["id"] for r in rows if r["role"] == "user"])
        for row in rows:
            row["attachments"] = files.get(row["id"], [])
        return rows

    def message(self, message_id: int) -> MessageRow | None:
        """One message by id (a reply another process is writing is followed through this)."""
        with self.db() as db:
            row = _one(db, "SELECT * FROM messages WHERE id = ?", [message_id])
        return None if row is None else _message(row)

    def show_reply(self, conversation_id: str, message_id: int) -> None:
        """Make ``message_id``, one version of the conversation's last reply, the one shown and continued
        from: the other replies after the last visible user message are superseded, this one is not. The
        totals are unchanged (superseded replies count too)."""
        stamp = now()
        with self._write() as db:
            self._require(db, conversation_id)
            last_user = db.execute("SELECT MAX(position) FROM messages WHERE conversation_id = ? AND role = 'user' "
                                   "AND superseded = 0", [conversation_id]).fetchone()[0]
            chosen = _one(db, "SELECT position, role FROM messages WHERE id = ? AND conversation_id = ?",
                          [message_id, conversation_id])
            if chosen is None or chosen["role"] != "assistant" or last_user is None or chosen["position"] <= last_user:
                raise NotFound("version of the last reply", message_id)
            db.execute("UPDATE messages SET superseded = CASE WHEN id = ? THEN 0 ELSE 1 END, updated_at = ? "
                       "WHERE conversation_id = ? AND role = 'assistant' AND position > ?",
                       [message_id, stamp, conversation_id, last_user])
            self._refresh_totals(db, conversation_id)

    def supersede_from(self, conversation_id: str, position: int) -> None:
        """Hide the messages at ``position`` and after (regenerate, edit and resend). They stay in the
        database and in the totals; new messages are numbered after the highest position."""
        stamp = now()
        with self._write() as db:
            self._require(db, conversation_id, lock=True)
            db.execute("UPDATE messages SET superseded = 1, updated_at = ? "
                       "WHERE conversation_id = ? AND position >= ? AND superseded = 0",
                       [stamp, conversation_id, position])
            self._refresh_totals(db, conversation_id, touch=stamp)

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
            cutoff = datetime.now(UTC) - timedelta(seconds=stale_after)
            where += " AND updated_at < ?"
            params.append(cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        with self.db() as db:  # a read first: the common case writes nothing
            if db.execute(f"SELECT 1 FROM messages WHERE {where} LIMIT 1", params).fetchone() is None:
                return 0
        stamp = now()
        with self._write() as db:
            conversation_ids = sorted(row[0] for row in db.execute(
                f"SELECT DISTINCT conversation_id FROM messages WHERE {where}", params).fetchall())
            if not conversation_ids:
                return 0
            for conversation_id in conversation_ids:  # in one order, so two replicas never deadlock
                self._lock_conversation(db, conversation_id)
            count = db.execute(
                f"UPDATE messages SET status = 'interrupted', error = COALESCE(error, ?), reserved_cost = NULL, "
                f"updated_at = ? WHERE {where} AND conversation_id IN ({_marks(conversation_ids)})",
                [INTERRUPTED_ERROR, stamp, *params, *conversation_ids]).rowcount
            for conversation_id in conversation_ids:
                self._refresh_totals(db, conversation_id)
        return count

    # -- compare runs

    def create_compare_run(self, *, user: str, prompt: str, settings: dict | None = None,
                           blind: bool = False) -> str:
        run_id = uuid.uuid4().hex
        with self._write() as db:
            self._insert(db, "compare_runs", {
                "id": run_id, "user": user, "prompt": prompt, "settings": _dumps(settings or {}),
                "vote": None, "blind": int(blind), "created_at": now(),
            })
        return run_id

    # ---- Compare page additions (chat/compare/ uses these) ----------------------------------------

    def get_compare_run(self, run_id: str) -> dict | None:
        """A compare run with its settings parsed and ``blind`` as a bool; None if unknown."""
        with self.db() as db:
            row = _one(db, "SELECT * FROM compare_runs WHERE id = ?", [run_id])
        return None if row is None else _compare_run(row)

    def set_compare_vote(self, run_id: str, vote: str | None) -> None:
        """Record the run's vote (a label such as ``A``, ``tie`` or ``all_bad``; None clears it)."""
        with self._write() as db:
            self._set(db, "compare_runs", run_id, {"vote": vote})

    def compare_replies(self, run_ids: list[str]) -> list[dict]:
        """For each conversation (not deleted) of these compare runs, its first reply: the compared one,
        whatever was added when it was continued as a chat. Each row is a message row plus
        ``compare_run_id`` and ``conversation_settings`` (parsed). In creation order."""
        out: list[dict] = []
        with self.db() as db:
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start:start + 500]
                sql = f"""
                    SELECT m.*, c.compare_run_id AS compare_run_id, c.settings AS conversation_settings
                    FROM conversations c
                    JOIN messages m ON m.id = (
                        SELECT id FROM messages WHERE conversation_id = c.id AND role = 'assistant'
                        ORDER BY position LIMIT 1)
                    WHERE c.compare_run_id IN ({_marks(chunk)}) AND c.deleted_at IS NULL
                    ORDER BY c.rowid
                """
                for row in _rows(db, sql, chunk):
                    row["conversation_settings"] = json.loads(row["conversation_settings"] or "{}")
                    out.append(_message(row))
        return out

    def recent_compare_runs(self, user: str | None, *, limit: int = 20, mode: str | None = None) -> list[dict]:
        """Compare runs, newest first; ``mode`` "single" or "batch" filters on ``settings.mode``."""
        where, params = [], []
        if user is not None:
            where.append('"user" = ?')
            params.append(user)
        if mode is not None:
            where.append(f"COALESCE({self._json_text('settings', 'mode')}, 'single') = ?")
            params.append(mode)
        # a run whose every column was deleted is deleted too: hidden like its conversations
        where.append("EXISTS (SELECT 1 FROM conversations c WHERE c.compare_run_id = compare_runs.id "
                     "AND c.deleted_at IS NULL)")
        sql = "SELECT * FROM compare_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.db() as db:
            rows = _rows(db, sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?", [*params, limit])
        return [_compare_run(row) for row in rows]

    def compare_runs_in_batch(self, batch_id: str) -> list[dict]:
        """The runs of one batch (one per prompt), by prompt index."""
        with self.db() as db:
            rows = _rows(db, f"SELECT * FROM compare_runs WHERE {self._json_text('settings', 'batch_id')} = ? "
                             f"ORDER BY {self._json_number('settings', 'prompt_index')}, rowid", [batch_id])
        return [_compare_run(row) for row in rows]

    # ---- end of Compare page additions -------------------------------------------------------------

    # -- History: listing and analytics over the kept totals

    def filter_sql(self, filters: Filters) -> tuple[str, list[Any]]:
        """A condition on ``conversations c`` and its parameters."""
        where = ["c.deleted_at IS NOT NULL" if filters.deleted else "c.deleted_at IS NULL"]
        params: list[Any] = []
        if filters.user is not None:
            where.append('c."user" = ?')
            params.append(filters.user)
        if filters.source is not None:
            where.append("c.source = ?")
            params.append(filters.source)
        if filters.since is not None:
            where.append("c.updated_at >= ?")
            params.append(filters.since.isoformat())
        if filters.until is not None:
            where.append("c.updated_at < ?")
            params.append((filters.until + timedelta(days=1)).isoformat())
        # `models` is the JSON list the store keeps, e.g. ["openai:gpt-4o"]: match the JSON-encoded text
        if filters.provider:
            where.append(self._contains("c.models"))
            params.append(json.dumps(f"{filters.provider}:")[:-1])  # '"openai:' (no closing quote: a prefix)
        if filters.model:
            where.append(self._contains("c.models"))
            params.append(json.dumps(filters.model))
        if filters.status is not None:
            where.append(STATUSES[filters.status])
        return " AND ".join(where), params

    def list_conversations(self, filters: Filters, *, limit: int | None = 50, offset: int = 0) -> list[dict]:
        """Conversations matching ``filters``, last active first, with ``models`` and ``settings`` decoded
        and a ``title`` (the first visible message when untitled)."""
        where, params = self.filter_sql(filters)
        sql = f"SELECT c.* FROM conversations c WHERE {where} ORDER BY c.updated_at DESC, c.rowid DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        with self.db() as db:
            rows = [_conversation(row) for row in _rows(db, sql, params)]
            self._name_untitled(db, rows)
        return rows

    def conversations_by_id(self, conversation_ids: list[str]) -> dict[str, dict]:
        """These conversations (deleted or not) by id, decoded and named as in :meth:`list_conversations`;
        ids no longer stored are left out."""
        found: dict[str, dict] = {}
        with self.db() as db:
            for start in range(0, len(conversation_ids), 500):
                chunk = conversation_ids[start:start + 500]
                for row in _rows(db, f"SELECT c.* FROM conversations c WHERE c.id IN ({_marks(chunk)})", chunk):
                    found[row["id"]] = _conversation(row)
            self._name_untitled(db, list(found.values()))
        return found

    @staticmethod
    def _name_untitled(db: Any, rows: list[dict]) -> None:
        """A conversation with no title is named after its first message."""
        for row in rows:
            if not (row.get("title") or "").strip():
                first = db.execute("SELECT content FROM messages WHERE conversation_id = ? AND superseded = 0 "
                                   "ORDER BY position LIMIT 1", [row["id"]]).fetchone()
                row["title"] = title_from(first[0]) if first else ""

    def count_conversations(self, filters: Filters) -> int:
        where, params = self.filter_sql(filters)
        with self.db() as db:
            return db.execute(f"SELECT COUNT(*) FROM {self._totals_source(filters)} WHERE {where}",
                              params).fetchone()[0]

    def filter_values(self, filters: Filters) -> tuple[list[list[str]], list[str]]:
        """The distinct ``provider:model`` lists and users of the conversations matching ``filters``."""
        where, params = self.filter_sql(filters)
        source = self._totals_source(filters)
        with self.db() as db:
            model_lists = [json.loads(row[0] or "[]") for row in db.execute(
                f"SELECT DISTINCT c.models FROM {source} WHERE {where}", params).fetchall()]
            users = [row[0] for row in db.execute(
                f'SELECT DISTINCT c."user" FROM {source} WHERE {where} ORDER BY 1', params).fetchall()]
        return model_lists, users

    def summary(self, filters: Filters) -> dict:
        """Conversations, messages, replies, tokens, known cost and replies of unknown cost, summed from the
        kept totals of the conversations matching ``filters``."""
        where, params = self.filter_sql(filters)
        with self.db() as db:
            return _rows(db, f"""
                SELECT COUNT(*) AS conversations,
                       COALESCE(SUM(c.message_count), 0) AS messages,
                       COALESCE(SUM(c.reply_count), 0) AS replies,
                       COALESCE(SUM(c.input_tokens + c.output_tokens + c.cache_read_tokens
                                    + c.cache_write_tokens), 0) AS tokens,
                       COALESCE(SUM(c.cost), 0.0) AS cost,
                       COALESCE(SUM(c.unknown_cost_count), 0) AS unknown_cost_count
                FROM {self._totals_source(filters)} WHERE {where}""", params)[0]

    def usage_by_user(self, filters: Filters) -> list[dict]:
        where, params = self.filter_sql(filters)
        with self.db() as db:
            return _rows(db, f"""
                SELECT c."user" AS "user", COUNT(*) AS conversations, SUM(c.message_count) AS messages,
                       SUM(c.input_tokens + c.output_tokens + c.cache_read_tokens + c.cache_write_tokens) AS tokens,
                       COALESCE(SUM(c.cost), 0.0) AS cost, SUM(c.unknown_cost_count) AS unknown_cost_count
                FROM {self._totals_source(filters)} WHERE {where} GROUP BY c."user" ORDER BY 1""", params)

    def reply_figures(self, filters: Filters, *, batch: int = 10_000) -> Iterator[list[tuple]]:
        """Every finished reply of the conversations matching ``filters`` (superseded ones too, as in the
        totals), in batches of (UTC day, model name, tokens, cost, ttft, tokens per second) tuples."""
        where, params = self.filter_sql(filters)
        # The conversations are the outer loop: the filters pick them, an index finds their replies.
        # The rate is chat.display.tokens_per_second, in SQL.
        sql = f"""
            SELECT substr(m.created_at, 1, 10),
                   CASE WHEN m.provider IS NULL THEN COALESCE(m.model, 'unknown model')
                        ELSE m.provider || ':' || m.model END,
                   COALESCE(m.input_tokens, 0) + COALESCE(m.output_tokens, 0) + COALESCE(m.cache_read_tokens, 0)
                     + COALESCE(m.cache_write_tokens, 0),
                   m.cost, m.ttft,
                   CASE WHEN m.output_tokens > 0 AND m.duration - COALESCE(m.ttft, 0) > 0.05
                        THEN m.output_tokens / (m.duration - COALESCE(m.ttft, 0)) END
            FROM {self._replies_join()}
            WHERE {where} AND m.role = 'assistant' AND m.status != 'streaming'"""
        with self.db() as db:
            cursor = db.execute(sql, params)
            while rows := cursor.fetchmany(batch):
                yield rows

    def _replies_join(self) -> str:
        return "conversations c JOIN messages m ON m.conversation_id = c.id"

    # -- History: full-text search (each engine's own; see chat.store.search for the syntax)

    @contextmanager
    def search_session(self, time_limit: float = SEARCH_TIME_LIMIT) -> Iterator[Any]:
        """A search's queries on one connection, abandoned past ``time_limit`` seconds (SearchTooSlow); an
        unreadable index comes out as SearchIndexDamaged. The session has ``parse(text)``, ``join(phrases)``,
        ``last_id()``, ``newest_match(phrase, offset)``, ``candidates(query, filters, by, limit)``."""
        raise NotImplementedError
        yield

    def snippets(self, expr: str, message_ids: list[int]) -> dict[int, str]:
        """For each of these messages, its passage best matching ``expr`` (a parsed query's expression),
        matched words between HIGHLIGHT_START and HIGHLIGHT_END."""
        raise NotImplementedError

    # -- inside a write transaction

    def _spend_since(self, db: Any, user: str, since: str) -> tuple[float, float]:
        # A conversation holding a reply created since ``since`` was updated since then too (every new
        # message touches it), so the user's recently updated conversations are the only ones to read.
        row = db.execute(
            "SELECT COALESCE(SUM(m.cost) FILTER (WHERE m.status != 'streaming'), 0.0),"
            " COALESCE(SUM(m.reserved_cost) FILTER (WHERE m.status = 'streaming'), 0.0)"
            " FROM conversations c JOIN messages m ON m.conversation_id = c.id"
            ' WHERE c."user" = ? AND c.updated_at >= ? AND m.role = \'assistant\' AND m.created_at >= ?',
            [user, since, since]).fetchone()
        return float(row[0]), float(row[1])

    def _require(self, db: Any, conversation_id: str, *, lock: bool = False) -> dict:
        row = _one(db, "SELECT * FROM conversations WHERE id = ?" + (self._for_update if lock else ""),
                   [conversation_id])
        if row is None:
            raise NotFound("conversation", conversation_id)
        return row

    @staticmethod
    def _insert(db: Any, table: str, row: dict) -> None:
        columns = ", ".join(f'"{column}"' for column in row)
        db.execute(f"INSERT INTO {table} ({columns}) VALUES ({_marks(row)})", list(row.values()))

    @staticmethod
    def _set(db: Any, table: str, key: object, changes: dict) -> None:
        assignments = ", ".join(f'"{column}" = ?' for column in changes)
        cursor = db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*changes.values(), key])
        if cursor.rowcount == 0:
            raise NotFound(table.rstrip("s"), key)

    def _insert_message(self, db: Any, conversation_id: str, row: dict) -> int:
        # The conversation is held (SQLite's write lock, PostgreSQL's row lock): max + 1 cannot race
        position = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM messages WHERE conversation_id = ?",
                              [conversation_id]).fetchone()[0]
        row = {"conversation_id": conversation_id, "position": position, **row}
        columns = ", ".join(f'"{column}"' for column in row)
        return db.execute(f"INSERT INTO messages ({columns}) VALUES ({_marks(row)}) RETURNING id",
                          list(row.values())).fetchall()[0][0]

    def _refresh_totals(self, db: Any, conversation_id: str, *, touch: str | None = None) -> None:
        """Recompute the conversation's kept totals from its messages (one indexed pass)."""
        totals = _one(db, _TOTALS_SQL, [conversation_id]) or {}
        totals["models"] = json.dumps([row[0] for row in db.execute(_MODELS_SQL, [conversation_id]).fetchall()])
        if touch is not None:
            totals["updated_at"] = touch
        self._set(db, "conversations", conversation_id, totals)
