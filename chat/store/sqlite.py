"""The SQLite engine: one file, shared by every Streamlit session, thread and process on one machine.

Streamlit runs each session and each parallel fragment on its own thread, so the store hands out pooled
connections (opened with ``check_same_thread=False``) to one thread at a time. Every connection runs in WAL
mode with a busy timeout, and every write is one short ``BEGIN IMMEDIATE`` transaction, which serialises
writers across threads and processes. Search is FTS5 with bm25 ranking.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import chat.store.engine
from chat.lean_sqlite_utils import sqlite_utils
from chat.store.base import Store
from chat.store.errors import DatabaseBusy, DatabaseUnavailable, StoreError, raise_typed
from chat.store.filters import Filters
from chat.store.search import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    SEARCH_TIME_LIMIT,
    SNIPPET_TOKENS,
    Query,
    SearchIndexDamaged,
    SearchTooSlow,
    check_search_size,
    clean,
    label,
    phrase_terms,
    plain_words,
    terms,
)
from chat.store.sqlite_migrations import migrate

_PROGRESS_STEPS = 1000  # SQLite virtual-machine steps between two looks at the clock


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
            raise SearchTooSlow(seconds) from None
        if name.startswith("SQLITE_CORRUPT") or "fts5" in str(exc).lower():
            raise SearchIndexDamaged("The search index is damaged, so searching does not work until it is "
                                     "rebuilt (see README, Operating it); listing and reading conversations "
                                     f"still work. SQLite said: {exc}") from None
        raise
    finally:
        db.conn.set_progress_handler(None, 0)


# FTS5 sets a query up again for each value of `rowid IN (...)` (a prefix query merges its word lists again
# each time). One pass over the ids' range with `+rowid IN (...)` (the "+" keeps the list out of the virtual
# table's hands) sets it up once and runs snippet() only on the listed rows.
_ONLY_THESE = "rowid BETWEEN ? AND ? AND +rowid IN (SELECT value FROM json_each(?))"


def _only(ids: list[int]) -> list:
    return [min(ids), max(ids), json.dumps(ids)]


class _FtsSession:
    """A search's queries on one SQLite connection (see Store.search_session)."""

    def __init__(self, store: SqliteStore, db: sqlite_utils.Database):
        self.store = store
        self.db = db

    def parse(self, text: str) -> Query | None:
        """The FTS5 MATCH expression for what the user typed; None when there is nothing to search for.
        Raises SearchTooLarge past the size limits."""
        text = clean(text)
        if not text:
            return None
        check_search_size(text, terms(text))
        phrases = phrase_terms(text)
        if phrases:  # words and quoted phrases only: valid FTS5 as they stand, written out one by one
            return Query(" ".join(phrases), phrases, tuple(label(p) for p in phrases), plain=False)
        try:  # operators: let FTS5 judge (parsing a query costs no more than a prefix's word list)
            self.db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? LIMIT 1", [text]).fetchall()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "SQLITE_ERROR") != "SQLITE_ERROR":
                raise  # about the database, not the query
            words = plain_words(text)
            return Query(" ".join(words), words, tuple(label(w) for w in words), plain=True) if words else None
        return Query(text, None, (), plain=False)

    @staticmethod
    def join(phrases: tuple[str, ...]) -> str:
        return " ".join(phrases)

    def last_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(rowid), 0) FROM messages").fetchone()[0]

    def newest_match(self, phrase: str, offset: int) -> int | None:
        """The id of the ``offset``-th newest message (0: the newest) matching ``phrase``, superseded or not."""
        row = self.db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC "
                              "LIMIT 1 OFFSET ?", [phrase, offset]).fetchone()
        return None if row is None else row[0]

    def candidates(self, expr: str, filters: Filters, *, by: str, limit: int) -> list[tuple[int, str, float]]:
        """The newest ``limit`` visible messages matching ``expr`` within ``filters``, newest first, as
        (message id, conversation id, score); a lower score is a better match (``by`` "relevance": bm25;
        "recency": newer is better)."""
        where, params = self.store.filter_sql(filters)
        score = "bm25(messages_fts)" if by == "relevance" else "-messages_fts.rowid"
        return self.db.execute(f"""
            SELECT messages_fts.rowid, m.conversation_id, {score}
            FROM messages_fts
            JOIN messages m ON m.id = messages_fts.rowid
            JOIN conversations c ON c.id = m.conversation_id
            WHERE messages_fts MATCH ? AND m.superseded = 0 AND {where}
            ORDER BY messages_fts.rowid DESC LIMIT ?""", [expr, *params, limit]).fetchall()


class SqliteStore(Store):
    engine = "sqlite"

    def __init__(self, path: str | os.PathLike, *, busy_timeout_ms: int | None = None, pool_size: int = 4):
        if str(path) in ("", ":memory:"):
            raise ValueError("Store needs a file path: each pooled connection would see its own :memory:")
        self.path = Path(path)
        self.busy_timeout_ms = int(chat.store.engine.BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms)
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

    def describe(self) -> str:
        return str(self.path)

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
            raise_typed(exc, _translate(exc, self.path))
        self._local.db = db
        broken = False
        try:
            yield db
        except sqlite3.Error as exc:
            typed = _translate(exc, self.path)
            broken = isinstance(typed, DatabaseUnavailable)
            raise_typed(exc, typed)
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

    # -- SQL that differs

    def _totals_source(self, filters: Filters) -> str:
        # live conversations are read from the index that holds their totals (SQLite would otherwise read
        # every row; see migration m002)
        return "conversations c" if filters.deleted else "conversations c INDEXED BY idx_conversations_live_totals"

    def _replies_join(self) -> str:
        # CROSS JOIN keeps conversations as the outer loop
        return "conversations c CROSS JOIN messages m ON m.conversation_id = c.id"

    def _insert_blob(self, db: sqlite_utils.Database, sha256: str, data: bytes, stamp: str) -> None:
        db.execute("INSERT OR IGNORE INTO blobs (sha256, data, size, created_at) VALUES (?, ?, ?, ?)",
                   [sha256, data, len(data), stamp])

    # -- search

    @contextmanager
    def search_session(self, time_limit: float = SEARCH_TIME_LIMIT) -> Iterator[_FtsSession]:
        with self.db() as db, search_guard(db, time_limit):
            yield _FtsSession(self, db)

    def snippets(self, expr: str, message_ids: list[int]) -> dict[int, str]:
        if not message_ids:
            return {}
        with self.db() as db:
            return dict(db.execute(
                f"SELECT rowid, snippet(messages_fts, 0, ?, ?, '…', ?) FROM messages_fts "
                f"WHERE messages_fts MATCH ? AND {_ONLY_THESE}",
                [HIGHLIGHT_START, HIGHLIGHT_END, SNIPPET_TOKENS, expr, *_only(message_ids)]).fetchall())
