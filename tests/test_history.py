"""History queries over a real Store: listing, filters, search, totals, soft delete, exports, analytics."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from chat.display import tokens_per_second, total_cost_text
from chat.history.analytics import summary, usage_by_model_and_day, usage_by_user
from chat.history.export import CSV_COLUMNS, EXPORT_FORMAT, conversation_json, conversation_markdown, table_csv
from chat.history.listing import count_conversations, day_bounds, filter_options, get_conversation, list_conversations
from chat.history.search import highlight_markdown, rank, search, search_page
from chat.providers.base import Usage
from chat.store import Filters, open_store, postgres
from chat.store.search import HIGHLIGHT_END, HIGHLIGHT_START
from engines import raw

ROOT = Path(__file__).resolve().parent.parent
EVERYONE = Filters()


@pytest.fixture
def db_path(store_target):
    """The store's database, once per engine: a SQLite file, or a PostgreSQL database's URL."""
    return store_target


@pytest.fixture
def store(engine_store):
    """Each test that uses it runs on both engines."""
    return engine_store


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "chat.db"


@pytest.fixture
def sqlite_store(sqlite_path):
    """For the tests of what only SQLite has (its query plans, its authorizer, its FTS5 index's pages)."""
    s = open_store(sqlite_path)
    yield s
    s.close()


def turn(store, cid, question, answer, *, provider="openai", model="gpt-4o-mini", status="complete",
         usage=(10, 20), cost=0.001, ttft=0.4, duration=1.4, settings=None, error=None):
    store.add_user_message(cid, question)
    reply = store.start_reply(cid, provider=provider, model=model, settings=settings or {
        "provider": provider, "model": model, "system": "Be brief.", "temperature": 0.5, "max_tokens": None})
    usage = None if usage is None else Usage(*usage, input_exact=True, output_exact=True)
    return store.finish_reply(reply, content=answer, status=status, usage=usage, cost=cost, ttft=ttft,
                              duration=duration, error=error)


def chat(store, question, answer, *, user="local", source="chat", **kwargs):
    cid = store.create_conversation(user=user, source=source, settings={"provider": "openai",
                                                                        "model": "gpt-4o-mini"})
    turn(store, cid, question, answer, **kwargs)
    return cid


def set_day(db_path, cid, day: str):
    """Move a conversation (and its messages) to a day, as if it had happened then."""
    with raw(db_path) as con:
        con.execute("UPDATE conversations SET created_at = ?, updated_at = ? WHERE id = ?",
                    [f"{day}T09:00:00.000000Z", f"{day}T10:00:00.000000Z", cid])
        con.execute("UPDATE messages SET created_at = ? WHERE conversation_id = ?", [f"{day}T09:30:00.000000Z", cid])


def ids(rows):
    return [row["id"] for row in rows]


def found(store, text, filters=EVERYONE):
    return ids(search(store, text, filters).rows)


# ---------------------------------------------------------------- listing and totals


def test_the_table_lists_conversations_newest_first_with_their_kept_totals(store):
    first = chat(store, "How do I sort a list?", "Use sorted().", usage=(100, 50), cost=0.002)
    second = chat(store, "Name a colour", "Blue.", model="gpt-4.1", usage=(30, 5), cost=None)
    turn(store, second, "Another?", "Red.", provider="anthropic", model="claude-haiku-4-5", usage=(40, 6),
         cost=0.003, status="stopped")
    rows = list_conversations(store, EVERYONE)
    assert ids(rows) == [second, first]
    newest = rows[0]
    assert newest["title"] == "Name a colour"
    assert newest["models"] == ["openai:gpt-4.1", "anthropic:claude-haiku-4-5"]
    assert (newest["message_count"], newest["tokens"], newest["stopped_count"]) == (4, 81, 1)
    assert newest["cost"] == pytest.approx(0.003) and newest["unknown_cost_count"] == 1
    assert count_conversations(store, EVERYONE) == 2


def test_the_table_pages_through_conversations(store):
    made = [chat(store, f"question {i}", "answer") for i in range(5)]
    pages = [ids(list_conversations(store, EVERYONE, limit=2, offset=offset)) for offset in (0, 2, 4)]
    assert pages == [made[:2:-1][:2], made[2:0:-1], made[:1]]
    assert ids(list_conversations(store, EVERYONE, limit=None)) == made[::-1]


def test_an_untitled_conversation_is_named_after_its_first_message(store, db_path):
    cid = chat(store, "What is the capital of France?\nThanks", "Paris.")
    with raw(db_path) as con:
        con.execute("UPDATE conversations SET title = '' WHERE id = ?", [cid])
    assert list_conversations(store, EVERYONE)[0]["title"] == "What is the capital of France?"


def test_listing_and_the_cards_read_the_kept_totals_not_the_messages(sqlite_store):
    store = sqlite_store
    for i in range(3):
        chat(store, f"question {i}", "answer")
    tables = set()

    def note(action, table, *_):
        if action == sqlite3.SQLITE_READ:
            tables.add(table)
        return sqlite3.SQLITE_OK

    with store.db() as db:
        db.conn.set_authorizer(note)
        try:
            list_conversations(store, EVERYONE)
            count_conversations(store, EVERYONE)
            summary(store, EVERYONE)
        finally:
            db.conn.set_authorizer(None)
    assert tables == {"conversations"}


def test_listing_the_newest_live_conversations_needs_no_sort(sqlite_store):
    """The migration's partial indexes: SQLite reads the newest 50 straight from an index."""
    store = sqlite_store
    for user in (None, "local"):
        where, params = store.filter_sql(Filters(user=user))
        with store.db() as db:
            plan = db.execute(f"EXPLAIN QUERY PLAN SELECT c.* FROM conversations c WHERE {where} "
                              "ORDER BY c.updated_at DESC, c.rowid DESC LIMIT 50", params).fetchall()
        assert not any("TEMP B-TREE" in row[-1] for row in plan), plan


def test_postgresql_lists_the_newest_live_conversations_from_an_index_without_a_sort(pg_server):
    """The PostgreSQL migration's partial indexes, as the planner uses them once the table is not tiny."""
    store = open_store(pg_server.new_database(template="chat_template"))
    try:
        with store.db() as db:
            db.execute("SET enable_seqscan = off")
            for user in (None, "local"):
                where, params = store.filter_sql(Filters(user=user))
                plan = "\n".join(row[0] for row in db.execute(
                    f"EXPLAIN SELECT c.* FROM conversations c WHERE {where} "
                    "ORDER BY c.updated_at DESC, c.rowid DESC LIMIT 50", params).fetchall())
                assert "Sort" not in plan and "idx_conversations_live" in plan, plan
            db.execute("RESET enable_seqscan")
    finally:
        store.close()


def test_the_cards_add_up_the_filtered_conversations(store):
    chat(store, "a", "b", usage=(10, 20), cost=0.01)
    chat(store, "c", "d", usage=(1, 2), cost=None)
    chat(store, "e", "f", user="someone-else", usage=(1000, 1000), cost=1.0)
    cards = summary(store, Filters(user="local"))
    assert cards == {"conversations": 2, "messages": 4, "replies": 2, "tokens": 33, "cost": pytest.approx(0.01),
                     "unknown_cost_count": 1}
    assert summary(store, Filters(user="nobody"))["conversations"] == 0


# ---------------------------------------------------------------- filters, each


def test_the_date_range_filters_on_last_activity_and_includes_both_days(store, db_path):
    days = {day: chat(store, day, "ok") for day in ("2025-03-01", "2025-03-05", "2025-03-09")}
    for day, cid in days.items():
        set_day(db_path, cid, day)
    between = Filters(since=date(2025, 3, 1), until=date(2025, 3, 5))
    assert set(ids(list_conversations(store, between))) == {days["2025-03-01"], days["2025-03-05"]}
    assert ids(list_conversations(store, Filters(since=date(2025, 3, 6)))) == [days["2025-03-09"]]
    assert ids(list_conversations(store, Filters(until=date(2025, 3, 4)))) == [days["2025-03-01"]]
    assert day_bounds((date(2025, 3, 9), date(2025, 3, 1))) == (date(2025, 3, 1), date(2025, 3, 9))


def test_the_provider_filter_matches_any_reply_of_that_provider(store):
    mixed = chat(store, "q", "a")
    turn(store, mixed, "q2", "a2", provider="anthropic", model="claude-haiku-4-5")
    chat(store, "q", "a")
    assert ids(list_conversations(store, Filters(provider="anthropic"))) == [mixed]
    assert count_conversations(store, Filters(provider="openai")) == 2
    assert count_conversations(store, Filters(provider="open")) == 0  # a whole name, not a prefix


def test_the_model_filter_matches_the_exact_model_not_a_longer_name(store):
    mini = chat(store, "q", "a", model="gpt-4o-mini")
    full = chat(store, "q", "a", model="gpt-4o")
    assert ids(list_conversations(store, Filters(model="openai:gpt-4o"))) == [full]
    assert ids(list_conversations(store, Filters(model="openai:gpt-4o-mini"))) == [mini]


def test_the_user_filter_shows_one_users_conversations_and_none_shows_everyones(store):
    mine = chat(store, "q", "a", user="local")
    theirs = chat(store, "q", "a", user="ann")
    assert ids(list_conversations(store, Filters(user="local"))) == [mine]
    assert set(ids(list_conversations(store, Filters(user=None)))) == {mine, theirs}
    assert filter_options(store, None)["users"] == ["ann", "local"]
    assert filter_options(store, "local")["users"] == ["local"]


@pytest.mark.parametrize(("status", "expected"), [
    ("stopped", {"stopped"}),
    ("failed", {"error", "interrupted"}),
    ("stopped or failed", {"stopped", "error", "interrupted"}),
])
def test_the_status_filter_finds_conversations_with_stopped_or_failed_replies(store, status, expected):
    made = {kind: chat(store, kind, "partial", status=kind) for kind in ("complete", "stopped", "error")}
    made["interrupted"] = chat(store, "crash", "")
    store.start_reply(made["interrupted"], provider="openai", model="gpt-4o-mini")
    store.mark_interrupted_replies()
    got = set(ids(list_conversations(store, Filters(status=status))))
    assert got == {made[kind] for kind in expected}


def test_the_source_filter_tells_chat_from_compare(store):
    plain = chat(store, "q", "a")
    compared = chat(store, "q", "a", source="compare")
    assert ids(list_conversations(store, Filters(source="compare"))) == [compared]
    assert ids(list_conversations(store, Filters(source="chat"))) == [plain]


def test_filters_refuse_an_unknown_status_or_source():
    with pytest.raises(ValueError):
        Filters(status="odd")
    with pytest.raises(ValueError):
        Filters(source="email")


def test_the_filter_options_list_the_providers_and_models_seen(store):
    cid = chat(store, "q", "a")
    turn(store, cid, "q", "a", provider="anthropic", model="claude-haiku-4-5")
    chat(store, "q", "a", user="ann", provider="ollama", model="llama3.2")
    options = filter_options(store, "local")
    assert options["providers"] == ["anthropic", "openai"]
    assert options["models"] == ["anthropic:claude-haiku-4-5", "openai:gpt-4o-mini"]


# ---------------------------------------------------------------- search


def test_search_ranks_conversations_by_their_best_matching_message(store):
    once = chat(store, "Tell me about deployment", "Kubernetes is one option among many for running "
                "containers, alongside plain virtual machines, serverless platforms and managed services.")
    often = chat(store, "kubernetes?", "Kubernetes, kubernetes, kubernetes.")
    never = chat(store, "Tell me about cats", "Cats sleep a lot.")
    page = search(store, "kubernetes", EVERYONE)
    assert ids(page.rows) == [often, once]
    assert never not in ids(page.rows)
    assert page.total == 2 and not page.windowed and not page.plain
    assert page.rows[0]["hits"] == 2  # the question and the answer both match
    assert page.rows[0]["score"] < page.rows[1]["score"]  # bm25: lower is better


def test_search_snippets_mark_the_matched_words(store):
    chat(store, "How do I vacuum a SQLite database?", "Run VACUUM; it rebuilds the file.")
    row = search(store, "vacuum", EVERYONE).rows[0]
    assert f"{HIGHLIGHT_START}VACUUM{HIGHLIGHT_END}" in row["snippet"] or (
        f"{HIGHLIGHT_START}vacuum{HIGHLIGHT_END}" in row["snippet"])
    assert "**" in highlight_markdown(row["snippet"])


def test_search_matches_word_forms_every_word_and_stays_per_user(store):
    mine = chat(store, "running tests in parallel", "Use pytest-xdist.")
    chat(store, "running tests in parallel", "Use pytest-xdist.", user="ann")
    assert found(store, "run parallel", Filters(user="local")) == [mine]  # Porter stemming
    assert found(store, "run parallel giraffe", Filters(user="local")) == []  # every word must be there


def test_search_understands_fts_syntax_when_it_parses(store):
    phrase = chat(store, "q", "an exact phrase here")
    words = chat(store, "q", "phrase exact, out of order")
    other = chat(store, "q", "something else entirely")
    assert found(store, '"exact phrase"') == [phrase]
    assert set(found(store, "exact phrase")) == {phrase, words}
    assert set(found(store, "entirely OR order")) == {words, other}
    assert set(found(store, "entir*")) == {other}
    assert found(store, "exact NOT order") == [phrase]


def test_a_query_fts_cannot_parse_is_searched_as_plain_words(store):
    cid = chat(store, "q", 'a title with "unbalanced quotes, and C++ too')
    page = search(store, '"unbalanced quotes', EVERYONE)
    assert page.plain and ids(page.rows) == [cid]
    assert found(store, "C++ AND") == [cid]
    assert found(store, "title: with") == [cid]  # "title:" would be a column filter


HOSTILE = ['"unbalanced', "a AND", "NEAR(", "*", "-x", "'; DROP TABLE messages; --", "🎉", "🎉 party", '"', "(",
           ")", "AND", "OR OR", "NOT", "content:", "x:y", "^", "\\", "%", "_", "a*b*c", '""""', "NEAR(a b, -1)",
           "a + + b", "{a b}: c", "\x00", "\n\t", "   ", "", "a" * 5000, "ü*", "rowid:1", "'", "$(rm -rf /)",
           '""*', '"a"*', "ab*cd*", "_", "__init__", "\u2028x", "a\u00a0b", "NEAR", "near(a b)", "AND OR NOT"]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_search_text_never_raises(store, db_path, text):
    chat(store, "A harmless question", "party time 🎉 and a b c")
    page = search(store, text, EVERYONE)
    assert isinstance(page.rows, list)
    for row in page.rows:
        highlight_markdown(row["snippet"])
    with raw(db_path) as con:  # nothing was dropped or changed
        assert con.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 2


def test_text_with_no_letters_or_digits_finds_nothing(store):
    chat(store, "party 🎉", "yes 🎉")
    for text in ("🎉", "***", "'; --", "   "):
        assert search(store, text, EVERYONE).rows == []


def test_search_combines_with_every_filter(store, db_path):
    target = chat(store, "quantum computing basics", "Qubits.", provider="anthropic", model="claude-haiku-4-5",
                  status="stopped", source="compare")
    chat(store, "quantum computing basics", "Qubits.", user="ann", provider="anthropic",
         model="claude-haiku-4-5", status="stopped", source="compare")
    chat(store, "quantum computing basics", "Qubits.")  # openai, complete, chat
    set_day(db_path, target, "2025-06-15")
    narrow = Filters(user="local", provider="anthropic", model="anthropic:claude-haiku-4-5", status="stopped",
                     source="compare", since=date(2025, 6, 15), until=date(2025, 6, 15))
    assert found(store, "quantum", narrow) == [target]
    assert found(store, "quantum", Filters(user="local", since=date(2025, 6, 16))) != [target]


def test_search_skips_superseded_messages(store):
    cid = chat(store, "q", "an answer about zebras")
    store.supersede_from(cid, 2)
    assert found(store, "zebras") == []
    assert search(store, "q", EVERYONE).total == 1


def test_search_pages_through_the_conversations_found(store):
    made = [chat(store, "walrus facts", f"walrus {i}") for i in range(5)]
    ranked = rank(store, "walrus", EVERYONE)
    pages = [ids(search_page(store, ranked, limit=2, offset=offset)) for offset in (0, 2, 4)]
    assert sorted(sum(pages, [])) == sorted(made) and [len(p) for p in pages] == [2, 2, 1]


def test_search_ranks_only_the_newest_window_of_matching_messages(store, monkeypatch):
    monkeypatch.setattr("chat.history.search.WINDOW", 3)
    made = [chat(store, f"question {i}", "otter") for i in range(4)]  # one matching message each
    page = search(store, "otter", EVERYONE)
    assert page.windowed and page.total == 3
    assert made[0] not in ids(page.rows)  # the oldest is outside the window


def test_search_finds_the_newest_matches_however_far_apart_they_lie(store, monkeypatch):
    """PostgreSQL looks for matches newest first in windows of message ids that grow until the window of
    matches is full; starting from a window one id wide (as when the planner expects a word everywhere), it
    still finds exactly the newest matches of the filters."""
    monkeypatch.setattr(postgres, "MIN_WINDOW", 1)
    monkeypatch.setattr(postgres._TsSession, "estimated_rows", lambda self, sql, params: 1e9)
    monkeypatch.setattr("chat.history.search.WINDOW", 3)
    mine, theirs = [], []
    for i in range(5):
        mine.append(chat(store, f"question {i}", "heron"))
        for _ in range(3):
            chat(store, "filler", "nothing to see", user="ann")
        theirs.append(chat(store, "another", "a heron", user="ann"))
    gone = chat(store, "deleted", "heron")
    store.soft_delete(gone)
    page = search(store, "heron", Filters(user="local"))
    assert page.windowed and set(ids(page.rows)) == set(mine[-3:])
    assert set(found(store, "heron")) == {mine[-1], theirs[-2], theirs[-1]}
    assert found(store, "heron", Filters(deleted=True)) == [gone]
    assert set(found(store, "heron", Filters(user="ann", source="chat"))) == set(theirs[-3:])


def test_a_word_in_most_recent_messages_is_ignored_when_the_search_has_rarer_words(store, monkeypatch):
    monkeypatch.setattr("chat.history.search.COMMON_PROBE", 3)
    strong = chat(store, "q", "common beaver beaver beaver")
    weak = chat(store, "q", "common beaver " + "common " * 30)
    alone = chat(store, "q", "a beaver without the frequent word")
    fillers = [chat(store, f"question {i}", "common filler") for i in range(20)]  # "common" is everywhere lately
    page = search(store, "common beaver", EVERYONE)
    assert ids(page.rows) == [strong, alone, weak]  # ranked by "beaver" alone
    assert page.ignored == ("common",) and page.ranked_by == "relevance"
    assert HIGHLIGHT_START + "common" not in page.rows[2]["snippet"]  # only the searched word is marked
    assert HIGHLIGHT_START + "beaver" in page.rows[2]["snippet"]
    newest_first = search(store, "common", EVERYONE)  # every word common: all required, newest first
    assert newest_first.ranked_by == "recency" and newest_first.ignored == ()
    assert ids(newest_first.rows) == [*fillers[::-1], weak, strong]


def test_a_rare_word_is_never_ignored_however_few_messages_there_are(store):
    made = [chat(store, "zebra question", "zebra zebra") for _ in range(5)]  # in every message, but few
    page = search(store, "zebra question", EVERYONE)
    assert page.ignored == () and set(ids(page.rows)) == set(made)


def test_highlighted_snippets_escape_markdown_and_html():
    snippet = f"see <b>bold</b> [link](x) $x$ :red[y] # {HIGHLIGHT_START}match{HIGHLIGHT_END}*"
    text = highlight_markdown(snippet)
    assert "**match**" in text
    assert "<b>" not in text and "\\<b\\>" in text
    assert "\\[link\\]\\(x\\)" in text and "\\$x\\$" in text and "\\:red\\[y\\]" in text and "\\#" in text
    assert text.endswith("\\*")
    assert highlight_markdown("a\nb\n\n  c") == "a b c"  # one line: no lists, headings or code blocks


# ---------------------------------------------------------------- soft delete and restore


def test_a_deleted_conversation_is_hidden_everywhere_and_restoring_brings_it_back(store):
    kept = chat(store, "lighthouse keeper", "lonely")
    gone = chat(store, "lighthouse keeper", "lonely")
    store.soft_delete(gone)
    assert ids(list_conversations(store, EVERYONE)) == [kept]
    assert found(store, "lighthouse") == [kept]
    assert count_conversations(store, EVERYONE) == 1 and summary(store, EVERYONE)[
        "conversations"] == 1
    assert usage_by_user(store, EVERYONE)[0]["conversations"] == 1
    assert ids(list_conversations(store, Filters(deleted=True))) == [gone]
    assert found(store, "lighthouse", Filters(deleted=True)) == [gone]
    assert get_conversation(store, gone, user="local")["deleted_at"]
    store.restore(gone)
    assert set(found(store, "lighthouse")) == {kept, gone}
    assert list_conversations(store, Filters(deleted=True)) == []


def test_a_conversation_of_another_user_cannot_be_opened(store):
    theirs = chat(store, "q", "a", user="ann")
    assert get_conversation(store, theirs, user="local") is None
    assert get_conversation(store, theirs, user=None)["id"] == theirs
    assert get_conversation(store, "no-such-id", user=None) is None


# ---------------------------------------------------------------- exports


@pytest.fixture
def exported(store):
    cid = store.create_conversation(user="local", settings={
        "provider": "openai", "model": "gpt-4o-mini", "system": "Answer in French.\nBe brief.",
        "temperature": 0.3, "max_tokens": 256, "api_key": "sk-should-never-leak"})
    turn(store, cid, "Hello there", "**Bonjour** !", usage=(12, 3), cost=0.0001,
         settings={"provider": "openai", "model": "gpt-4o-mini", "system": "Answer in French.",
                   "temperature": 0.3, "max_tokens": 256, "authorization": "Bearer sk-nope"})
    turn(store, cid, "Old question", "Old answer")
    store.supersede_from(cid, 3)
    turn(store, cid, "And now?", "Partial", status="error", error="Anthropic is overloaded right now.",
         provider="anthropic", model="claude-haiku-4-5", cost=None, usage=(5, 1))
    conversation = get_conversation(store, cid, user="local")
    return conversation, store.messages(cid, include_superseded=True)


def test_the_markdown_export_has_the_header_settings_and_each_visible_message(exported):
    conversation, messages = exported
    text = conversation_markdown(conversation, messages)
    assert text.startswith("# Hello there\n")
    assert f"- Conversation: {conversation['id']}" in text and "- User: local" in text
    assert "- Models: openai:gpt-4o-mini, anthropic:claude-haiku-4-5" in text
    assert "> Answer in French.\n> Be brief." in text and "- Temperature: 0.3" in text
    order = [text.index(s) for s in ("### You\n\nHello there", "### Assistant (gpt-4o-mini)\n\n**Bonjour** !",
                                     "### You\n\nAnd now?", "### Assistant (claude-haiku-4-5)\n\nPartial")]
    assert order == sorted(order)
    assert "*gpt-4o-mini · 12 in · 3 out · $0.00010" in text
    assert "> Failed: Anthropic is overloaded right now." in text and "cost unknown" in text
    assert "Old question" not in text and "Old answer" not in text  # superseded


def test_the_json_export_has_every_message_with_its_figures(exported):
    conversation, messages = exported
    data = json.loads(conversation_json(conversation, messages))
    assert data["format"] == EXPORT_FORMAT
    assert data["conversation"]["id"] == conversation["id"]
    assert data["conversation"]["settings"]["system"] == "Answer in French.\nBe brief."
    assert data["conversation"]["unknown_cost_count"] == 1
    got = [(m["role"], m["content"], m["superseded"]) for m in data["messages"]]
    assert got == [("user", "Hello there", False), ("assistant", "**Bonjour** !", False),
                   ("user", "Old question", True), ("assistant", "Old answer", True),
                   ("user", "And now?", False), ("assistant", "Partial", False)]
    last = data["messages"][-1]
    assert (last["status"], last["cost"], last["error"]) == ("error", None, "Anthropic is overloaded right now.")
    assert data["messages"][1]["input_tokens"] == 12 and data["messages"][1]["ttft"] == 0.4


def test_no_export_carries_anything_like_a_key(exported, store):
    conversation, messages = exported
    exports = [conversation_markdown(conversation, messages),
               conversation_json(conversation, messages),
               table_csv(list_conversations(store, EVERYONE))]
    for text in exports:
        assert "sk-" not in text and "api_key" not in text and "authorization" not in text.lower()


def test_the_csv_export_has_a_header_and_one_row_per_conversation(store):
    priced = chat(store, "first, with a comma", "ok", usage=(10, 20), cost=0.25)
    unpriced = chat(store, 'second "quoted"', "ok", usage=(1, 2), cost=None, model="llama3.2", provider="ollama")
    rows = list(csv.DictReader(io.StringIO(table_csv(list_conversations(store, EVERYONE)))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [r["id"] for r in rows] == [unpriced, priced]
    assert rows[1]["title"] == "first, with a comma" and rows[0]["title"] == 'second "quoted"'
    assert (rows[1]["total_tokens"], rows[1]["cost_usd"], rows[1]["replies_of_unknown_cost"]) == ("30", "0.250000",
                                                                                                   "0")
    assert (rows[0]["cost_usd"], rows[0]["replies_of_unknown_cost"]) == ("", "1")  # unknown: empty, not 0
    assert rows[0]["models"] == "ollama:llama3.2"


def test_the_csv_of_a_search_adds_the_matching_passage(store):
    chat(store, "q", "the aardvark digs")
    text = table_csv(search(store, "aardvark", EVERYONE).rows, with_match=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["match"] == "the aardvark digs"


# ---------------------------------------------------------------- analytics


def test_usage_is_split_by_day_and_model_with_medians_per_model(store, db_path):
    one = chat(store, "q", "a", usage=(10, 10), cost=0.01, ttft=0.2, duration=1.2)  # 10 tok/s
    turn(store, one, "q", "a", usage=(10, 30), cost=0.02, ttft=0.4, duration=1.4)  # 30 tok/s
    two = chat(store, "q", "a", provider="ollama", model="llama3.2", usage=(5, 5), cost=None, ttft=None,
               duration=None)
    set_day(db_path, one, "2025-01-01")
    set_day(db_path, two, "2025-01-02")
    by_day, by_model = usage_by_model_and_day(store, EVERYONE)
    assert by_day == [
        {"day": "2025-01-01", "model": "openai:gpt-4o-mini", "replies": 2, "tokens": 60,
         "cost": pytest.approx(0.03), "unknown_cost": 0},
        {"day": "2025-01-02", "model": "ollama:llama3.2", "replies": 1, "tokens": 10, "cost": 0.0,
         "unknown_cost": 1},
    ]
    openai = next(m for m in by_model if m["model"] == "openai:gpt-4o-mini")
    assert openai["median_ttft"] == pytest.approx(0.3) and openai["median_tokens_per_second"] == pytest.approx(20)
    ollama = next(m for m in by_model if m["model"] == "ollama:llama3.2")
    assert ollama["median_ttft"] is None and ollama["median_tokens_per_second"] is None
    assert total_cost_text(ollama["cost"], ollama["unknown_cost"]) == "cost unknown"


def test_the_median_speed_of_reasoning_replies_is_the_rate_their_footers_show(store):
    """From the first reasoning token when the reasoning was shown, from the start when it was hidden: the
    rate History reports for a model is the one under each of its replies, on both engines."""
    shown = chat(store, "q", "a", model="o3", usage=None, cost=None)
    hidden = chat(store, "q", "a", model="o3", usage=None, cost=None)
    rows = []
    for cid, reasoning_ttft in ((shown, 0.5), (hidden, None)):
        store.add_user_message(cid, "again")
        reply = store.start_reply(cid, provider="openai", model="o3")
        rows.append(store.finish_reply(reply, content="a", status="complete", cost=None, ttft=2.0, duration=3.0,
                                       usage=Usage(10, 100, reasoning_tokens=60, input_exact=True,
                                                   output_exact=True),
                                       reasoning="thinking" if reasoning_ttft else None,
                                       reasoning_ttft=reasoning_ttft, reasoning_hidden=reasoning_ttft is None))
    footers = sorted(tokens_per_second(store.message(row["id"])) for row in rows)
    assert footers == [pytest.approx(100 / 3.0), pytest.approx(100 / 2.5)]
    _, by_model = usage_by_model_and_day(store, EVERYONE)
    o3 = next(m for m in by_model if m["model"] == "openai:o3")
    assert o3["median_tokens_per_second"] == pytest.approx(statistics.median(footers))


def test_usage_per_user_adds_up_each_users_conversations(store):
    chat(store, "q", "a", usage=(1, 1), cost=0.5)
    chat(store, "q", "a", usage=(1, 1), cost=0.25)
    chat(store, "q", "a", user="ann", usage=(2, 2), cost=None)
    got = {row["user"]: row for row in usage_by_user(store, EVERYONE)}
    assert (got["local"]["conversations"], got["local"]["tokens"], got["local"]["cost"]) == (2, 4, 0.75)
    assert (got["ann"]["cost"], got["ann"]["unknown_cost_count"]) == (0.0, 1)


# ---------------------------------------------------------------- layering


def test_the_history_logic_does_not_import_streamlit():
    code = "import sys, chat.history; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- bounded searches


@pytest.mark.parametrize(("text", "message"), [
    (" ".join(["a*"] * 2500), "Search takes at most 500 characters; shorten it."),
    (" ".join(f"word{i}" for i in range(21)), "Search takes at most 20 words; shorten it."),
    ("kube* post* redi* mong*", "Search takes at most 3 words ending in *; use fewer."),
    ("k* cluster", "needs at least 2 letters before the *"),
    ('"k"* cluster', "needs at least 2 letters before the *"),
    ("(a OR b OR c OR d OR e OR f OR g OR h OR i OR j OR k OR l OR m OR n OR o OR p OR q OR r OR s OR t OR u)",
     "at most 20 words"),
])
def test_a_search_too_large_to_run_cheaply_is_refused_with_what_to_do(store, text, message):
    chat(store, "kubernetes cluster", "a b c")
    page = search(store, text, EVERYONE)
    assert page.rows == [] and page.total == 0
    assert page.problem is not None and message in page.problem


def test_searches_within_the_limits_still_run(store):
    cid = chat(store, "kubernetes cluster on postgres with redis", "ok")
    assert found(store, "kube* post* redi*") == [cid]
    assert found(store, " ".join(["kubernetes"] * 20)) == [cid]
    assert search(store, "kubernetes", EVERYONE).problem is None


def test_a_search_past_its_time_limit_is_stopped_with_a_clear_message(store):
    for i in range(50):
        chat(store, f"kubernetes question {i}", f"kubernetes answer {i}")
    ranked = rank(store, "kubernetes", EVERYONE, time_limit=0)  # already past: stopped at once
    assert ranked.hits == [] and "took longer than 0 s and was stopped" in ranked.problem
    assert len(rank(store, "kubernetes", EVERYONE).hits) == 50  # the connection is usable again


def test_a_damaged_search_index_says_so_and_listing_still_works(sqlite_store, sqlite_path):
    store = sqlite_store
    cid = chat(store, "kubernetes cluster", "answer")
    with sqlite3.connect(sqlite_path) as con:
        con.execute("UPDATE messages_fts_data SET block = X'0011223344556677'")
    page = search(store, "kubernetes", EVERYONE)
    assert page.rows == [] and "search index is damaged" in page.problem
    assert ids(list_conversations(store, EVERYONE)) == [cid]
