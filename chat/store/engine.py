"""What each engine provides to the parts of the Store: a connection per thread, short write transactions,
the locks a write takes, and the few pieces of SQL that differ between SQLite and PostgreSQL.

Every write is one short transaction. On SQLite a writer holds the whole file (``BEGIN IMMEDIATE``); on
PostgreSQL each write locks the rows it depends on (the conversation ``FOR UPDATE``, a per-user advisory lock
for a budget), so "next position = max + 1", the kept totals and the spend check stay exact across threads,
processes and replicas. The engines (:mod:`chat.store.sqlite`, :mod:`chat.store.postgres`) override what
is here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from chat.store.errors import NotFound
from chat.store.search import SEARCH_TIME_LIMIT
from chat.store.sql import one

if TYPE_CHECKING:
    from chat.store.filters import Filters

BUSY_TIMEOUT_MS = 15000  # how long a write waits for another writer before DatabaseBusy; read when a store opens



class Engine:
    """What the parts of the Store build on; each engine overrides it."""

    engine = ""  # "sqlite" or "postgresql"

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

    # -- locks inside a write

    def _lock_conversation(self, db: Any, conversation_id: str) -> None:
        """Inside a write: hold the conversation against other writers until the transaction ends."""

    def _lock_user(self, db: Any, user: str) -> None:
        """Inside a write: hold the user's spending against other budget checks until it ends."""

    _for_update = ""  # appended to a read inside a write that the write depends on

    def _require(self, db: Any, conversation_id: str, *, lock: bool = False) -> dict:
        """Inside a write: the conversation's row (held against other writers with ``lock``); NotFound
        when there is none."""
        row = one(db, "SELECT * FROM conversations WHERE id = ?" + (self._for_update if lock else ""),
                  [conversation_id])
        if row is None:
            raise NotFound("conversation", conversation_id)
        return row

    # -- SQL that differs

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

    def _replies_join(self) -> str:
        """``conversations c`` joined to their messages ``m``, for reading replies over filtered
        conversations."""
        return "conversations c JOIN messages m ON m.conversation_id = c.id"

    def _insert_blob(self, db: Any, sha256: str, data: bytes, stamp: str) -> None:
        """Inside a write: store a file's bytes under their sha256 unless a blob of that hash is there."""
        raise NotImplementedError

    # -- full-text search (each engine's own; see chat.store.search for the syntax)

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
