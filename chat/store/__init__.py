"""The only place with SQL, and its public surface: every name callers use is importable from here.

``Store(path_or_url)`` (base.py) opens the engine the target names; it is made of one part per job
(conversations.py, messages.py, attachments.py, replies.py, compare_runs.py, reporting.py) over what each
engine provides (engine.py), with the kept totals (totals.py), typed rows (rows.py), errors (errors.py),
History's filters (filters.py) and the SQL steps they share (sql.py). The engines: SQLite (sqlite.py,
sqlite_migrations.py) and PostgreSQL (postgres.py, pg_migrations.py); what a search box's text means
(search.py)."""

from chat.store.base import Store, is_postgres_url
from chat.store.conversations import TITLE_LENGTH, title_from
from chat.store.errors import DatabaseBusy, DatabaseUnavailable, NotFound, SchemaTooNew, StoreError
from chat.store.filters import STATUSES, Filters
from chat.store.replies import Budget, StartedReply
from chat.store.rows import FINAL_STATUSES, SOURCES, ConversationRow, MessageRow
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
from chat.store.sql import now

__all__ = [
    "ConversationRow",
    "MessageRow",
    "FINAL_STATUSES",
    "SEARCH_MAX_CHARS",
    "SEARCH_MAX_PREFIXES",
    "SEARCH_MAX_TERMS",
    "SEARCH_MIN_PREFIX",
    "SEARCH_TIME_LIMIT",
    "SOURCES",
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
    "is_postgres_url",
    "now",
    "title_from",
]
