"""Conversations and messages in one SQLite file, shared by every Streamlit session and thread.

One :class:`Store` is meant to live in ``st.cache_resource``. Streamlit runs each session and each parallel
fragment on its own thread, so the store hands out pooled connections (opened with
``check_same_thread=False``) to one thread at a time; a thread that asks again while it holds one gets the
same one back. Every connection runs in WAL mode with a busy timeout, and every write is one short
``BEGIN IMMEDIATE`` transaction, which serialises writers across threads and processes and makes
"next position = max + 1" safe.

The per-conversation totals (tokens, cost, counts, models) are recomputed from the conversation's own
messages inside the same transaction as each write that can change them. A listing reads them without
touching ``messages``; a reply counts once it has left ``streaming``, however often it is finished.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlite_utils

from chat.migrations import SchemaTooNew, StoreError, migrate, now

if TYPE_CHECKING:
    from chat.attachments import Attachment
    from chat.providers.base import Usage

__all__ = [
    "Budget",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "NotFound",
    "SchemaTooNew",
    "StartedReply",
    "Store",
    "StoreError",
    "title_from",
]

SOURCES = ("chat", "compare")
FINAL_STATUSES = ("complete", "unfinished", "stopped", "error", "interrupted")
TITLE_LENGTH = 60
BUSY_TIMEOUT_MS = 15000  # how long a write waits for another writer before DatabaseBusy
INTERRUPTED_ERROR = "The app stopped before this reply finished."


# ---------------------------------------------------------------- typed errors


class DatabaseUnavailable(StoreError):
    """The database file cannot be opened, read or written. ``reason`` is one of ``read_only``,
    ``corrupt``, ``cannot_open``, ``full``, ``io``."""

    _messages = {
        "read_only": "The chat database at {path} is read-only, so chats cannot be saved.",
        "corrupt": "The file at {path} is not a readable chat database; move it aside to start a new one.",
        "cannot_open": "The chat database at {path} cannot be opened ({detail}).",
        "full": "The disk holding the chat database at {path} is full.",
        "io": "The chat database at {path} could not be read or written ({detail}).",
    }

    def __init__(self, path: str | os.PathLike, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(self._messages[reason].format(path=self.path, detail=detail or reason))


class DatabaseBusy(StoreError):
    """Another writer held the database for longer than the busy timeout."""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__("The chat database is busy with another writer; try again in a moment.")


class NotFound(StoreError, LookupError):
    def __init__(self, what: str, key: object):
        self.key = key
        super().__init__(f"That {what} no longer exists.")


def _translate(exc: sqlite3.Error, path: Path) -> StoreError | None:
    """The typed error for an sqlite3 error that is about the file, not the code; None otherwise."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return DatabaseBusy(detail)
    for prefix, reason in (
        ("SQLITE_READONLY", "read_only"),
        ("SQLITE_NOTADB", "corrupt"),
        ("SQLITE_CORRUPT", "corrupt"),
        ("SQLITE_CANTOPEN", "cannot_open"),
        ("SQLITE_PERM", "cannot_open"),
        ("SQLITE_AUTH", "cannot_open"),
        ("SQLITE_FULL", "full"),
        ("SQLITE_IOERR", "io"),
    ):
        if name.startswith(prefix):
            return DatabaseUnavailable(path, reason, detail)
    return None


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


def _rows(db: sqlite_utils.Database, sql: str, params: Any = ()) -> list[dict]:
    cursor = db.execute(sql, params)
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


def _one(db: sqlite_utils.Database, sql: str, params: Any = ()) -> dict | None:
    rows = _rows(db, sql, params)
    return rows[0] if rows else None


def _conversation(row: dict) -> dict:
    row["settings"] = json.loads(row["settings"] or "{}")
    row["models"] = json.loads(row["models"] or "[]")
    return row


def _compare_run(row: dict) -> dict:  # Compare page addition
    row["settings"] = json.loads(row["settings"] or "{}")
    row["blind"] = bool(row["blind"])
    return row


def _message(row: dict) -> dict:
    row["settings"] = None if row["settings"] is None else json.loads(row["settings"])
    row["tool_calls"] = json.loads(row["tool_calls"]) if row.get("tool_calls") else []
    for flag in ("input_exact", "output_exact", "superseded"):
        row[flag] = bool(row[flag])
    return row


_TOTALS_SQL = """
SELECT
  COUNT(*) FILTER (WHERE superseded = 0) AS message_count,
  COUNT(*) FILTER (WHERE counted) AS reply_count,
  COALESCE(SUM(input_tokens) FILTER (WHERE counted), 0) AS input_tokens,
  COALESCE(SUM(output_tokens) FILTER (WHERE counted), 0) AS output_tokens,
  COALESCE(SUM(cache_read_tokens) FILTER (WHERE counted), 0) AS cache_read_tokens,
  COALESCE(SUM(cache_write_tokens) FILTER (WHERE counted), 0) AS cache_write_tokens,
  TOTAL(cost) FILTER (WHERE counted) AS cost,
  COUNT(*) FILTER (WHERE counted AND cost IS NULL) AS unknown_cost_count,
  COUNT(*) FILTER (WHERE counted AND status = 'stopped') AS stopped_count,
  COUNT(*) FILTER (WHERE counted AND status IN ('error', 'interrupted', 'unfinished')) AS error_count
FROM (
  SELECT *, role = 'assistant' AND status != 'streaming' AS counted
  FROM messages WHERE conversation_id = ?
)
"""

_MODELS_SQL = """
SELECT provider || ':' || model FROM messages
WHERE conversation_id = ? AND role = 'assistant' AND provider IS NOT NULL AND model IS NOT NULL
GROUP BY 1 ORDER BY MIN(position)
"""

TOTAL_KEYS = ("message_count", "reply_count", "input_tokens", "output_tokens", "cache_read_tokens",
              "cache_write_tokens", "cost", "unknown_cost_count", "stopped_count", "error_count", "models")


# ---------------------------------------------------------------- bounded searches

SEARCH_MAX_CHARS = 500
SEARCH_MAX_TERMS = 20  # words and quoted phrases
SEARCH_MAX_PREFIXES = 3  # terms ending in * (each merges the index's lists of every word it starts)
SEARCH_MIN_PREFIX = 2  # characters before the *
SEARCH_TIME_LIMIT = 2.0  # seconds a search may run before SQLite abandons it
_PROGRESS_STEPS = 1000  # SQLite virtual-machine steps between two looks at the clock


class SearchError(Exception):
    """A search that cannot run; the message is for the user and says what to do."""


class SearchTooLarge(SearchError):
    """Too long, too many words, or too many (or too short) prefixes."""


class SearchTooSlow(SearchError):
    """Abandoned after SEARCH_TIME_LIMIT seconds."""


class SearchIndexDamaged(SearchError):
    """The full-text index cannot be read."""


def check_search_size(text: str, terms: list[str] | tuple[str, ...]) -> None:
    """Refuse a search too big to run cheaply. ``terms`` are its words and quoted phrases as typed, a
    prefix ending in ``*``."""
    if len(text) > SEARCH_MAX_CHARS:
        raise SearchTooLarge(f"Search takes at most {SEARCH_MAX_CHARS} characters; shorten it.")
    if len(terms) > SEARCH_MAX_TERMS:
        raise SearchTooLarge(f"Search takes at most {SEARCH_MAX_TERMS} words; shorten it.")
    prefixes = [t for t in terms if t.endswith("*")]
    if len(prefixes) > SEARCH_MAX_PREFIXES:
        raise SearchTooLarge(f"Search takes at most {SEARCH_MAX_PREFIXES} words ending in *; use fewer.")
    if any(len(t.rstrip("*").strip('"')) < SEARCH_MIN_PREFIX for t in prefixes):
        raise SearchTooLarge(f"A word ending in * needs at least {SEARCH_MIN_PREFIX} letters before the *, "
                             "as in kube*.")


@contextmanager
def search_guard(db: sqlite_utils.Database, seconds: float = SEARCH_TIME_LIMIT) -> Iterator[None]:
    """Run a search's queries on ``db`` for at most ``seconds``: SQLite's progress handler abandons a
    longer one (SearchTooSlow), so a search never holds a core for long. An unreadable full-text index
    comes out as SearchIndexDamaged."""
    deadline = time.monotonic() + seconds
    db.conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    try:
        yield
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name == "SQLITE_INTERRUPT":
            raise SearchTooSlow(f"The search took longer than {seconds:g} s and was stopped. Use fewer or "
                                "rarer words, or narrow the dates.") from None
        if name.startswith("SQLITE_CORRUPT") or "fts5" in str(exc).lower():
            raise SearchIndexDamaged("The search index is damaged, so searching does not work until it is "
                                     "rebuilt (see README, Operating it); listing and reading conversations "
                                     f"still work. SQLite said: {exc}") from None
        raise
    finally:
        db.conn.set_progress_handler(None, 0)


def _fts_query(text: str) -> str:
    """Every word as a quoted FTS5 string: user input cannot be an FTS syntax error; words are ANDed.
    Raises SearchTooLarge past the size limits."""
    words = text.split()
    check_search_size(text, words)
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


# ---------------------------------------------------------------- the store


class Store:
    def __init__(self, path: str | os.PathLike, *, busy_timeout_ms: int | None = None, pool_size: int = 4):
        if str(path) in ("", ":memory:"):
            raise ValueError("Store needs a file path: each pooled connection would see its own :memory:")
        self.path = Path(path)
        self.busy_timeout_ms = int(BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms)
        # Only the constructor may create the file. Later connections open it read-write or fail: a file
        # (or folder) deleted while the app runs is an error to show, never a new empty database to fill.
        self._uri = self.path.resolve().as_uri()
        self._create = True
        self._pool_size = pool_size
        self._idle: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = "read_only" if exc.errno == errno.EROFS else "cannot_open"
            raise DatabaseUnavailable(self.path, reason, exc.strerror or str(exc)) from exc
        try:
            with self.db() as db:
                migrate(db)
                # Fail now, with a message the UI can show, rather than on the first message sent
                db.conn.execute("BEGIN IMMEDIATE")
                db.conn.execute("ROLLBACK")
        except BaseException:
            self.close()
            raise
        self._create = False

    # -- connections

    def _connect(self) -> sqlite_utils.Database:
        mode = "rwc" if self._create else "rw"
        conn = sqlite3.connect(f"{self._uri}?mode={mode}", uri=True, timeout=self.busy_timeout_ms / 1000,
                               check_same_thread=False,
                               isolation_level=None)  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
        try:
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            # Switching a new file to WAL can report "locked" at once, without waiting, while another
            # process does the same: try again for a while.
            deadline = time.monotonic() + self.busy_timeout_ms / 1000
            while True:
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            db = sqlite_utils.Database(conn)
            db._chat_file = self._file_id()  # which file this connection has open (see _acquire)
            return db
        except BaseException:
            conn.close()
            raise

    def _file_id(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def _acquire(self) -> sqlite_utils.Database:
        with self._lock:
            if self._closed:
                raise StoreError("The chat database has been closed.")
            idle = self._idle.pop() if self._idle else None
        if idle is not None:
            # A pooled connection keeps writing to its file even after that file (or its folder) was
            # deleted or replaced, and those writes would be lost: such a connection is dropped.
            if idle._chat_file is not None and idle._chat_file == self._file_id():
                return idle
            idle.close()
        return self._connect()

    def _release(self, db: sqlite_utils.Database, *, broken: bool) -> None:
        try:
            if db.conn.in_transaction:  # the caller's block raised inside a transaction of its own
                db.conn.execute("ROLLBACK")
        except sqlite3.Error:
            broken = True
        with self._lock:
            if not (broken or self._closed) and len(self._idle) < self._pool_size:
                self._idle.append(db)
                return
        db.close()

    @contextmanager
    def db(self) -> Iterator[sqlite_utils.Database]:
        """A connection for this thread's use until the block ends. Re-entrant within a thread. sqlite3
        errors about the file come out as :class:`DatabaseUnavailable` or :class:`DatabaseBusy`."""
        held = getattr(self._local, "db", None)
        if held is not None:
            yield held
            return
        try:
            db = self._acquire()
        except sqlite3.Error as exc:
            typed = _translate(exc, self.path)
            if typed is None:
                raise
            raise typed from exc
        self._local.db = db
        broken = False
        try:
            yield db
        except sqlite3.Error as exc:
            typed = _translate(exc, self.path)
            if typed is None:
                raise
            broken = isinstance(typed, DatabaseUnavailable)
            raise typed from exc
        finally:
            self._local.db = None
            self._release(db, broken=broken)

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """One short write transaction, committed when the block ends (a savepoint if one is open)."""
        with self.db() as db:
            if db.conn.in_transaction:
                with db.atomic():
                    yield db
                return
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.conn.execute("COMMIT")
            except BaseException:
                if db.conn.in_transaction:
                    db.conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the idle connections; connections in use close when their block ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    # -- conversations

    def create_conversation(self, *, user: str, source: str = "chat", title: str | None = None,
                            settings: dict | None = None, compare_run_id: str | None = None) -> str:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        conversation_id = uuid.uuid4().hex
        stamp = now()
        with self._write() as db:
            db["conversations"].insert({
                "id": conversation_id, "user": user, "title": title or "", "source": source,
                "compare_run_id": compare_run_id, "created_at": stamp, "updated_at": stamp,
                "settings": _dumps(settings or {}),
            })
        return conversation_id

    def get_conversation(self, conversation_id: str, *, include_deleted: bool = False) -> dict | None:
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
            where.append("user = ?")
            params.append(user)
        if source is not None:
            where.append("source = ?")
            params.append(source)
        sql = (f"SELECT * FROM conversations WHERE {' AND '.join(where)} "
               "ORDER BY updated_at DESC, rowid DESC LIMIT ?")
        with self.db() as db:
            return [_conversation(row) for row in _rows(db, sql, [*params, limit])]

    def soft_delete(self, conversation_id: str) -> None:
        with self._write() as db:
            self._require(db, conversation_id)
            db.execute("UPDATE conversations SET deleted_at = COALESCE(deleted_at, ?) WHERE id = ?",
                       [now(), conversation_id])

    def restore(self, conversation_id: str) -> None:
        with self._write() as db:
            self._set(db, "conversations", conversation_id, {"deleted_at": None})

    def conversation_totals(self, conversation_id: str) -> dict:
        """The kept totals: tokens, cost (known costs only), unknown_cost_count, reply/message counts,
        stopped/error counts and the ``provider:model`` ids used. Superseded replies are included."""
        with self.db() as db:
            row = self._require(db, conversation_id)
        return {key: row[key] for key in TOTAL_KEYS} | {"models": json.loads(row["models"])}

    # -- messages

    def add_user_message(self, conversation_id: str, content: str, attachments: Sequence[Attachment] = ()) -> dict:
        """Store the user's message (with its attached files) and commit before returning; names the
        conversation if unnamed. A file's bytes are stored once however often it is attached (sha256)."""
        stamp = now()
        with self._write() as db:
            conversation = self._require(db, conversation_id)
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

    @staticmethod
    def _insert_attachments(db: sqlite_utils.Database, message_id: int, attachments: Sequence[Attachment],
                            stamp: str) -> None:
        for position, item in enumerate(attachments):
            if item.data is not None:
                db.execute("INSERT OR IGNORE INTO blobs (sha256, data, size, created_at) VALUES (?, ?, ?, ?)",
                           [item.sha256, item.data, len(item.data), stamp])
            elif db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", [item.sha256]).fetchone() is None:
                raise ValueError(f"{item.name}: no data given and none stored")
            db.execute("INSERT INTO attachments (message_id, position, sha256, name, media_type, size, width, "
                       "height, pages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [message_id, position, item.sha256, item.name, item.media_type, item.size, item.width,
                        item.height, item.pages])

    @staticmethod
    def _attachments_of(db: sqlite_utils.Database, message_ids: list[int]) -> dict[int, list[dict]]:
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

        With a ``budget``, the user's spend since ``budget.since`` is read under the write lock: the known
        costs of finished replies plus the reservations of replies still streaming. Below the limit, the
        new reply holds ``budget.reserve`` until it finishes; at or past it, the reply is refused (started
        without a reservation; the caller records it as failed). Every writer takes the same lock
        (``BEGIN IMMEDIATE``), so two checks never both see the same room; on PostgreSQL the same
        transaction would take a per-user ``pg_advisory_xact_lock`` before the sum."""
        stamp = now()
        with self._write() as db:
            self._require(db, conversation_id)
            spent = reserved = 0.0
            admitted = True
            if budget is not None:
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

    def checkpoint_reply(self, message_id: int, content: str, reasoning: str | None = None) -> None:
        """Save the partial text (and reasoning, when given) of a streaming reply. A reply that has already
        left 'streaming' (finished, or marked interrupted) is left as it is."""
        with self._write() as db:
            db.execute("UPDATE messages SET content = ?, reasoning = COALESCE(?, reasoning), updated_at = ? "
                       "WHERE id = ? AND status = 'streaming'", [content, reasoning or None, now(), message_id])

    def finish_reply(self, message_id: int, *, content: str, status: str, usage: Usage | None,
                     cost: float | None, ttft: float | None = None, duration: float | None = None,
                     finish_reason: str | None = None, error: str | None = None,
                     tool_calls: list[str] | None = None, cost_source: str | None = None,
                     reasoning: str | None = None, reasoning_ttft: float | None = None,
                     reasoning_hidden: bool = False) -> dict:
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
            self._set(db, "messages", message_id, changes)
            self._refresh_totals(db, row["conversation_id"], touch=stamp)
            return _message(_one(db, "SELECT * FROM messages WHERE id = ?", [message_id]))

    def messages(self, conversation_id: str, *, include_superseded: bool = False) -> list[dict]:
        sql = "SELECT * FROM messages WHERE conversation_id = ?"
        if not include_superseded:
            sql += " AND superseded = 0"
        with self.db() as db:
            rows = [_message(row) for row in _rows(db, sql + " ORDER BY position", [conversation_id])]
            files = self._attachments_of(db, [r["id"] for r in rows if r["role"] == "user"])
        for row in rows:
            row["attachments"] = files.get(row["id"], [])
        return rows

    def message(self, message_id: int) -> dict | None:
        """One message by id (a reply another process is writing is followed through this)."""
        with self.db() as db:
            row = _one(db, "SELECT * FROM messages WHERE id = ?", [message_id])
        return None if row is None else _message(row)

    def supersede_from(self, conversation_id: str, position: int) -> None:
        """Hide the messages at ``position`` and after (regenerate, edit and resend). They stay in the
        database and in the totals; new messages are numbered after the highest position."""
        stamp = now()
        with self._write() as db:
            self._require(db, conversation_id)
            db.execute("UPDATE messages SET superseded = 1, updated_at = ? "
                       "WHERE conversation_id = ? AND position >= ? AND superseded = 0",
                       [stamp, conversation_id, position])
            self._refresh_totals(db, conversation_id, touch=stamp)

    def mark_interrupted_replies(self, *, stale_after: float | None = None) -> int:
        """Replies left 'streaming' by a crash become 'interrupted', keeping their checkpointed text, and
        count as errors. Returns how many.

        With ``stale_after`` (seconds) only rows not written for that long are marked: a live reply is
        checkpointed every second (even while the provider is silent), so this is safe to run at any
        time, from any process sharing the database. Without it, every streaming row is marked (only for
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
            conversation_ids = [row[0] for row in db.execute(
                f"SELECT DISTINCT conversation_id FROM messages WHERE {where}", params)]
            count = db.execute(
                f"UPDATE messages SET status = 'interrupted', error = COALESCE(error, ?), reserved_cost = NULL, "
                f"updated_at = ? "
                f"WHERE {where}", [INTERRUPTED_ERROR, stamp, *params]).rowcount
            for conversation_id in conversation_ids:
                self._refresh_totals(db, conversation_id)
        return count

    def search(self, query: str, *, user: str | None = None, limit: int = 50) -> list[dict]:
        """Visible messages of conversations not deleted whose text holds every word of ``query``
        (Porter-stemmed), best match first; each row also has ``conversation_title`` and ``snippet``."""
        match = _fts_query(query)
        if not match:
            return []
        sql = """
            SELECT m.*, c.title AS conversation_title, c.user AS user,
                   snippet(messages_fts, 0, '', '', '…', 16) AS snippet
            FROM messages_fts
            JOIN messages m ON m.id = messages_fts.rowid
            JOIN conversations c ON c.id = m.conversation_id
            WHERE messages_fts MATCH ? AND m.superseded = 0 AND c.deleted_at IS NULL
        """
        params: list[Any] = [match]
        if user is not None:
            sql += " AND c.user = ?"
            params.append(user)
        sql += " ORDER BY messages_fts.rank LIMIT ?"
        with self.db() as db, search_guard(db):
            return [_message(row) for row in _rows(db, sql, [*params, limit])]

    # -- compare runs

    def create_compare_run(self, *, user: str, prompt: str, settings: dict | None = None,
                           blind: bool = False) -> str:
        run_id = uuid.uuid4().hex
        with self._write() as db:
            db["compare_runs"].insert({
                "id": run_id, "user": user, "prompt": prompt, "settings": _dumps(settings or {}),
                "vote": None, "blind": int(blind), "created_at": now(),
            })
        return run_id

    # ---- Compare page additions (chat/compare.py uses these) ----------------------------------------

    def get_compare_run(self, run_id: str) -> dict | None:
        """A compare run with its settings parsed and ``blind`` as a bool; None if unknown."""
        with self.db() as db:
            row = _one(db, "SELECT * FROM compare_runs WHERE id = ?", [run_id])
        return None if row is None else _compare_run(row)

    def set_compare_vote(self, run_id: str, vote: str | None) -> None:
        """Record the run's vote (a label such as ``A``, ``tie`` or ``all_bad``; None clears it)."""
        with self._write() as db:
            self._set(db, "compare_runs", run_id, {"vote": vote})

    def conversations_for_run(self, run_id: str) -> list[dict]:
        """The conversations (not deleted) of a compare run, in the order they were created."""
        with self.db() as db:
            rows = _rows(db, "SELECT * FROM conversations WHERE compare_run_id = ? AND deleted_at IS NULL "
                             "ORDER BY rowid", [run_id])
        return [_conversation(row) for row in rows]

    def compare_replies(self, run_ids: list[str]) -> list[dict]:
        """For each conversation (not deleted) of these compare runs, its first reply: the compared one,
        whatever was added when it was continued as a chat. Each row is a message row plus
        ``compare_run_id`` and ``conversation_settings`` (parsed). In creation order."""
        out: list[dict] = []
        with self.db() as db:
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                sql = f"""
                    SELECT m.*, c.compare_run_id AS compare_run_id, c.settings AS conversation_settings
                    FROM conversations c
                    JOIN messages m ON m.id = (
                        SELECT id FROM messages WHERE conversation_id = c.id AND role = 'assistant'
                        ORDER BY position LIMIT 1)
                    WHERE c.compare_run_id IN ({marks}) AND c.deleted_at IS NULL
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
            where.append("user = ?")
            params.append(user)
        if mode is not None:
            where.append("COALESCE(json_extract(settings, '$.mode'), 'single') = ?")
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
            rows = _rows(db, "SELECT * FROM compare_runs WHERE json_extract(settings, '$.batch_id') = ? "
                             "ORDER BY json_extract(settings, '$.prompt_index'), rowid", [batch_id])
        return [_compare_run(row) for row in rows]

    # ---- end of Compare page additions -------------------------------------------------------------

    # -- inside a write transaction

    @staticmethod
    def _spend_since(db: sqlite_utils.Database, user: str, since: str) -> tuple[float, float]:
        # A conversation holding a reply created since ``since`` was updated since then too (every new
        # message touches it), so the user's recently updated conversations are the only ones to read.
        row = db.execute(
            "SELECT TOTAL(m.cost) FILTER (WHERE m.status != 'streaming'),"
            " TOTAL(m.reserved_cost) FILTER (WHERE m.status = 'streaming')"
            " FROM conversations c JOIN messages m ON m.conversation_id = c.id"
            " WHERE c.user = ? AND c.updated_at >= ? AND m.role = 'assistant' AND m.created_at >= ?",
            [user, since, since]).fetchone()
        return float(row[0]), float(row[1])

    @staticmethod
    def _require(db: sqlite_utils.Database, conversation_id: str) -> dict:
        row = _one(db, "SELECT * FROM conversations WHERE id = ?", [conversation_id])
        if row is None:
            raise NotFound("conversation", conversation_id)
        return row

    @staticmethod
    def _set(db: sqlite_utils.Database, table: str, key: object, changes: dict) -> None:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        cursor = db.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", [*changes.values(), key])
        if cursor.rowcount == 0:
            raise NotFound(table.rstrip("s"), key)

    @staticmethod
    def _insert_message(db: sqlite_utils.Database, conversation_id: str, row: dict) -> int:
        # The write lock is held (BEGIN IMMEDIATE), so max + 1 cannot race with another writer
        position = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM messages WHERE conversation_id = ?",
                              [conversation_id]).fetchone()[0]
        row = {"conversation_id": conversation_id, "position": position, **row}
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        return db.execute(f"INSERT INTO messages ({columns}) VALUES ({marks})", list(row.values())).lastrowid

    @staticmethod
    def _refresh_totals(db: sqlite_utils.Database, conversation_id: str, *, touch: str | None = None) -> None:
        """Recompute the conversation's kept totals from its messages (one indexed pass)."""
        totals = _one(db, _TOTALS_SQL, [conversation_id]) or {}
        totals["models"] = json.dumps([row[0] for row in db.execute(_MODELS_SQL, [conversation_id])])
        if touch is not None:
            totals["updated_at"] = touch
        Store._set(db, "conversations", conversation_id, totals)
