"""The PostgreSQL schema: the same migrations as sqlite_migrations.py (same names, same order, same resulting
tables and columns), each in PostgreSQL's terms. A new migration is added to both lists; a test checks that
the names agree.

Differences from the SQLite schema, all invisible to the code above the store:
- ``rowid``: SQLite's implicit row number (the order rows were created in) is an identity column of the same
  name on ``conversations`` and ``compare_runs``; ``messages.id`` is an identity column.
- Full text: ``messages.search_vector``, a stored generated ``tsvector`` of ``content`` with a GIN index,
  in the ``chat_search`` configuration: English stemming (Snowball, as Porter on SQLite) and no stop words,
  so "a", "of" or "the" can be searched as on SQLite.
- Index hints SQLite needs are plain (partial, covering) indexes here.

:func:`migrate` takes a transaction-level advisory lock, so replicas starting together migrate once; DDL is
transactional, so a migration and its ``_migrations`` row commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat.store.migration_list import registering, still_to_apply
from chat.timestamps import now

MIGRATIONS_TABLE = "_migrations"
MIGRATE_LOCK = 7_263_541  # pg_advisory_xact_lock key held while migrating

PgMigration = Callable[[Any], None]  # takes a psycopg connection
MIGRATIONS: list[PgMigration] = []
migration = registering(MIGRATIONS)


def applied(conn: Any) -> list[str]:
    """Names of the applied migrations, oldest first. Reads only."""
    if conn.execute("SELECT to_regclass(%s)", [MIGRATIONS_TABLE]).fetchone()[0] is None:
        return []
    return [row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid")]


def pending(conn: Any, migrations: list[PgMigration] | None = None) -> list[PgMigration]:
    """The migrations still to apply (see :func:`chat.store.migration_list.still_to_apply`)."""
    return still_to_apply(applied(conn), MIGRATIONS if migrations is None else migrations)


def migrate(conn: Any, migrations: list[PgMigration] | None = None) -> list[str]:
    """Apply the missing migrations in order on ``conn`` (an autocommit psycopg connection); return the names
    applied. Safe when several processes or replicas start at once."""
    if not pending(conn, migrations):  # the usual start-up: a read, no lock
        return []
    done: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATE_LOCK])
        conn.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (rowid bigint GENERATED ALWAYS AS IDENTITY, "
                     "name text PRIMARY KEY, applied_at text NOT NULL)")
        for step in pending(conn, migrations):
            step(conn)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (%s, %s)", [step.__name__, now()])
            done.append(step.__name__)
    return done


# ---------------------------------------------------------------- the migrations

_TOTALS = ("message_count", "reply_count", "input_tokens", "output_tokens", "cache_read_tokens",
           "cache_write_tokens", "unknown_cost_count", "stopped_count", "error_count")


@migration
def m001_initial(conn: Any) -> None:
    conn.execute("CREATE TEXT SEARCH DICTIONARY chat_stem (TEMPLATE = snowball, Language = english)")
    conn.execute("CREATE TEXT SEARCH CONFIGURATION chat_search (COPY = english)")
    conn.execute("ALTER TEXT SEARCH CONFIGURATION chat_search ALTER MAPPING FOR asciiword, asciihword, "
                 "hword_asciipart, word, hword, hword_part WITH chat_stem")
    conn.execute("""
        CREATE TABLE compare_runs (
            rowid bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            id text PRIMARY KEY,
            "user" text NOT NULL DEFAULT '',
            prompt text NOT NULL,
            settings text NOT NULL DEFAULT '{}',
            vote text,
            blind integer NOT NULL DEFAULT 0,
            created_at text NOT NULL
        )""")
    totals = ",\n".join(f"{name} integer NOT NULL DEFAULT 0" for name in _TOTALS)
    conn.execute(f"""
        CREATE TABLE conversations (
            rowid bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
            id text PRIMARY KEY,
            "user" text NOT NULL DEFAULT '',
            title text NOT NULL DEFAULT '',
            source text NOT NULL DEFAULT 'chat',
            compare_run_id text REFERENCES compare_runs(id),
            created_at text NOT NULL,
            updated_at text NOT NULL,
            deleted_at text,
            settings text NOT NULL DEFAULT '{{}}',
            cost double precision NOT NULL DEFAULT 0,
            models text NOT NULL DEFAULT '[]',
            {totals}
        )""")
    conn.execute('CREATE INDEX idx_conversations_user_updated_at ON conversations ("user", updated_at)')
    conn.execute("CREATE INDEX idx_conversations_updated_at ON conversations (updated_at)")
    conn.execute("CREATE INDEX idx_conversations_compare_run_id ON conversations (compare_run_id)")
    conn.execute("""
        CREATE TABLE messages (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            conversation_id text NOT NULL REFERENCES conversations(id),
            position integer NOT NULL,
            role text NOT NULL,
            content text NOT NULL DEFAULT '',
            status text NOT NULL DEFAULT 'complete',
            error text,
            provider text,
            model text,
            settings text,
            input_tokens integer,
            output_tokens integer,
            cache_read_tokens integer,
            cache_write_tokens integer,
            input_exact integer NOT NULL DEFAULT 0,
            output_exact integer NOT NULL DEFAULT 0,
            cost double precision,
            ttft double precision,
            duration double precision,
            finish_reason text,
            superseded integer NOT NULL DEFAULT 0,
            created_at text NOT NULL,
            updated_at text NOT NULL,
            search_vector tsvector GENERATED ALWAYS AS (to_tsvector('chat_search'::regconfig, content)) STORED
        )""")
    conn.execute("CREATE UNIQUE INDEX idx_messages_conversation_id_position ON messages (conversation_id, position)")
    conn.execute("CREATE INDEX idx_messages_streaming ON messages (status) WHERE status = 'streaming'")
    conn.execute("CREATE INDEX idx_messages_search ON messages USING gin (search_vector)")


@migration
def m002_history_indexes(conn: Any) -> None:
    """The History page's indexes (see the SQLite migration of the same name): live conversations newest
    first, for everyone and per user; their kept totals for the cards; reply figures for the analytics."""
    conn.execute("CREATE INDEX idx_conversations_deleted_at ON conversations (deleted_at) "
                 "WHERE deleted_at IS NOT NULL")
    conn.execute("CREATE INDEX idx_conversations_live_updated_at ON conversations (updated_at DESC, rowid DESC) "
                 "WHERE deleted_at IS NULL")
    conn.execute('CREATE INDEX idx_conversations_live_user_updated_at ON conversations ("user", updated_at DESC, '
                 "rowid DESC) WHERE deleted_at IS NULL")
    conn.execute('CREATE INDEX idx_conversations_live_totals ON conversations ("user", updated_at) '
                 "INCLUDE (source, models, stopped_count, error_count, message_count, reply_count, input_tokens, "
                 "output_tokens, cache_read_tokens, cache_write_tokens, cost, unknown_cost_count) "
                 "WHERE deleted_at IS NULL")
    conn.execute("CREATE INDEX idx_messages_reply_figures ON messages (conversation_id, created_at) "
                 "INCLUDE (provider, model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
                 "cost, ttft, duration) WHERE role = 'assistant' AND status != 'streaming'")


@migration
def m003_reply_endings(conn: Any) -> None:
    conn.execute("ALTER TABLE messages ADD COLUMN tool_calls text")
    conn.execute("ALTER TABLE messages ADD COLUMN cost_source text")


@migration
def m004_reservations(conn: Any) -> None:
    conn.execute("ALTER TABLE messages ADD COLUMN reserved_cost double precision")


@migration
def m005_reasoning(conn: Any) -> None:
    """A reply's reasoning, kept apart from its text (see the SQLite migration of the same name)."""
    conn.execute("ALTER TABLE messages ADD COLUMN reasoning text")
    conn.execute("ALTER TABLE messages ADD COLUMN reasoning_tokens integer")
    conn.execute("ALTER TABLE messages ADD COLUMN reasoning_ttft double precision")
    conn.execute("ALTER TABLE messages ADD COLUMN reasoning_hidden integer")


@migration
def m006_cache_saved(conn: Any) -> None:
    """What the prompt cache saved on a reply, in USD (see the SQLite migration of the same name)."""
    conn.execute("ALTER TABLE messages ADD COLUMN cache_saved double precision")


@migration
def m007_attachments(conn: Any) -> None:
    """Files attached to messages (see the SQLite migration of the same name); the bytes are ``bytea``.
    ``attachments.sha256`` references ``blobs``: a purge on one replica cannot remove a blob another replica
    is attaching at that moment (one of the two waits, then fails rather than leave a dangling file)."""
    conn.execute("CREATE TABLE blobs (sha256 text PRIMARY KEY, data bytea NOT NULL, size bigint NOT NULL, "
                 "created_at text NOT NULL)")
    conn.execute("CREATE TABLE attachments (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                 "message_id bigint NOT NULL REFERENCES messages(id), position integer NOT NULL, "
                 "sha256 text NOT NULL REFERENCES blobs(sha256), name text NOT NULL, media_type text NOT NULL, "
                 "size bigint NOT NULL, width integer, height integer, pages integer)")
    conn.execute("CREATE INDEX idx_attachments_message ON attachments (message_id, position)")
    conn.execute("CREATE INDEX idx_attachments_sha256 ON attachments (sha256)")


@migration
def m008_tool_steps(conn: Any) -> None:
    """A reply's tool steps as JSON text (see the SQLite migration of the same name)."""
    conn.execute("ALTER TABLE messages ADD COLUMN tool_steps text")


@migration
def m009_message_owner(conn: Any) -> None:
    """Each message carries its conversation's owner (``owner``) and deletion state (``conversation_deleted``,
    1 while the conversation is soft-deleted), so a search for one user's live conversations filters the
    messages it finds without reading their conversations, and walks one user's messages newest first
    (``idx_messages_owner_id``). Triggers keep the copies: a message takes them from its conversation when
    inserted, and a conversation's change of owner or deletion is copied to its messages (under the row lock
    the change already holds). The store's SQL never writes them; SQLite has no copy (see its migration of
    the same name).

    Filling the copies rewrites every message (PostgreSQL recomputes the stored ``search_vector`` on each
    update): the full-text index is dropped for the rewrite and built again after it, which is faster than
    updating it row by row."""
    conn.execute("ALTER TABLE messages ADD COLUMN owner text NOT NULL DEFAULT '', "
                 "ADD COLUMN conversation_deleted integer NOT NULL DEFAULT 0")
    conn.execute("DROP INDEX idx_messages_search")
    conn.execute("UPDATE messages m SET owner = c.\"user\", conversation_deleted = (c.deleted_at IS NOT NULL)::int "
                 "FROM conversations c WHERE c.id = m.conversation_id "
                 "AND (c.\"user\" <> '' OR c.deleted_at IS NOT NULL)")
    conn.execute("CREATE INDEX idx_messages_search ON messages USING gin (search_vector)")
    conn.execute("CREATE INDEX idx_messages_owner_id ON messages (owner, id)")
    conn.execute("""
        CREATE FUNCTION chat_message_owner() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            owner_ text;
            deleted_ integer;
        BEGIN
            SELECT c."user", (c.deleted_at IS NOT NULL)::int INTO owner_, deleted_
            FROM conversations c WHERE c.id = NEW.conversation_id;
            IF FOUND THEN  -- otherwise the foreign key refuses the row
                NEW.owner := owner_;
                NEW.conversation_deleted := deleted_;
            END IF;
            RETURN NEW;
        END $$""")
    conn.execute("CREATE TRIGGER messages_owner BEFORE INSERT OR UPDATE OF conversation_id ON messages "
                 "FOR EACH ROW EXECUTE FUNCTION chat_message_owner()")
    conn.execute("""
        CREATE FUNCTION chat_conversation_owner() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE messages SET owner = NEW."user", conversation_deleted = (NEW.deleted_at IS NOT NULL)::int
            WHERE conversation_id = NEW.id;
            RETURN NULL;
        END $$""")
    conn.execute("CREATE TRIGGER conversations_owner AFTER UPDATE OF \"user\", deleted_at ON conversations "
                 "FOR EACH ROW WHEN (OLD.\"user\" IS DISTINCT FROM NEW.\"user\" "
                 "OR (OLD.deleted_at IS NULL) IS DISTINCT FROM (NEW.deleted_at IS NULL)) "
                 "EXECUTE FUNCTION chat_conversation_owner()")
