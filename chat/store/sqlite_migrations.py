"""The SQLite schema as an ordered list of migrations (pg_migrations.py has the same names for PostgreSQL).

Each migration is a plain function of a :class:`sqlite_utils.Database`, registered with ``@migration`` and
named by the function. :func:`migrate` applies the missing ones in order, each in its own ``BEGIN
IMMEDIATE`` transaction together with its row in ``_migrations`` (name, applied_at). Never edit or
reorder a migration once it has shipped: add a new one.

Why not sqlite-utils 4.x ``Migrations``: it records into ``_sqlite_migrations``, reads the pending list
before taking the write lock (two processes starting on a blank file both run ``m001``) and does not
notice migrations it does not know. Those three are the requirements here, so this is the small list.
"""

from __future__ import annotations

from collections.abc import Callable

from chat.lean_sqlite_utils import sqlite_utils
from chat.store.migration_list import registering, still_to_apply
from chat.timestamps import now

MIGRATIONS_TABLE = "_migrations"

Migration = Callable[[sqlite_utils.Database], None]
MIGRATIONS: list[Migration] = []
migration = registering(MIGRATIONS)


def applied(db: sqlite_utils.Database) -> list[str]:
    """Names of the applied migrations, oldest first. Reads only."""
    if not db[MIGRATIONS_TABLE].exists():
        return []
    return [row[0] for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid")]


def pending(db: sqlite_utils.Database, migrations: list[Migration] | None = None) -> list[Migration]:
    """The migrations still to apply. Raises :class:`SchemaTooNew` if the database has applied a
    migration this code does not know."""
    return still_to_apply(applied(db), MIGRATIONS if migrations is None else migrations)


def migrate(db: sqlite_utils.Database, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the missing migrations in order; return the names applied (empty when up to date).

    Safe when several threads or processes start at once: each migration runs under ``BEGIN IMMEDIATE``
    and the pending list is read again once the write lock is held.
    """
    if not pending(db, migrations):  # the usual start-up: a read, no write lock
        return []
    db.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT)")
    done: list[str] = []
    while True:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            todo = pending(db, migrations)
            if not todo:
                db.conn.execute("ROLLBACK")
                return done
            todo[0](db)
            db[MIGRATIONS_TABLE].insert({"name": todo[0].__name__, "applied_at": now()})
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        done.append(todo[0].__name__)


# ---------------------------------------------------------------- the migrations


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db["compare_runs"].create(
        {"id": str, "user": str, "prompt": str, "settings": str, "vote": str, "blind": int, "created_at": str},
        pk="id",
        not_null={"user", "prompt", "settings", "blind", "created_at"},
        defaults={"user": "", "settings": "{}", "blind": 0},
    )
    totals = {
        "message_count": int, "reply_count": int,
        "input_tokens": int, "output_tokens": int, "cache_read_tokens": int, "cache_write_tokens": int,
        "cost": float, "unknown_cost_count": int, "models": str, "stopped_count": int, "error_count": int,
    }
    conversations = db["conversations"].create(
        {
            "id": str, "user": str, "title": str, "source": str, "compare_run_id": str,
            "created_at": str, "updated_at": str, "deleted_at": str, "settings": str,
            **totals,
        },
        pk="id",
        foreign_keys=[("compare_run_id", "compare_runs", "id")],
        not_null={"user", "title", "source", "created_at", "updated_at", "settings", *totals},
        defaults={
            "user": "", "title": "", "source": "chat", "settings": "{}", "models": "[]", "cost": 0.0,
            **{name: 0 for name, kind in totals.items() if kind is int},
        },
    )
    conversations.create_index(["user", "updated_at"])
    conversations.create_index(["updated_at"])
    conversations.create_index(["deleted_at"])
    conversations.create_index(["compare_run_id"])

    messages = db["messages"].create(
        {
            "id": int, "conversation_id": str, "position": int, "role": str, "content": str,
            "status": str, "error": str, "provider": str, "model": str, "settings": str,
            "input_tokens": int, "output_tokens": int, "cache_read_tokens": int, "cache_write_tokens": int,
            "input_exact": int, "output_exact": int, "cost": float, "ttft": float, "duration": float,
            "finish_reason": str, "superseded": int, "created_at": str, "updated_at": str,
        },
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
        not_null={"conversation_id", "position", "role", "content", "status", "input_exact",
                  "output_exact", "superseded", "created_at", "updated_at"},
        defaults={"content": "", "status": "complete", "input_exact": 0, "output_exact": 0, "superseded": 0},
    )
    messages.create_index(["conversation_id", "position"], unique=True)
    # mark_interrupted_replies() at start-up looks only at the few rows still streaming
    db.execute("CREATE INDEX idx_messages_streaming ON messages(status) WHERE status = 'streaming'")
    messages.enable_fts(["content"], create_triggers=True, tokenize="porter")


# ---------------------------------------------------------------- history page


@migration
def m002_history_indexes(db: sqlite_utils.Database) -> None:
    """Indexes for the History page.

    - The full index on ``deleted_at`` from m001 made SQLite answer ``deleted_at IS NULL`` from it (NULL
      counts as one value, so it looks selective) and then sort every live conversation to show the newest
      50; it becomes a partial index of the deleted ones, and live conversations get their own index by time.
    - The cards, page counts and per-user figures sum the kept totals of the live conversations: an index
      holding those totals and the filtered columns answers them without reading the conversations' rows.
    - Analytics read every finished reply of the chosen conversations: a covering index of the figures
      they need saves reading each message's text.
    """
    db.execute("DROP INDEX IF EXISTS idx_conversations_deleted_at")
    db.execute("CREATE INDEX idx_conversations_deleted_at ON conversations(deleted_at) WHERE deleted_at IS NOT NULL")
    db.execute("CREATE INDEX idx_conversations_live_updated_at ON conversations(updated_at) "
               "WHERE deleted_at IS NULL")
    db.execute("CREATE INDEX idx_conversations_live_totals ON conversations(user, updated_at, source, models, "
               "stopped_count, error_count, message_count, reply_count, input_tokens, output_tokens, "
               "cache_read_tokens, cache_write_tokens, cost, unknown_cost_count) WHERE deleted_at IS NULL")
    db.execute("CREATE INDEX idx_messages_reply_figures ON messages(conversation_id, created_at, provider, model, "
               "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost, ttft, duration) "
               "WHERE role = 'assistant' AND status != 'streaming'")


# ---------------------------------------------------------------- how a reply ended


@migration
def m003_reply_endings(db: sqlite_utils.Database) -> None:
    """What a reply's figures need besides its status and finish reason: the tools the model asked for
    (JSON list of names) and where its cost came from ("provider" when the server reported it)."""
    db.execute("ALTER TABLE messages ADD COLUMN tool_calls TEXT")
    db.execute("ALTER TABLE messages ADD COLUMN cost_source TEXT")


# ---------------------------------------------------------------- spend limits that hold


@migration
def m004_reservations(db: sqlite_utils.Database) -> None:
    """``reserved_cost``: what a reply still streaming may cost (USD), held against its user's daily limit
    until the reply finishes (or is marked interrupted), when it is cleared and the real cost counts."""
    db["messages"].add_column("reserved_cost", float)


# ---------------------------------------------------------------- reasoning models


@migration
def m005_reasoning(db: sqlite_utils.Database) -> None:
    """A reply's reasoning, kept apart from its text (never sent back to the provider): ``reasoning`` (the
    text the provider streamed: a summary or the raw thinking), ``reasoning_tokens`` (of the output tokens,
    those spent reasoning, when reported or estimated), ``reasoning_ttft`` (seconds to the first reasoning
    token) and ``reasoning_hidden`` (1 when the provider sent reasoning it keeps encrypted)."""
    messages = db["messages"]
    messages.add_column("reasoning", str)
    messages.add_column("reasoning_tokens", int)
    messages.add_column("reasoning_ttft", float)
    messages.add_column("reasoning_hidden", int)


# ---------------------------------------------------------------- what a daily user expects


@migration
def m006_cache_saved(db: sqlite_utils.Database) -> None:
    """``cache_saved``: what reading (and writing) the provider's prompt cache saved on a reply, in USD,
    against the same tokens billed as plain input (negative when a cache write cost more than it saved).
    Priced when the reply finished, with the prices of that day."""
    db["messages"].add_column("cache_saved", float)


# ---------------------------------------------------------------- attachments


@migration
def m007_attachments(db: sqlite_utils.Database) -> None:
    """Files attached to messages. ``blobs`` holds each file's bytes once, keyed by their sha256 (the same
    file attached twice is stored once); ``attachments`` ties a message to its files, in order, with the
    name the user gave, the media type the content showed, the size and, for images, the dimensions (for
    PDFs, the pages). A purge (``Store.purge_blobs``) removes blobs no attachment refers to."""
    db.execute("CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL, size INTEGER NOT NULL, "
               "created_at TEXT NOT NULL)")
    db.execute("CREATE TABLE attachments (id INTEGER PRIMARY KEY, message_id INTEGER NOT NULL "
               "REFERENCES messages(id), position INTEGER NOT NULL, sha256 TEXT NOT NULL, name TEXT NOT NULL, "
               "media_type TEXT NOT NULL, size INTEGER NOT NULL, width INTEGER, height INTEGER, pages INTEGER)")
    db.execute("CREATE INDEX idx_attachments_message ON attachments(message_id, position)")
    db.execute("CREATE INDEX idx_attachments_sha256 ON attachments(sha256)")


# ---------------------------------------------------------------- tools over MCP


@migration
def m008_tool_steps(db: sqlite_utils.Database) -> None:
    """``tool_steps``: for a reply that used tools, JSON of its model calls in order, each with its text, the
    tool calls it asked for (arguments, status, whole result or error, timings) and its own tokens and cost."""
    db["messages"].add_column("tool_steps", str)


# ---------------------------------------------------------------- PostgreSQL for several replicas


@migration
def m009_message_owner(db: sqlite_utils.Database) -> None:
    """Nothing on SQLite. On PostgreSQL each message gets a copy of its conversation's owner and deletion
    state, kept by triggers, so a search filters inside its index scan (see pg_migrations.m009_message_owner);
    FTS5 walks its index newest first and stops after the window, so SQLite needs no copy."""
