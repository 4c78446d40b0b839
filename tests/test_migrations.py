import sqlite3
from contextlib import closing

import pytest
import sqlite_utils

from chat.store import SchemaTooNew, StoreError, open_store
from chat.store.sqlite_migrations import MIGRATIONS, applied, migrate


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "chat.db"


@pytest.fixture
def fresh_db(db_path):
    db = sqlite_utils.Database(db_path)
    yield db
    db.close()


def schema(db):
    return sorted(db.execute("SELECT type, name, sql FROM sqlite_master").fetchall(), key=str)


def test_migrating_a_blank_database_applies_every_migration_in_order(fresh_db):
    assert migrate(fresh_db) == [m.__name__ for m in MIGRATIONS]
    assert applied(fresh_db) == [m.__name__ for m in MIGRATIONS]
    rows = list(fresh_db["_migrations"].rows)
    assert all(row["applied_at"].endswith("Z") for row in rows)


def test_migrating_a_blank_database_twice_is_a_noop(fresh_db):
    migrate(fresh_db)
    before = schema(fresh_db), list(fresh_db["_migrations"].rows)
    assert migrate(fresh_db) == []
    assert (schema(fresh_db), list(fresh_db["_migrations"].rows)) == before


def test_the_first_migration_creates_the_tables_indexes_and_search_index(fresh_db):
    migrate(fresh_db)
    assert {"conversations", "messages", "compare_runs", "messages_fts", "_migrations"} <= set(
        fresh_db.table_names())
    indexes = {tuple(i.columns): i.unique for i in fresh_db["messages"].indexes}
    assert indexes[("conversation_id", "position")] == 1
    conversation_indexes = {tuple(i.columns) for i in fresh_db["conversations"].indexes}
    assert {("user", "updated_at"), ("updated_at",), ("deleted_at",)} <= conversation_indexes
    assert fresh_db["messages"].detect_fts() == "messages_fts"
    assert "porter" in fresh_db["messages_fts"].schema
    assert {t.name for t in fresh_db["messages"].triggers} == {"messages_ai", "messages_ad", "messages_au"}


def test_a_database_with_a_migration_this_code_does_not_know_is_refused_and_left_untouched(fresh_db,
                                                                                            db_path):
    migrate(fresh_db)
    fresh_db["_migrations"].insert({"name": "m999_from_the_future", "applied_at": "2099-01-01T00:00:00.000Z"})
    before = schema(fresh_db)
    with pytest.raises(SchemaTooNew) as caught:
        migrate(fresh_db)
    assert caught.value.unknown == ["m999_from_the_future"]
    assert isinstance(caught.value, StoreError)
    assert "newer version" in str(caught.value)
    assert schema(fresh_db) == before
    with pytest.raises(SchemaTooNew):
        open_store(db_path)


def test_only_the_missing_migrations_are_applied(fresh_db):
    calls = []

    def m001_first(db):
        calls.append("m001_first")
        db["one"].create({"id": int}, pk="id")

    def m002_second(db):
        calls.append("m002_second")
        db["two"].create({"id": int}, pk="id")

    assert migrate(fresh_db, [m001_first]) == ["m001_first"]
    assert migrate(fresh_db, [m001_first, m002_second]) == ["m002_second"]
    assert calls == ["m001_first", "m002_second"]
    assert applied(fresh_db) == ["m001_first", "m002_second"]


def test_a_failing_migration_is_rolled_back_and_stays_pending(fresh_db):
    def m001_breaks(db):
        db["half"].create({"id": int}, pk="id")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        migrate(fresh_db, [m001_breaks])
    assert "half" not in fresh_db.table_names()
    assert applied(fresh_db) == []
    assert not fresh_db.conn.in_transaction


def test_the_migrations_table_can_be_read_by_plain_sqlite(fresh_db, db_path):
    migrate(fresh_db)
    with closing(sqlite3.connect(db_path)) as raw:
        names = [row[0] for row in raw.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [m.__name__ for m in MIGRATIONS]


def test_postgresql_has_the_same_migrations_in_the_same_order():
    from chat.store import pg_migrations

    assert [m.__name__ for m in pg_migrations.MIGRATIONS] == [m.__name__ for m in MIGRATIONS]


def test_postgresql_refuses_a_schema_written_by_a_newer_version_and_migrating_twice_is_a_noop(pg_server):
    import psycopg

    from chat.store import pg_migrations

    url = pg_server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        assert pg_migrations.migrate(conn) == [m.__name__ for m in MIGRATIONS]
        assert pg_migrations.migrate(conn) == []
        conn.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_later', 'x')")
    with pytest.raises(SchemaTooNew):
        open_store(url)


def test_postgresql_gives_existing_messages_their_conversations_owner_and_deletion_state(pg_server):
    """m009 fills the copies a search filters on for messages written before it; triggers keep them after."""
    import psycopg

    from chat.store import pg_migrations

    url = pg_server.new_database()
    before = pg_migrations.MIGRATIONS[:pg_migrations.MIGRATIONS.index(pg_migrations.m009_message_owner)]
    with psycopg.connect(url, autocommit=True) as conn:
        pg_migrations.migrate(conn, before)
        for cid, user, deleted in (("c1", "ann", None), ("c2", "bob", "2025-01-01T00:00:00.000000Z")):
            conn.execute('INSERT INTO conversations (id, "user", created_at, updated_at, deleted_at) '
                         "VALUES (%s, %s, 'x', 'x', %s)", [cid, user, deleted])
            conn.execute("INSERT INTO messages (conversation_id, position, role, content, created_at, updated_at) "
                         "VALUES (%s, 1, 'user', 'otters', 'x', 'x')", [cid])
        pg_migrations.migrate(conn)
        rows = conn.execute("SELECT conversation_id, owner, conversation_deleted FROM messages ORDER BY id").fetchall()
        assert rows == [("c1", "ann", 0), ("c2", "bob", 1)]
    store = open_store(url)
    try:
        store.restore("c2")
        store.add_user_message("c2", "more otters")
    finally:
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT conversation_id, owner, conversation_deleted FROM messages ORDER BY id").fetchall()
    assert rows == [("c1", "ann", 0), ("c2", "bob", 0), ("c2", "bob", 0)]
