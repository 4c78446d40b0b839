"""`python3 dev.py migrate-db chat.db postgresql://...`: a SQLite store copied into PostgreSQL, idempotent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from attachment_files import pdf, png

from chat import attachments
from chat.history.analytics import summary
from chat.history.listing import list_conversations
from chat.history.search import search
from chat.providers.base import Usage
from chat.store import Filters, Store, open_store
from chat.store.copy import copy_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sqlite_store(tmp_path):
    s = open_store(tmp_path / "chat.db")
    yield s
    s.close()


def fill(store: Store) -> dict:
    """A little of everything: chats of two users, a compare run, a stopped, a superseded and a deleted reply,
    attached files (one of them twice, once in the deleted conversation)."""
    made = {}
    chart = attachments.read("chart.png", png())
    files = {"ann": [], "bob": [chart, attachments.read("report.pdf", pdf())]}
    for user, question, answer in [("ann", "How do I vacuum a database?", "Run VACUUM."),
                                   ("bob", "Name a kubernetes tool", "kubectl, helm.")]:
        cid = store.create_conversation(user=user, settings={"provider": "openai", "model": "gpt-4o-mini"})
        store.add_user_message(cid, question, files[user])
        reply = store.start_reply(cid, provider="openai", model="gpt-4o-mini", settings={"temperature": 0.2})
        store.finish_reply(reply, content=answer, status="complete", usage=Usage(12, 5, input_exact=True),
                           cost=0.0012, ttft=0.3, duration=1.1, tool_calls=["search"],
                           tool_steps=[{"text": "Looking it up.", "calls": [
                               {"id": "c1", "server": "docs", "tool": "search", "arguments": {"q": question},
                                "status": "done", "result": answer}]}, {"text": answer, "calls": []}])
        made[user] = cid
    store.add_user_message(made["ann"], "and then?")
    reply = store.start_reply(made["ann"], provider="anthropic", model="claude-haiku-4-5")
    store.finish_reply(reply, content="partial", status="stopped", usage=None, cost=None)
    store.supersede_from(made["ann"], 5)
    run = store.create_compare_run(user="ann", prompt="Which is faster?", settings={"mode": "single"}, blind=True)
    for model in ("gpt-4o-mini", "gpt-4.1"):
        cid = store.create_conversation(user="ann", source="compare", compare_run_id=run)
        store.add_user_message(cid, "Which is faster?")
        store.finish_reply(store.start_reply(cid, provider="openai", model=model), content=f"{model} is",
                           status="complete", usage=Usage(3, 4), cost=0.0001)
    gone = store.create_conversation(user="bob")
    store.add_user_message(gone, "delete me later", [chart])
    store.soft_delete(gone)
    made["run"] = run
    return made


def _hashes(store: Store) -> list[str]:
    with store.db() as db:
        return [row[0] for row in db.execute("SELECT sha256 FROM attachments ORDER BY sha256").fetchall()]


def views(store: Store) -> dict:
    """What the app shows from a store, engine-independent."""
    return {
        "listed": [(c["id"], c["title"], c["message_count"], c["cost"], c["models"])
                   for c in list_conversations(store, Filters())],
        "deleted": [c["id"] for c in list_conversations(store, Filters(deleted=True))],
        "cards": summary(store, Filters()),
        # the two engines rank differently (bm25, ts_rank); they find the same
        "search": sorted(r["id"] for r in search(store, "vacuum OR kubernetes", Filters()).rows),
        "runs": [r["id"] for r in store.recent_compare_runs("ann")],
        "messages": {c["id"]: [(m["position"], m["role"], m["content"], m["status"], m["superseded"], m["cost"],
                                m["tool_calls"], m["attachments"], m["tool_steps"])
                               for m in store.messages(c["id"], include_superseded=True)]
                     for c in list_conversations(store, Filters(), limit=None)},
        "files": {sha: store.blob(sha) for sha in _hashes(store)},
    }


def test_a_sqlite_store_copied_into_postgresql_shows_the_same_everywhere(sqlite_store, pg_server):
    fill(sqlite_store)
    url = pg_server.new_database()  # empty: the copy migrates it
    counts = {c.table: (c.source, c.added, c.updated, c.target) for c in copy_store(sqlite_store.path, url)}
    assert counts == {"compare_runs": (1, 1, 0, 1), "conversations": (5, 5, 0, 5), "messages": (11, 11, 0, 11),
                      "blobs": (2, 2, 0, 2), "attachments": (3, 3, 0, 3)}
    copied = open_store(url)
    try:
        assert views(copied) == views(sqlite_store)
        new = copied.create_conversation(user="ann")  # new ids and positions follow the copied ones
        assert copied.add_user_message(new, "after the move")["id"] == 12
        with_file = copied.add_user_message(new, "and a file", [attachments.read("notes.txt", b"new after the move")])
        assert with_file["attachments"][0]["name"] == "notes.txt"  # attachment ids, too, follow the copied ones
    finally:
        copied.close()


def test_copying_again_adds_only_what_is_new_and_updates_what_changed(sqlite_store, pg_server):
    made = fill(sqlite_store)
    url = pg_server.new_database()
    copy_store(sqlite_store.path, url)
    sqlite_store.update_conversation(made["bob"], title="Renamed meanwhile")
    sqlite_store.add_user_message(made["bob"], "one more question")
    again = {c.table: (c.added, c.updated, c.target) for c in copy_store(sqlite_store.path, url)}
    assert again == {"compare_runs": (0, 1, 1), "conversations": (0, 5, 5), "messages": (1, 11, 12),
                     "blobs": (0, 0, 2), "attachments": (0, 3, 3)}
    copied = open_store(url)
    try:
        assert views(copied) == views(sqlite_store)
        assert copied.get_conversation(made["bob"])["title"] == "Renamed meanwhile"
    finally:
        copied.close()


def test_the_dev_command_prints_the_counts_and_refuses_a_target_that_is_not_postgresql(sqlite_store, pg_server):
    fill(sqlite_store)
    url = pg_server.new_database()
    out = subprocess.run([sys.executable, "dev.py", "migrate-db", str(sqlite_store.path), url], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "messages" in out.stdout and "11 in SQLite" in out.stdout and "11 in PostgreSQL" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "chat.store.copy", str(sqlite_store.path), "other.db"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "must be a postgresql:// URL" in bad.stderr
