import multiprocessing
import os
import re
import shutil
import sqlite3
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import get_type_hints

import pytest

from chat.history.search import search
from chat.providers.base import Usage
from chat.store import (
    CompareReplyRow,
    CompareRunRow,
    ConversationRow,
    DatabaseUnavailable,
    Filters,
    MessageRow,
    NotFound,
    SchemaTooNew,
    StoreError,
    SummaryRow,
    UserUsageRow,
    open_store,
    title_from,
)
from engines import integrity_errors
from engines import raw as raw_any

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "chat.db"


@pytest.fixture
def store(engine_store):
    """Each test that uses it runs on both engines (SQLite file, PostgreSQL database)."""
    return engine_store


@contextmanager
def raw(db_path):
    """A plain sqlite3 connection, as another process would open: it sees only what is committed."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def exact(input_tokens, output_tokens, **more):
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, input_exact=True, output_exact=True,
                 **more)


DEFAULT = object()
TOTALS = ("message_count", "reply_count", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
          "cost", "unknown_cost_count", "stopped_count", "error_count", "models")


def kept_totals(store, conversation_id):
    """The totals the store keeps on a conversation (deleted or not), as the listings read them."""
    conversation = store.get_conversation(conversation_id, include_deleted=True)
    return {key: conversation[key] for key in TOTALS}


def one_turn(store, conversation_id, question, answer, *, usage=DEFAULT, cost=0.01, status="complete"):
    store.add_user_message(conversation_id, question)
    reply_id = store.start_reply(conversation_id, provider="fake", model="echo")
    usage = exact(10, 5) if usage is DEFAULT else usage
    return store.finish_reply(reply_id, content=answer, status=status, usage=usage, cost=cost)


def found(store, text, user=None):
    """What History's search finds: (conversation id, best matching message id) pairs, best first."""
    return [(row["id"], row["match_id"]) for row in search(store, text, Filters(user=user)).rows]


# ---------------------------------------------------------------- opening


def test_a_new_store_creates_its_folder_and_a_migrated_database(db_path):
    assert not db_path.parent.exists()
    s = open_store(db_path)
    s.close()
    with raw(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] >= 1


def test_every_connection_uses_wal_a_busy_timeout_foreign_keys_and_normal_sync(db_path):
    s = open_store(db_path, busy_timeout_ms=1234)
    seen = []

    def pragmas():
        with s.db() as db:
            seen.append((db.conn, [db.execute(f"PRAGMA {p}").fetchone()[0]
                                   for p in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")]))

    with s.db():  # held by this thread while another thread asks
        pragmas()
        worker = threading.Thread(target=pragmas)
        worker.start()
        worker.join()
    s.close()
    assert [values for _, values in seen] == [["wal", 1234, 1, 1]] * 2
    assert seen[0][0] is not seen[1][0]


def test_a_thread_asking_twice_gets_the_same_connection_and_other_threads_another(store):
    with store.db() as outer, store.db() as inner:
        assert outer is inner
        other = []

        def grab():
            with store.db() as db:
                other.append(db)

        t = threading.Thread(target=grab)
        t.start()
        t.join()
        assert other[0] is not outer


def test_a_closed_store_refuses_new_work(store_target):
    s = open_store(store_target)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.create_conversation(user="ann")


def test_a_corrupt_file_gives_database_unavailable(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(DatabaseUnavailable) as caught:
        open_store(db_path)
    assert caught.value.reason == "corrupt"
    assert_one_sentence(str(caught.value))


def test_a_postgresql_server_that_cannot_be_reached_is_named_without_its_password():
    with pytest.raises(DatabaseUnavailable) as caught:
        open_store("postgresql://chat:hunter2@127.0.0.1:1/chat")  # nothing listens on port 1
    assert str(caught.value) == "The chat database at postgresql://chat@127.0.0.1:1/chat cannot be reached."


def test_a_path_below_a_plain_file_gives_database_unavailable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatabaseUnavailable) as caught:
        open_store(tmp_path / "file" / "chat.db")
    assert caught.value.reason == "cannot_open"
    assert_one_sentence(str(caught.value))


def test_a_folder_in_place_of_the_file_gives_database_unavailable(tmp_path):
    (tmp_path / "chat.db").mkdir()
    with pytest.raises(DatabaseUnavailable) as caught:
        open_store(tmp_path / "chat.db")
    assert caught.value.reason == "cannot_open"


@pytest.fixture
def read_only_folder():
    """A folder holding a valid database, both made read-only, that an unprivileged user can reach."""
    folder = Path(tempfile.mkdtemp())
    os.chmod(folder, 0o755)
    open_store(folder / "ro" / "chat.db").close()
    os.chmod(folder / "ro" / "chat.db", 0o444)
    os.chmod(folder / "ro", 0o555)
    yield folder / "ro"
    os.chmod(folder / "ro", 0o755)
    shutil.rmtree(folder)


def open_as_unprivileged_user(path) -> str:
    """Open a Store in a forked child that drops root (root ignores file modes); report what happened."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                open_store(path).close()
                out = "opened"
            except DatabaseUnavailable as exc:
                out = f"{exc.reason}|{exc}"
            except BaseException as exc:
                out = f"{type(exc).__name__}|{exc}"
            os.write(write, out.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        out = pipe.read()
    os.waitpid(pid, 0)
    return out


def test_a_read_only_database_gives_database_unavailable(read_only_folder):
    reason, message = open_as_unprivileged_user(read_only_folder / "chat.db").split("|", 1)
    assert reason == "read_only"
    assert "read-only" in message
    assert_one_sentence(message)


def test_a_new_database_in_a_read_only_folder_gives_database_unavailable(read_only_folder):
    reason, _ = open_as_unprivileged_user(read_only_folder / "new.db").split("|", 1)
    assert reason == "cannot_open"


def assert_one_sentence(message):
    assert message.endswith(".")
    assert ". " not in message


def test_a_newer_schema_is_refused_with_schema_too_new(store_target):
    open_store(store_target).close()
    with raw_any(store_target) as conn:
        conn.execute("INSERT INTO _migrations (name, applied_at) VALUES ('m999_later', '2099-01-01T00:00:00.000Z')")
    with pytest.raises(SchemaTooNew):
        open_store(store_target)


# ---------------------------------------------------------------- conversations


def test_a_conversation_round_trips_with_its_settings(store):
    settings = {"provider": "openai", "model": "gpt-4o", "system": "Be brief — très.",
                "params": {"temperature": 0.2, "max_tokens": None}, "tags": ["a", 1]}
    cid = store.create_conversation(user="ann", title="Plans", settings=settings)
    got = store.get_conversation(cid)
    assert re.fullmatch(r"[0-9a-f]{32}", cid)
    assert got["settings"] == settings
    assert (got["user"], got["title"], got["source"], got["deleted_at"]) == ("ann", "Plans", "chat", None)
    assert got["models"] == []
    assert ISO_UTC.match(got["created_at"]) and got["updated_at"] == got["created_at"]


def test_an_unknown_conversation_is_none_and_writing_to_it_is_not_found(store):
    assert store.get_conversation("nope") is None
    with pytest.raises(NotFound):
        store.add_user_message("nope", "hi")
    with pytest.raises(NotFound):
        store.update_conversation("nope", title="x")


def test_updating_a_conversation_changes_title_and_settings_and_its_time(store):
    cid = store.create_conversation(user="ann", settings={"model": "a"})
    before = store.get_conversation(cid)
    store.update_conversation(cid, title="Renamed", settings={"model": "b"})
    after = store.get_conversation(cid)
    assert (after["title"], after["settings"]) == ("Renamed", {"model": "b"})
    assert after["updated_at"] >= before["updated_at"]


def test_the_chat_list_is_the_users_own_chats_last_active_first_up_to_its_limit(store):
    first = store.create_conversation(user="ann")
    second = store.create_conversation(user="ann")
    store.create_conversation(user="bob")
    store.create_conversation(user="ann", source="compare")
    store.add_user_message(first, "bring me back to the top")
    assert [c["id"] for c in store.chat_list("ann")] == [first, second]
    assert [c["id"] for c in store.chat_list("ann", limit=1)] == [first]
    assert store.chat_list("ann")[0]["settings"] == {}


def test_a_soft_deleted_conversation_is_hidden_and_restore_shows_it(store):
    cid = store.create_conversation(user="ann")
    one_turn(store, cid, "hello there", "hi")
    store.soft_delete(cid)
    assert store.get_conversation(cid) is None
    assert store.get_conversation(cid, include_deleted=True)["deleted_at"]
    assert store.chat_list("ann") == []
    assert found(store, "hello") == []
    assert len(store.messages(cid)) == 2  # the rows themselves are kept
    store.restore(cid)
    assert store.get_conversation(cid)["deleted_at"] is None
    assert [c["id"] for c in store.chat_list("ann")] == [cid]


def test_a_source_other_than_chat_or_compare_is_refused(store):
    with pytest.raises(ValueError):
        store.create_conversation(user="ann", source="other")


def test_a_compare_conversation_points_at_its_run(store):
    run = store.create_compare_run(user="ann", prompt="Which is better?", settings={"targets": 2}, blind=True)
    cid = store.create_conversation(user="ann", source="compare", compare_run_id=run)
    assert store.get_conversation(cid)["compare_run_id"] == run
    with pytest.raises(integrity_errors()):  # foreign key
        store.create_conversation(user="ann", source="compare", compare_run_id="missing")


# ---------------------------------------------------------------- messages


def test_the_user_message_is_committed_before_the_call_returns(store, store_target):
    cid = store.create_conversation(user="ann")
    row = store.add_user_message(cid, "Is this saved?")
    with raw_any(store_target) as conn:  # nothing else has happened yet: no reply started
        seen = conn.execute("SELECT * FROM messages WHERE id = ?", [row["id"]]).fetchone()
    assert (seen["content"], seen["role"], seen["status"], seen["position"]) == ("Is this saved?", "user",
                                                                                 "complete", 1)
    assert row["content"] == "Is this saved?" and row["position"] == 1


def test_the_first_user_message_names_an_unnamed_conversation(store):
    cid = store.create_conversation(user="ann")
    long = "\n  Please   summarise the following report about quarterly revenue and costs in detail\nmore"
    store.add_user_message(cid, long)
    store.add_user_message(cid, "a second question")
    title = store.get_conversation(cid)["title"]
    assert title == "Please summarise the following report about quarterly…"
    assert len(title) <= 60 and "\n" not in title
    named = store.create_conversation(user="ann", title="Mine")
    store.add_user_message(named, "something else")
    assert store.get_conversation(named)["title"] == "Mine"


def test_titles_are_one_short_line():
    assert title_from("short") == "short"
    assert title_from("") == ""
    assert len(title_from("x" * 500)) == 60
    assert title_from("first line\nsecond line") == "first line"


def test_a_streaming_checkpoint_is_visible_from_another_connection(store, store_target):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "count to three")
    reply_id = store.start_reply(cid, provider="fake", model="echo", settings={"temperature": 0})
    store.checkpoint_reply(reply_id, "one, two")
    with raw_any(store_target) as conn:
        seen = conn.execute("SELECT content, status FROM messages WHERE id = ?", [reply_id]).fetchone()
    assert tuple(seen) == ("one, two", "streaming")
    assert kept_totals(store, cid)["reply_count"] == 0  # not counted while streaming


def test_a_finished_reply_records_its_figures_and_the_conversation_totals(store):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "hi")
    reply_id = store.start_reply(cid, provider="openai", model="gpt-4o", settings={"system": "Be kind."})
    usage = Usage(input_tokens=100, output_tokens=20, cache_read_tokens=30, cache_write_tokens=4,
                  input_exact=True, output_exact=False)
    row = store.finish_reply(reply_id, content="Hello!", status="complete", usage=usage, cost=0.0025,
                             ttft=0.31, duration=1.5, finish_reason="stop")
    assert row["id"] == reply_id and row["position"] == 2
    assert (row["content"], row["status"], row["finish_reason"], row["error"]) == ("Hello!", "complete",
                                                                                   "stop", None)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"],
            row["cache_write_tokens"]) == (100, 20, 30, 4)
    assert row["input_exact"] is True and row["output_exact"] is False
    assert (row["cost"], row["ttft"], row["duration"]) == (0.0025, 0.31, 1.5)
    assert row["settings"] == {"system": "Be kind."}
    assert kept_totals(store, cid) == {
        "message_count": 2, "reply_count": 1, "input_tokens": 100, "output_tokens": 20,
        "cache_read_tokens": 30, "cache_write_tokens": 4, "cost": 0.0025, "unknown_cost_count": 0,
        "stopped_count": 0, "error_count": 0, "models": ["openai:gpt-4o"],
    }
    listed = store.chat_list("ann")[0]
    assert (listed["message_count"], listed["cost"], listed["models"]) == (2, 0.0025, ["openai:gpt-4o"])


def test_an_unknown_cost_is_counted_apart_and_never_as_zero(store):
    cid = store.create_conversation(user="ann")
    one_turn(store, cid, "q1", "a1", cost=0.5)
    row = one_turn(store, cid, "q2", "a2", cost=None, usage=None)
    assert row["cost"] is None and row["input_tokens"] is None and row["input_exact"] is False
    totals = kept_totals(store, cid)
    assert (totals["cost"], totals["unknown_cost_count"], totals["reply_count"]) == (0.5, 1, 2)
    assert (totals["input_tokens"], totals["output_tokens"]) == (10, 5)


def test_stopped_failed_and_interrupted_replies_are_counted_by_kind(store):
    cid = store.create_conversation(user="ann")
    one_turn(store, cid, "q1", "partial", status="stopped")
    one_turn(store, cid, "q2", "", status="error", cost=None)
    one_turn(store, cid, "q3", "half", status="interrupted")
    totals = kept_totals(store, cid)
    assert (totals["stopped_count"], totals["error_count"], totals["reply_count"]) == (1, 2, 3)


def test_finishing_a_reply_twice_counts_it_once(store):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "q")
    reply_id = store.start_reply(cid, provider="fake", model="echo")
    store.checkpoint_reply(reply_id, "par")
    store.finish_reply(reply_id, content="partial", status="stopped", usage=exact(10, 3), cost=0.1)
    store.finish_reply(reply_id, content="partial", status="stopped", usage=exact(10, 3), cost=0.1)
    assert kept_totals(store, cid)["output_tokens"] == 3
    store.finish_reply(reply_id, content="partial answer", status="complete", usage=exact(10, 4), cost=0.2)
    totals = kept_totals(store, cid)
    assert (totals["reply_count"], totals["output_tokens"], totals["cost"]) == (1, 4, 0.2)
    assert (totals["stopped_count"], totals["error_count"]) == (0, 0)


def test_a_late_checkpoint_does_not_overwrite_the_final_text(store):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "q")
    reply_id = store.start_reply(cid, provider="fake", model="echo")
    store.finish_reply(reply_id, content="final", status="complete", usage=None, cost=None)
    store.checkpoint_reply(reply_id, "fin")
    assert store.messages(cid)[-1]["content"] == "final"


def test_finishing_with_a_streaming_status_or_a_user_message_is_refused(store):
    cid = store.create_conversation(user="ann")
    user_row = store.add_user_message(cid, "q")
    reply_id = store.start_reply(cid, provider="fake", model="echo")
    with pytest.raises(ValueError):
        store.finish_reply(reply_id, content="", status="streaming", usage=None, cost=None)
    with pytest.raises(ValueError):
        store.finish_reply(user_row["id"], content="", status="complete", usage=None, cost=None)
    with pytest.raises(NotFound):
        store.finish_reply(10_000, content="", status="complete", usage=None, cost=None)


def test_messages_come_in_position_order_with_decoded_settings_and_flags(store):
    cid = store.create_conversation(user="ann")
    one_turn(store, cid, "q1", "a1")
    one_turn(store, cid, "q2", "a2")
    rows = store.messages(cid)
    assert [(r["position"], r["role"], r["content"]) for r in rows] == [
        (1, "user", "q1"), (2, "assistant", "a1"), (3, "user", "q2"), (4, "assistant", "a2")]
    assert rows[0]["settings"] is None and rows[0]["superseded"] is False
    assert all(ISO_UTC.match(r["created_at"]) for r in rows)


def fields(row_type):
    return set(row_type.__annotations__)


def test_stored_rows_have_exactly_the_fields_their_row_types_name(store):
    """MessageRow and ConversationRow say what the store gives back, on both engines, whichever method reads
    them: a column added by a migration and not named there (or named and gone) fails here."""
    cid = store.create_conversation(user="ann")
    question = store.add_user_message(cid, "q1")
    reply_id = store.start_reply(cid, provider="fake", model="echo")
    reply = store.finish_reply(reply_id, content="a1", status="complete", usage=exact(10, 5), cost=0.01)
    assert set(question) == set(reply) == fields(MessageRow)
    for row in store.messages(cid):
        assert set(row) == fields(MessageRow)
    assert set(store.message(question["id"])) == set(store.message(reply_id)) == fields(MessageRow)
    assert set(store.get_conversation(cid)) == fields(ConversationRow)
    assert set(store.chat_list("ann")[0]) == fields(ConversationRow)
    assert set(store.list_conversations(Filters(user="ann"))[0]) == fields(ConversationRow)
    assert set(store.conversations_by_id([cid])[cid]) == fields(ConversationRow)


def test_compare_runs_and_their_replies_have_exactly_the_fields_their_row_types_name(store):
    run_id = store.create_compare_run(user="ann", prompt="q", settings={"mode": "batch", "batch_id": "b1"})
    cid = store.create_conversation(user="ann", source="compare", compare_run_id=run_id,
                                    settings={"label": "A", "provider": "fake", "model": "echo"})
    one_turn(store, cid, "q", "a")
    assert set(store.get_compare_run(run_id)) == fields(CompareRunRow)
    assert set(store.recent_compare_runs("ann")[0]) == fields(CompareRunRow)
    assert set(store.compare_runs_in_batch("b1")[0]) == fields(CompareRunRow)
    assert set(store.compare_replies([run_id])[0]) == fields(CompareReplyRow)


def test_historys_sums_have_exactly_the_fields_and_kinds_their_row_types_name(store):
    """On both engines the sums are plain numbers: ints and floats, as SummaryRow and UserUsageRow say."""
    for user in ("ann", "bob"):
        one_turn(store, store.create_conversation(user=user), "q", "a")
    summary = store.summary(Filters())
    usage = store.usage_by_user(Filters())
    assert set(summary) == fields(SummaryRow)
    assert [set(row) for row in usage] == [fields(UserUsageRow)] * 2
    for row, row_type in [(summary, SummaryRow), *((row, UserUsageRow) for row in usage)]:
        assert {key: type(value) for key, value in row.items()} == get_type_hints(row_type)


def test_messages_after_a_position_are_only_the_later_ones(store):
    cid = store.create_conversation(user="ann")
    one_turn(store, cid, "q1", "a1")
    one_turn(store, cid, "q2", "a2")
    assert [r["content"] for r in store.messages(cid, after_position=2)] == ["q2", "a2"]
    assert store.messages(cid, after_position=4) == []
    assert [r["content"] for r in store.messages(cid, after_position=0)] == ["q1", "a1", "q2", "a2"]


def test_superseded_messages_are_hidden_but_still_counted_and_numbering_continues(store):
    cid = store.create_conversation(user="ann")
    one_turn(store, cid, "q1", "a1", usage=exact(10, 5))
    one_turn(store, cid, "q2", "a2", usage=exact(10, 5))
    store.supersede_from(cid, 4)  # regenerate the last reply
    reply_id = store.start_reply(cid, provider="fake", model="other")
    store.finish_reply(reply_id, content="a2 again", status="complete", usage=exact(10, 7), cost=0.01)
    visible = store.messages(cid)
    assert [(r["position"], r["content"]) for r in visible] == [(1, "q1"), (2, "a1"), (3, "q2"),
                                                               (5, "a2 again")]
    everything = store.messages(cid, include_superseded=True)
    assert [r["superseded"] for r in everything] == [False, False, False, True, False]
    totals = kept_totals(store, cid)
    assert (totals["message_count"], totals["reply_count"], totals["output_tokens"]) == (4, 3, 17)
    assert totals["models"] == ["fake:echo", "fake:other"]
    store.supersede_from(cid, 3)  # edit and resend the last question
    row = store.add_user_message(cid, "q2, edited")
    assert row["position"] == 6
    assert [r["content"] for r in store.messages(cid)] == ["q1", "a1", "q2, edited"]
    assert kept_totals(store, cid)["message_count"] == 3


def test_replies_left_streaming_by_a_crash_are_marked_interrupted_at_start_up(store, store_target):
    cid = store.create_conversation(user="ann")
    one_turn(store, cid, "q1", "a1")
    store.add_user_message(cid, "q2")
    reply_id = store.start_reply(cid, provider="fake", model="echo")
    store.checkpoint_reply(reply_id, "half an ans")
    store.close()  # the crash

    restarted = open_store(store_target)
    assert restarted.mark_interrupted_replies() == 1
    assert restarted.mark_interrupted_replies() == 0
    row = restarted.messages(cid)[-1]
    assert (row["status"], row["content"]) == ("interrupted", "half an ans")
    assert row["error"]
    totals = kept_totals(restarted, cid)
    assert (totals["reply_count"], totals["error_count"]) == (2, 1)
    restarted.close()


def test_a_reply_marked_interrupted_that_then_finishes_is_counted_once(store):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "q")
    reply_id = store.start_reply(cid, provider="fake", model="echo")
    store.mark_interrupted_replies()
    store.finish_reply(reply_id, content="done", status="complete", usage=exact(3, 4), cost=0.1)
    totals = kept_totals(store, cid)
    assert (totals["reply_count"], totals["error_count"], totals["output_tokens"]) == (1, 0, 4)


# ---------------------------------------------------------------- full-text search


def test_search_finds_a_message_after_insert_checkpoint_and_finish(store):
    cid = store.create_conversation(user="ann", title="Cats")
    user_message = store.add_user_message(cid, "Tell me about running cats")
    assert found(store, "run cat") == [(cid, user_message["id"])]  # stemmed
    reply_id = store.start_reply(cid, provider="fake", model="echo")
    store.checkpoint_reply(reply_id, "Cats sprint")
    assert found(store, "sprint") == [(cid, reply_id)]
    store.finish_reply(reply_id, content="Cats nap mostly", status="complete", usage=None, cost=None)
    assert found(store, "sprint") == []
    page = search(store, "nap", Filters())
    assert [(r["id"], r["match_id"], r["title"], r["user"]) for r in page.rows] == [(cid, reply_id, "Cats", "ann")]
    assert "nap" in page.rows[0]["snippet"]


def test_search_filters_by_user_and_skips_superseded_messages(store):
    ann = store.create_conversation(user="ann")
    bob = store.create_conversation(user="bob")
    store.add_user_message(ann, "shared word zebra")
    store.add_user_message(bob, "zebra too")
    assert {cid for cid, _ in found(store, "zebra")} == {ann, bob}
    assert {cid for cid, _ in found(store, "zebra", user="bob")} == {bob}
    store.supersede_from(bob, 1)
    assert {cid for cid, _ in found(store, "zebra")} == {ann}
    assert found(store, "   ") == []


# ---------------------------------------------------------------- concurrency


def test_threads_adding_turns_to_their_own_and_a_shared_conversation_store_each_message_once(store):
    threads, turns = 8, 6
    shared = store.create_conversation(user="everyone")
    start = threading.Barrier(threads)

    def worker(n):
        own = store.create_conversation(user=f"user{n}")
        start.wait()
        for t in range(turns):
            for cid in (own, shared):
                store.add_user_message(cid, f"q {n} {t}")
                reply_id = store.start_reply(cid, provider="fake", model="echo")
                store.checkpoint_reply(reply_id, f"a {n}")
                store.finish_reply(reply_id, content=f"a {n} {t}", status="complete", usage=exact(2, 3),
                                   cost=0.25)
        return own

    with ThreadPoolExecutor(threads) as pool:
        owns = list(pool.map(worker, range(threads)))  # any DatabaseBusy would be raised here

    for n, own in enumerate(owns):
        rows = store.messages(own)
        assert [r["content"] for r in rows] == [f"{kind} {n} {t}" for t in range(turns) for kind in "qa"]
        assert [r["position"] for r in rows] == list(range(1, 2 * turns + 1))
    rows = store.messages(shared)
    assert [r["position"] for r in rows] == list(range(1, 2 * threads * turns + 1))
    assert sorted(r["content"] for r in rows) == sorted(
        f"{kind} {n} {t}" for n in range(threads) for t in range(turns) for kind in "qa")
    totals = kept_totals(store, shared)
    assert totals["reply_count"] == threads * turns
    assert totals["output_tokens"] == 3 * threads * turns
    assert totals["cost"] == pytest.approx(0.25 * threads * turns)


def process_context():
    """Children forked from a server process that imported the store once, so they start in milliseconds
    (sqlite-utils imports pandas) and, unlike plain fork, inherit no open SQLite connection."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["pytest", "chat.store"])  # the server has the cwd, not tests/, on its path
    return ctx


def add_turns_in_a_process(path, shared, n, turns, start):
    start.wait()
    store = open_store(path)
    own = store.create_conversation(user=f"proc{n}")
    for t in range(turns):
        for cid in (own, shared):
            store.add_user_message(cid, f"q {n} {t}")
            reply_id = store.start_reply(cid, provider="fake", model="echo")
            store.finish_reply(reply_id, content=f"a {n} {t}", status="complete", usage=exact(1, 1), cost=None)
    store.close()


def open_a_blank_database_in_a_process(path, start):
    start.wait()
    open_store(path).close()


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_target(request, tmp_path):
    """A database nothing has opened yet: a new SQLite path, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "blank.db"
    return request.getfixturevalue("pg_server").new_database()


def test_processes_opening_a_blank_database_at_once_migrate_it_once(blank_target):
    ctx = process_context()
    start = ctx.Barrier(3)
    path = blank_target
    procs = [ctx.Process(target=open_a_blank_database_in_a_process, args=(path, start)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with raw_any(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations")]
    assert len(names) == len(set(names)) >= 1


def test_processes_adding_turns_to_a_shared_conversation_store_each_message_once(store, store_target):
    processes, turns = 3, 10
    shared = store.create_conversation(user="everyone")
    ctx = process_context()
    start = ctx.Barrier(processes + 1)
    procs = [ctx.Process(target=add_turns_in_a_process, args=(store_target, shared, n, turns, start))
             for n in range(processes)]
    for p in procs:
        p.start()
    start.wait()
    for t in range(turns):  # this process writes as well
        one_turn(store, shared, f"q main {t}", f"a main {t}", cost=None)
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * processes
    rows = store.messages(shared)
    assert [r["position"] for r in rows] == list(range(1, 2 * (processes + 1) * turns + 1))
    assert len({r["content"] for r in rows}) == len(rows)
    assert kept_totals(store, shared)["unknown_cost_count"] == (processes + 1) * turns
    for conversation in store.list_conversations(Filters(), limit=None):
        if conversation["id"] != shared:
            assert conversation["message_count"] == 2 * turns


def live_and_stale_replies(store, store_target) -> tuple[str, int, int]:
    """A conversation with two streaming replies: one just written, one not written for years."""
    cid = store.create_conversation(user="alice")
    store.add_user_message(cid, "q")
    live = store.start_reply(cid, provider="openai", model="m")
    stale = store.start_reply(cid, provider="openai", model="m")
    with raw_any(store_target) as conn:
        conn.execute("UPDATE messages SET updated_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?", [stale])
    return cid, live, stale


def test_only_replies_not_written_for_a_while_are_taken_for_crashed_ones(store, store_target):
    cid, live, stale = live_and_stale_replies(store, store_target)
    assert store.mark_interrupted_replies(stale_after=5) == 1
    statuses = {r["id"]: r["status"] for r in store.messages(cid)}
    assert statuses[live] == "streaming" and statuses[stale] == "interrupted"
    assert store.mark_interrupted_replies(stale_after=5) == 0


def test_the_replies_taken_for_dead_are_the_ones_the_store_marks_interrupted(store, store_target):
    """One rule, read two ways: a follower asks is_dead of a row, the preamble calls mark_dead_replies."""
    from chat.store.replies import is_dead

    _, live, stale = live_and_stale_replies(store, store_target)
    assert [is_dead(store.message(i)) for i in (live, stale)] == [False, True]
    assert store.mark_dead_replies() == 1
    assert [store.message(i)["status"] for i in (live, stale)] == ["streaming", "interrupted"]
    assert not is_dead(store.message(stale))  # interrupted now: nothing left to mark


def test_a_replys_reasoning_is_checkpointed_and_finished_on_either_engine(store):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "think first")
    reply_id = store.start_reply(cid, provider="openai", model="gpt-5-mini")
    store.checkpoint_reply(reply_id, "", reasoning="Considering the")
    assert store.message(reply_id)["reasoning"] == "Considering the"
    store.checkpoint_reply(reply_id, "Answer", reasoning=None)  # the reasoning so far is kept
    assert store.message(reply_id)["reasoning"] == "Considering the"
    row = store.finish_reply(reply_id, content="Answer.", status="complete", cost=0.01, reasoning_ttft=0.2,
                             usage=Usage(10, 30, reasoning_tokens=20), reasoning="Considering the options.")
    assert (row["reasoning"], row["reasoning_tokens"], row["reasoning_ttft"]) == ("Considering the options.", 20, 0.2)


def test_the_chat_list_holds_chats_and_compare_conversations_continued_as_chats(store):
    chat = store.create_conversation(user="ann")
    compared = store.create_conversation(user="ann", source="compare")
    continued = store.create_conversation(user="ann", source="compare")
    for cid in (chat, compared, continued):
        store.add_user_message(cid, "question")
        store.finish_reply(store.start_reply(cid, provider="openai", model="m"), content="answer",
                           status="complete", usage=None, cost=None)
    store.add_user_message(continued, "a follow-up")
    store.create_conversation(user="bob")
    assert [c["id"] for c in store.chat_list("ann")] == [continued, chat]


def test_showing_an_earlier_version_of_the_last_reply_supersedes_the_others_and_keeps_the_totals(store):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "question")
    first = store.start_reply(cid, provider="openai", model="m")
    store.finish_reply(first, content="one", status="complete", usage=None, cost=0.5)
    store.supersede_from(cid, 2)
    second = store.start_reply(cid, provider="openai", model="m")
    store.finish_reply(second, content="two", status="complete", usage=None, cost=0.25)
    store.show_reply(cid, first)
    assert [m["content"] for m in store.messages(cid)] == ["question", "one"]
    assert kept_totals(store, cid)["cost"] == 0.75 and kept_totals(store, cid)["message_count"] == 2
    with pytest.raises(NotFound):
        store.show_reply(cid, store.messages(cid)[0]["id"])  # a user message is no version of a reply


def test_a_replys_tool_steps_are_checkpointed_and_finished_on_either_engine(store):
    cid = store.create_conversation(user="ann")
    store.add_user_message(cid, "look it up")
    reply_id = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
    waiting = [{"text": "Let me check.", "calls": [{"id": "c1", "server": "docs", "tool": "search",
                                                    "arguments": '{"q": "sky"}', "status": "waiting"}]}]
    store.checkpoint_reply(reply_id, "Let me check.", tool_steps=waiting)
    assert store.message(reply_id)["tool_steps"] == waiting
    store.checkpoint_reply(reply_id, "Let me check.")  # the steps so far are kept
    assert store.message(reply_id)["tool_steps"] == waiting
    done = [{**waiting[0], "calls": [{**waiting[0]["calls"][0], "status": "done", "result": "blue"}]},
            {"text": "It is blue.", "calls": []}]
    row = store.finish_reply(reply_id, content="It is blue.", status="complete", usage=Usage(10, 5), cost=0.01,
                             tool_steps=done)
    assert row["tool_steps"] == done
    assert store.messages(cid)[-1]["tool_steps"] == done
    plain = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
    assert store.finish_reply(plain, content="ok", status="complete", usage=None, cost=None)["tool_steps"] is None
