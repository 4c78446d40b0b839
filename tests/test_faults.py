"""Database faults injected on a real SQLite file: the Store fails with a typed error, keeps no broken
connection, and works again once the fault clears; the chat page says so in one sentence and keeps the
user's message until it is stored, once.

How each fault is made (these tests run as root, where chmod does not stop writes): a read-only file with
``chattr +i`` as root (``chmod 0444`` otherwise), a full disk with a small tmpfs mounted as root (with
``PRAGMA max_page_count`` on every connection otherwise), a lock held by another connection's ``BEGIN
EXCLUSIVE`` past a short busy timeout, a malformed page written over the messages table, and the folder
removed."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import contextmanager

import pytest
from streamlit.testing.v1 import AppTest

import chat.store
from chat.store import DatabaseBusy, DatabaseUnavailable, Store, open_store
from chat.store.sqlite import SqliteStore

ROOT = os.geteuid() == 0


@contextmanager
def held_lock(path):
    """Another connection holding the write lock (BEGIN EXCLUSIVE) until the block ends."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextmanager
def read_only(path):
    files = [str(path), f"{path}-wal"]  # not -shm: it is memory-mapped, and an immutable one kills the process
    if ROOT:
        subprocess.run(["chattr", "+i", *files], check=True)
    else:
        for f in files:
            os.chmod(f, 0o444)
    try:
        yield
    finally:
        if ROOT:
            subprocess.run(["chattr", "-i", *files], check=True)
        else:
            for f in files:
                os.chmod(f, 0o644)


def pooled(store: Store) -> int:
    return len(store._idle)


def test_a_lock_held_past_the_busy_timeout_is_database_busy_and_the_next_write_works(tmp_path):
    store = open_store(tmp_path / "chat.db", busy_timeout_ms=100)
    cid = store.create_conversation(user="ann")
    with held_lock(tmp_path / "chat.db"):
        with pytest.raises(DatabaseBusy):
            store.add_user_message(cid, "while locked")
        assert store.get_conversation(cid) is not None  # reads still work under WAL
    store.add_user_message(cid, "after the lock")
    assert [m["content"] for m in store.messages(cid)] == ["after the lock"]
    store.close()


def test_a_read_only_file_is_database_unavailable_and_no_broken_connection_stays_pooled(tmp_path):
    store = open_store(tmp_path / "chat.db")
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "before")
    assert pooled(store) == 1
    with read_only(tmp_path / "chat.db"):
        with pytest.raises(DatabaseUnavailable) as caught:
            store.add_user_message(cid, "while read-only")
        assert caught.value.reason in ("read_only", "io")
        assert pooled(store) == 0  # the connection that failed was closed, not pooled
        with pytest.raises(DatabaseUnavailable) as again:  # a fresh connection says read-only
            store.add_user_message(cid, "while read-only")
        assert again.value.reason == "read_only"
    store.add_user_message(cid, "after")
    assert [m["content"] for m in store.messages(cid)] == ["before", "after"]
    store.close()


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a 512 KiB tmpfs (root); None where mounting is not allowed."""
    folder = tmp_path / "small"
    folder.mkdir()
    if not ROOT or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)]).returncode:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_is_database_unavailable_and_writing_works_again_once_there_is_room(small_disk, tmp_path,
                                                                                         monkeypatch):
    folder = small_disk or tmp_path
    store = open_store(folder / "chat.db")
    if small_disk is None:  # no tmpfs to fill: cap the file's pages on every connection instead
        connect = SqliteStore._connect

        def capped(self):
            db = connect(self)
            db.conn.execute(f"PRAGMA max_page_count = {db.conn.execute('PRAGMA page_count').fetchone()[0] + 2}")
            return db

        monkeypatch.setattr(SqliteStore, "_connect", capped)
        store.close()
        store = open_store(folder / "chat.db")
    cid = store.create_conversation(user="ann")
    filler = folder / "filler"
    with pytest.raises(DatabaseUnavailable) as caught:
        if small_disk is not None:
            # fill the disk, leaving no room; unbuffered, so no half-written chunk is left to fail again on close
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
        for _ in range(200):
            store.add_user_message(cid, "x" * 8000)
    assert caught.value.reason in ("full", "io")
    saved = len(store.messages(cid))
    filler.unlink(missing_ok=True)
    if small_disk is None:
        monkeypatch.undo()
        store.close()
        store = open_store(folder / "chat.db")
    store.add_user_message(cid, "room again")
    assert len(store.messages(cid)) == saved + 1
    store.close()


def test_a_malformed_page_is_database_unavailable_corrupt(tmp_path):
    path = tmp_path / "chat.db"
    store = open_store(path)
    cid = store.create_conversation(user="ann")
    for i in range(50):
        store.add_user_message(cid, f"message {i} " + "words " * 200)
    store.close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = raw.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone()[0]
    page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    raw.close()
    with open(path, "r+b") as f:  # the messages table's root page overwritten with garbage
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)
    store = open_store(path)
    with pytest.raises(DatabaseUnavailable) as caught:
        store.messages(cid)
    assert caught.value.reason == "corrupt"
    assert pooled(store) == 0
    store.close()


def test_a_deleted_folder_is_database_unavailable_never_a_new_empty_database(tmp_path):
    folder = tmp_path / "data"
    store = open_store(folder / "chat.db")
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "kept in the backup")
    backup = tmp_path / "backup"
    shutil.copytree(folder, backup)
    shutil.rmtree(folder)
    with pytest.raises(DatabaseUnavailable) as caught:  # the pooled connection's file is gone: not written to
        store.add_user_message(cid, "lost?")
    assert caught.value.reason == "cannot_open"
    folder.mkdir()
    with pytest.raises(DatabaseUnavailable):  # an empty folder: still not a new database
        store.get_conversation(cid)
    assert not (folder / "chat.db").exists()
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)  # restored: the store recovers by itself
    store.add_user_message(cid, "after the restore")
    assert [m["content"] for m in store.messages(cid)] == ["kept in the backup", "after the restore"]
    store.close()


# ---------------------------------------------------------------- the pages


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    return at


def test_a_message_sent_while_the_database_is_locked_is_kept_and_stored_once_on_send_again(app_env, fake_provider,
                                                                                            monkeypatch):
    monkeypatch.setattr(chat.store.engine, "BUSY_TIMEOUT_MS", 200)
    at = AppTest.from_file("../app.py", default_timeout=30).run()
    with held_lock(app_env):
        send(at, "please keep me")
    assert [e.value for e in at.error] == ["The chat database is busy with another writer; try again in a moment."]
    assert any(m.markdown[0].value == "please keep me" for m in at.chat_message)  # the words are on screen
    assert at.chat_input and not fake_provider.events("request")
    assert at.button(key="send_again").label == "Send again"

    at.button(key="send_again").click().run()
    assert not at.exception and not at.error
    assert at.chat_message[-1].markdown[0].value.startswith("Echo: please keep me")
    store = open_store(app_env)
    [conversation] = store.chat_list("local")
    assert [(m["role"], m["content"][:14]) for m in store.messages(conversation["id"])] == [
        ("user", "please keep me"), ("assistant", "Echo: please k")]
    at.run()
    assert not at.error and "send_again" not in [b.key for b in at.button]  # nothing left unsent


def test_a_store_that_failed_to_open_is_opened_on_the_next_run(bare_env, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database's folder should be")
    monkeypatch.setenv("CHAT_DB", str(blocker / "chat.db"))
    at = AppTest.from_file("../app.py", default_timeout=30).run()
    assert len(at.error) == 1 and "cannot be opened" in at.error[0].value and not at.exception
    blocker.unlink()
    at.run()  # st.cache_resource did not keep the failure
    assert not at.error and not at.exception
    assert (blocker / "chat.db").exists()


def test_history_search_on_a_damaged_index_says_so_and_the_rest_of_the_page_works(app_env, fake_provider):
    store = open_store(app_env)
    cid = store.create_conversation(user="local")
    store.add_user_message(cid, "find this later")
    with store.db() as db:  # the search index's term pages overwritten with garbage
        db.execute("UPDATE messages_fts_data SET block = randomblob(length(block)) WHERE id > 10")
    store.close()
    at = AppTest.from_file("../app.py", default_timeout=30)
    at.switch_page("app_pages/history.py")
    at.query_params["q"] = "find"
    at.run()
    assert not at.exception
    assert not at.error and any("search index is damaged" in w.value for w in at.warning)
    assert at.dataframe or at.tabs  # the rest of the page is drawn


def test_regenerate_while_the_database_is_locked_says_so_in_one_sentence_and_works_once_it_clears(
        app_env, fake_provider, monkeypatch):
    monkeypatch.setattr(chat.store.engine, "BUSY_TIMEOUT_MS", 200)
    at = send(AppTest.from_file("../app.py", default_timeout=30).run(), "first try")
    with held_lock(app_env):
        next(b for b in at.button if b.label == "Regenerate").click().run()
        assert not at.exception
        assert len(at.error) == 1 and "busy" in at.error[0].value and "Nothing was sent" in at.error[0].value
    assert len(fake_provider.events("request")) == 1
    next(b for b in at.button if b.label == "Regenerate").click().run()
    assert not at.exception and not at.error
    assert len(fake_provider.events("request")) == 2


def test_a_message_the_database_refused_is_saved_by_itself_once_the_fault_clears(app_env, fake_provider,
                                                                                 monkeypatch):
    import time

    monkeypatch.setattr(chat.store.engine, "BUSY_TIMEOUT_MS", 200)
    at = AppTest.from_file("../app.py", default_timeout=30).run()
    with held_lock(app_env):
        send(at, "save me when you can")
        assert at.error
    store = open_store(app_env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not store.chat_list("local"):
        time.sleep(0.2)
    [conversation] = store.chat_list("local")  # saved without another click
    assert [m["content"] for m in store.messages(conversation["id"])] == ["save me when you can"]
    at.button(key="send_again").click().run()  # asks for the reply; the message is not saved twice
    assert [(m["role"], m["content"][:13]) for m in store.messages(conversation["id"])] == [
        ("user", "save me when "), ("assistant", "Echo: save me")]


def test_a_message_sent_while_postgresql_is_down_is_kept_and_stored_once_it_is_back(app_env, fake_provider,
                                                                                    monkeypatch):
    """The database server stops after the app started: the page says in one sentence that the database
    cannot be reached (not that it is busy), keeps the message, and stores it once the server is back."""
    from chat.safe_text import plain_sentence
    from chat.store.postgres import redacted
    from pg_support import PostgresServer

    monkeypatch.setattr(chat.store.engine, "BUSY_TIMEOUT_MS", 500)
    with PostgresServer() as server:
        url = server.new_database()
        monkeypatch.setenv("CHAT_DB", url)
        at = AppTest.from_file("../app.py", default_timeout=30).run()
        assert not at.exception and not at.error
        server.halt()
        send(at, "keep me while the server is down")
        said = plain_sentence(f"The chat database at {redacted(url)} cannot be reached.")  # markdown-escaped
        assert [e.value for e in at.error] == [said]
        assert any(m.markdown[0].value == "keep me while the server is down" for m in at.chat_message)
        assert at.button(key="send_again").label == "Send again" and not fake_provider.events("request")

        server.resume()
        at.button(key="send_again").click().run()
        assert not at.exception and not at.error
        assert at.chat_message[-1].markdown[0].value.startswith("Echo: keep me while")
        store = open_store(url)
        try:
            [conversation] = store.chat_list("local")
            assert [(m["role"], m["content"][:13]) for m in store.messages(conversation["id"])] == [
                ("user", "keep me while"), ("assistant", "Echo: keep me")]
        finally:
            store.close()
