"""The only place with SQL, and its public surface: every name callers use is importable from here.

``open_store(path_or_url)`` opens the engine the target names; a Store (base.py) is made of one part per job
(conversations.py, messages.py, attachments.py, replies.py, compare_runs.py, reporting.py) over what each
engine provides (engine.py), with the kept totals (totals.py), typed rows (rows.py), errors (errors.py),
History's filters (filters.py) and the SQL steps they share (sql.py). The engines: SQLite (sqlite.py,
sqlite_migrations.py) and PostgreSQL (postgres.py, pg_migrations.py); what a search box's text means
(search.py)."""

from chat.config.database import is_postgres_url
from chat.store.base import Store
from chat.store.conversations import TITLE_LENGTH, title_from
from chat.store.errors import DatabaseBusy, DatabaseUnavailable, NotFound, SchemaTooNew, StoreError
from chat.store.filters import STATUSES, Filters
from chat.store.replies import STALE_AFTER, Budget, StartedReply, is_dead
from chat.store.rows import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    SOURCES,
    CompareReplyRow,
    CompareRunRow,
    ConversationRow,
    MessageRow,
    SummaryRow,
    UserUsageRow,
)
from chat.store.search import (
    SEARCH_MAX_CHARS,
    SEARCH_MAX_PREFIXES,
    SEARCH_MAX_TERMS,
    SEARCH_MIN_PREFIX,
    SEARCH_TIME_LIMIT,
    SearchError,
    SearchIndexDamaged,
    SearchTooLarge,
    SearchTooSlow,
    check_search_size,
)
from chat.timestamps import now


def open_store(target: object, **options: object) -> Store:
    """The store ``target`` names: a ``postgresql://`` URL opens PostgreSQL (psycopg is imported only then),
    anything else is a SQLite file path. ``options`` are the engine's (``busy_timeout_ms`` and ``pool_size``
    for both). One store is meant to live in ``st.cache_resource`` and be shared by every session."""
    if is_postgres_url(target):
        from chat.store.postgres import PostgresStore

        return PostgresStore(target, **options)
    from chat.store.sqlite import SqliteStore

    return SqliteStore(target, **options)

__all__ = [
    "open_store",
    "CompareReplyRow",
    "CompareRunRow",
    "ConversationRow",
    "MessageRow",
    "FAILED_STATUSES",
    "SummaryRow",
    "UserUsageRow",
    "FINAL_STATUSES",
    "SEARCH_MAX_CHARS",
    "SEARCH_MAX_PREFIXES",
    "SEARCH_MAX_TERMS",
    "SEARCH_MIN_PREFIX",
    "SEARCH_TIME_LIMIT",
    "SOURCES",
    "STALE_AFTER",
    "STATUSES",
    "TITLE_LENGTH",
    "Budget",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "Filters",
    "NotFound",
    "SchemaTooNew",
    "SearchError",
    "SearchIndexDamaged",
    "SearchTooLarge",
    "SearchTooSlow",
    "StartedReply",
    "Store",
    "StoreError",
    "check_search_size",
    "is_dead",
    "is_postgres_url",
    "now",
    "title_from",
]
