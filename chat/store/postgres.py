"""The PostgreSQL engine: one database shared by several app replicas (psycopg 3 with a connection pool).

Reads run in autocommit; every write is one short transaction that locks what it depends on, in one order
(the conversation row ``FOR UPDATE``, then the user's advisory lock for a budget, then the message rows), so
positions never collide, totals are recomputed from what is committed, a spend check never sees room another
replica has just taken, and two replicas never deadlock. A lock held longer than the busy timeout
(``lock_timeout``) is :class:`DatabaseBusy`. Search is a ``tsvector`` column with a GIN index, ranked with
``ts_rank`` and highlighted with ``ts_headline``; ``statement_timeout`` bounds it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

import chat.store.engine
from chat.store import pg_migrations
from chat.store.base import Store
from chat.store.errors import DatabaseBusy, DatabaseUnavailable, StoreError, raise_typed
from chat.store.filters import Filters
from chat.store.search import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    SEARCH_TIME_LIMIT,
    SNIPPET_TOKENS,
    Query,
    SearchTooSlow,
    check_search_size,
    clean,
    leaves,
    parse_tree,
    phrase_terms,
    terms,
)

TS_CONFIG = "chat_search"  # the text search configuration of pg_migrations.m001_initial
USER_LOCKS = 4242  # first key of the per-user advisory locks (the second is the user's hash)
HEADLINE = (f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxWords={SNIPPET_TOKENS}, "
            f"MinWords={SNIPPET_TOKENS // 2}, ShortWord=0")
MIN_WINDOW = 1_000  # message ids in the smallest window a search looks at (see _TsSession.candidates)
_LAST_LEXEME = re.compile(r"'(?:[^']|'')*'(?!.*')")


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the PostgreSQL server (unreadable URL)"
    host = parts.get("host") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


def _translate(exc: psycopg.Error, where: str) -> StoreError | None:
    """The typed error for a psycopg error that is about the server, not the code; None otherwise."""
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, errors.LockNotAvailable | errors.DeadlockDetected | errors.SerializationFailure):
        return DatabaseBusy(detail)
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return DatabaseUnavailable(where, "read_only", detail)
    if isinstance(exc, errors.DiskFull):
        return DatabaseUnavailable(where, "full", detail)
    if isinstance(exc, errors.DataCorrupted | errors.IndexCorrupted):
        return DatabaseUnavailable(where, "corrupt", detail)
    if isinstance(exc, errors.InsufficientPrivilege | errors.InvalidAuthorizationSpecification
                  | errors.InvalidCatalogName):
        return DatabaseUnavailable(where, "cannot_open", detail)
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, errors.QueryCanceled):
        # no SQLSTATE: the client could not connect, or lost the connection; 08: connection exceptions;
        # 57P01-57P03: the server is shutting down, crashed or starting
        lost = exc.sqlstate is None or exc.sqlstate.startswith("08") or exc.sqlstate in ("57P01", "57P02", "57P03")
        return DatabaseUnavailable(where, "unreachable" if lost else "cannot_open", detail)
    return None


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """The store's SQL (``?`` placeholders) in psycopg's terms (``%s``)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A pooled psycopg connection with ``execute(sql, params)`` taking ``?`` placeholders (``conn`` is psycopg's)."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor:
        if params:
            return self.conn.execute(_pg_sql(sql), list(params))
        return self.conn.execute(sql)


class _TsSession:
    """A search's queries on one PostgreSQL connection (see Store.search_session): the same syntax as on
    SQLite, turned into a tsquery. Each term's lexemes come from the server (its stemmer); the operators join
    them (AND ``&``, OR ``|``, ``a NOT b`` as ``a & !b``, a phrase as ``<->``, a prefix as ``:*``)."""

    def __init__(self, db: PgConnection, store: PostgresStore):
        self.db = db
        self.store = store

    def lexemes(self, leaves_: list[tuple]) -> list[str]:
        """Each term as tsquery text ('' when it has no word the index would hold)."""
        if not leaves_:
            return []
        rows = self.db.execute(
            f"SELECT phraseto_tsquery('{TS_CONFIG}', t.text)::text FROM unnest(?::text[]) WITH ORDINALITY "
            "AS t(text, n) ORDER BY t.n", [[leaf[1] for leaf in leaves_]]).fetchall()
        out = []
        for leaf, (text,) in zip(leaves_, rows, strict=True):
            if text and leaf[2]:  # a prefix: its last word may start a longer one
                text = _LAST_LEXEME.sub(lambda m: m.group(0) + ":*", text, count=1)
            out.append(text or "")
        return out

    def parse(self, text: str) -> Query | None:
        text = clean(text)
        if not text:
            return None
        check_search_size(text, terms(text))
        tree = parse_tree(text)
        plain = tree is None
        if plain:
            words = [("term", chunk, False) for chunk in text.split() if re.search(r"\w", chunk)]
            if not words:
                return None
            tree = ("and", words)
        found = leaves(tree)
        lexemes = self.lexemes(found)
        queries = iter(lexemes)

        def render(node: tuple) -> str:
            if node[0] == "term":
                return next(queries)
            if node[0] == "not":
                kept, dropped = render(node[1]), render(node[2])
                return f"( {kept} ) & !( {dropped} )" if kept and dropped else kept
            parts = [part for part in map(render, node[1]) if part]
            return (" & " if node[0] == "and" else " | ").join(f"( {part} )" for part in parts)

        expr = render(tree)
        if not expr:
            return None
        if plain or phrase_terms(text) is not None:  # words and phrases only: ANDed, each may be left out
            pairs = [(q, leaf) for q, leaf in zip(lexemes, found, strict=True) if q]
            phrases = tuple(q for q, _ in pairs)
            labels = tuple(leaf[1] for _, leaf in pairs)
            return Query(expr, phrases, labels, plain)
        return Query(expr, None, (), plain)

    @staticmethod
    def join(phrases: tuple[str, ...]) -> str:
        return " & ".join(f"( {p} )" for p in phrases)

    def last_id(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]

    def newest_match(self, phrase: str, offset: int) -> int | None:
        row = self.db.execute("SELECT id FROM messages WHERE search_vector @@ ?::tsquery ORDER BY id DESC "
                              "LIMIT 1 OFFSET ?", [phrase, offset]).fetchone()
        return None if row is None else row[0]

    def candidates(self, expr: str, filters: Filters, *, by: str, limit: int) -> list[tuple[int, str, float]]:
        """As on SQLite: the newest ``limit`` visible messages matching ``expr`` within ``filters``, newest
        first, scored (``by`` "relevance": -ts_rank; "recency": -id).

        A GIN index cannot list its matches newest first, so they are looked for in windows of message ids,
        newest first: each window's matches come from the GIN index ANDed with the id range (or, for a word
        in most messages, from walking the ids backwards). The first window is sized from the planner's
        estimate of the matches, each next one from the matches seen per id so far, until ``limit`` are
        found or the oldest message is reached. A search for one user's live conversations reads only
        messages (their ``owner`` and ``conversation_deleted`` copies); other filters join each match's
        conversation."""
        where, params, source = self._filter(filters)
        match = f"m.search_vector @@ ?::tsquery AND m.superseded = 0 AND {where}"
        relevance = by == "relevance"
        score, score_params = ("-ts_rank(m.search_vector, ?::tsquery, 1)", [expr]) if relevance else ("-m.id", [])
        sql = (f"SELECT m.id, m.conversation_id, {score}::float8 FROM {source} WHERE {match} "
               "AND m.id >= ? AND m.id < ? ORDER BY m.id DESC LIMIT ?")
        found: list[tuple[int, str, float]] = []
        top = self.last_id() + 1
        newest = top
        expected = self.estimated_rows(f"SELECT 1 FROM {source} WHERE {match}", [expr, *params])
        span = max(MIN_WINDOW, int(limit * 1.25 * top / max(expected, 1)))
        while len(found) < limit and top > 0:
            bottom = max(0, top - span)
            found += self.db.execute(sql, [*score_params, expr, *params, bottom, top, limit - len(found)]).fetchall()
            seen = newest - bottom  # ids searched so far, with len(found) matches among them
            wanted = (limit - len(found)) * seen / len(found) * 1.25 if found else span * 8
            span, top = max(2 * span, int(wanted)), bottom
        return found

    def estimated_rows(self, sql: str, params: list[Any]) -> float:
        """The planner's estimate of the rows ``sql`` returns (from the column statistics; nothing is run)."""
        plan = self.db.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()[0]
        return float(plan[0]["Plan"]["Plan Rows"])

    def _filter(self, filters: Filters) -> tuple[str, list[Any], str]:
        """The condition on ``messages m`` for ``filters``, its parameters, and what to read: messages alone
        when only the user and the deletion state are asked for (the messages' own copies), else messages
        joined to their conversations."""
        if replace(filters, user=None, deleted=False) == Filters():
            where = [f"m.conversation_deleted = {1 if filters.deleted else 0}"]
            params: list[Any] = []
            if filters.user is not None:
                where.append("m.owner = ?")
                params.append(filters.user)
            return " AND ".join(where), params, "messages m"
        where_c, params = self.store.filter_sql(filters)
        return where_c, params, "messages m JOIN conversations c ON c.id = m.conversation_id"


class PostgresStore(Store):
    engine = "postgresql"
    _for_update = " FOR UPDATE"

    def __init__(self, url: str, *, busy_timeout_ms: int | None = None, pool_size: int = 10,
                 connect_timeout: float = 10.0):
        self.url = url
        self.where = redacted(url)
        self.busy_timeout_ms = int(chat.store.engine.BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms)
        self._local = threading.local()
        self._closed = False
        self._pool: ConnectionPool | None = None
        options = {"autocommit": True, "connect_timeout": max(1, int(connect_timeout)),
                   "options": f"-c lock_timeout={self.busy_timeout_ms}", "application_name": "chat-workbench"}
        try:
            with psycopg.connect(url, **options) as conn:
                pg_migrations.migrate(conn)
        except psycopg.Error as exc:
            typed = _translate(exc, self.where) or DatabaseUnavailable(self.where, "cannot_open", str(exc))
            raise typed from exc
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs=options, open=True,
                                    timeout=self.busy_timeout_ms / 1000, name="chat-store")

    def describe(self) -> str:
        return self.where

    # -- connections

    @contextmanager
    def db(self) -> Iterator[PgConnection]:
        held = getattr(self._local, "db", None)
        if held is not None:
            yield held
            return
        if self._closed or self._pool is None:
            raise StoreError("The chat database has been closed.")
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            raise self._no_connection(exc) from exc
        except psycopg.Error as exc:
            raise_typed(exc, _translate(exc, self.where))
        db = PgConnection(conn)
        self._local.db = db
        try:
            yield db
        except psycopg.Error as exc:
            raise_typed(exc, _translate(exc, self.where))
        finally:
            self._local.db = None
            try:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
            except psycopg.Error:
                pass
            self._pool.putconn(conn)  # the pool drops a connection that is broken

    def _no_connection(self, exc: PoolTimeout) -> StoreError:
        """Why the pool had no connection to give within the busy timeout: every one in use (busy), or the
        server cannot be reached (the pool could not connect), which a direct attempt tells apart."""
        try:
            psycopg.connect(self.url, connect_timeout=2, application_name="chat-workbench").close()
        except psycopg.Error as failed:
            return _translate(failed, self.where) or DatabaseUnavailable(self.where, "unreachable", str(failed))
        return DatabaseBusy(str(exc))

    @contextmanager
    def _write(self) -> Iterator[PgConnection]:
        with self.db() as db, db.conn.transaction():  # BEGIN, or a savepoint inside a transaction
            yield db

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._pool.close()

    # -- locks and SQL that differ

    def _lock_conversation(self, db: PgConnection, conversation_id: str) -> None:
        db.execute("SELECT 1 FROM conversations WHERE id = ? FOR UPDATE", [conversation_id])

    def _lock_user(self, db: PgConnection, user: str) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", [USER_LOCKS, user])

    def _json_text(self, column: str, key: str) -> str:
        return f"(({column})::jsonb ->> '{key}')"

    def _json_number(self, column: str, key: str) -> str:
        return f"(({column})::jsonb -> '{key}')"

    def _contains(self, column: str) -> str:
        return f"strpos({column}, ?) > 0"

    def _insert_blob(self, db: PgConnection, sha256: str, data: bytes, stamp: str) -> None:
        # bytea; a blob a purge is deleting right now is waited for, then stored again
        db.execute("INSERT INTO blobs (sha256, data, size, created_at) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (sha256) DO NOTHING", [sha256, data, len(data), stamp])

    # -- search

    @contextmanager
    def search_session(self, time_limit: float = SEARCH_TIME_LIMIT) -> Iterator[_TsSession]:
        if time_limit <= 0:  # the time is up before the first query
            raise SearchTooSlow(time_limit)
        with self.db() as db:
            try:
                with db.conn.transaction():
                    db.execute(f"SET LOCAL statement_timeout = {max(1, round(time_limit * 1000))}")
                    # each window's query is planned for its own ids and words (a generic plan of a
                    # prepared statement would not know whether a word is rare)
                    db.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                    yield _TsSession(db, self)
            except errors.QueryCanceled:
                raise SearchTooSlow(time_limit) from None

    def snippets(self, expr: str, message_ids: list[int]) -> dict[int, str]:
        if not message_ids:
            return {}
        with self.db() as db:
            return dict(db.execute(
                f"SELECT id, ts_headline('{TS_CONFIG}', content, ?::tsquery, ?) FROM messages WHERE id = ANY(?)",
                [expr, HEADLINE, list(message_ids)]).fetchall())
