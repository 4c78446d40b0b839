"""The History page under Streamlit's AppTest, over a database seeded through the Store."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chat.history.export import conversation_json, conversation_markdown
from chat.history.listing import get_conversation
from chat.providers.base import Usage
from chat.store import open_store

APP = "../app.py"
PAGE = "app_pages/history.py"


@pytest.fixture
def store(bare_env, monkeypatch, tmp_path):
    """A fresh database the app will open, with an OpenAI key so the chat page has a model (nothing is sent)."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CHAT_DEFAULT_MODEL", "openai:gpt-4o-mini")
    st.cache_resource.clear()
    st.cache_data.clear()
    s = open_store(tmp_path / "chat.db")
    yield s
    s.close()
    st.cache_resource.clear()
    st.cache_data.clear()


def conversation(store, question, answer, *, user="local", source="chat", provider="openai", model="gpt-4o-mini",
                 status="complete", cost=0.0025, error=None, system="Answer briefly."):
    settings = {"provider": provider, "model": model, "system": system, "temperature": 0.2, "max_tokens": 500}
    cid = store.create_conversation(user=user, source=source, settings=settings)
    store.add_user_message(cid, question)
    reply = store.start_reply(cid, provider=provider, model=model, settings=settings)
    store.finish_reply(reply, content=answer, status=status, cost=cost, ttft=0.41, duration=1.41, error=error,
                       usage=Usage(1234, 256, input_exact=True, output_exact=True))
    return cid


def history_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page(PAGE)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def table_titles(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["Title"]) if at.dataframe else []


def markdown_texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def open_id(at: AppTest) -> str | None:
    value = at.query_params.get("open")
    return value[0] if isinstance(value, list) else value


def test_the_page_lists_your_conversations_newest_first_with_their_figures(store):
    conversation(store, "How do I rename a git branch?", "git branch -m new")
    conversation(store, "Local models?", "Try llama.", provider="ollama", model="llama3.2", cost=None)
    conversation(store, "Someone else's secret", "hidden", user="ann")
    at = history_page()
    table = at.dataframe[0].value
    assert list(table["Title"]) == ["Local models?", "How do I rename a git branch?"]
    assert list(table["Models"]) == ["ollama:llama3.2", "openai:gpt-4o-mini"]
    assert list(table["Cost"]) == ["cost unknown", "$0.0025"]  # never $0 for an unknown price
    assert list(table["Tokens"]) == [1490, 1490] and list(table["Messages"]) == [2, 2]
    assert list(table["User"]) == ["local", "local"] and list(table["Source"]) == ["chat", "chat"]
    assert any(c.value.startswith("2 conversations") for c in at.caption)


def test_no_conversations_shows_an_empty_state(store):
    at = history_page()
    assert not at.dataframe
    assert any("No conversations match" in i.value for i in at.info)


def test_a_filtered_view_is_read_from_the_link(store):
    conversation(store, "plain chat", "ok")
    compared = conversation(store, "compared prompt", "ok", source="compare", provider="anthropic",
                            model="claude-haiku-4-5", status="stopped")
    at = history_page(source="compare")
    assert table_titles(at) == ["compared prompt"]
    assert table_titles(history_page(provider="anthropic")) == ["compared prompt"]
    assert table_titles(history_page(model_id="openai:gpt-4o-mini")) == ["plain chat"]
    assert table_titles(history_page(status="stopped")) == ["compared prompt"]
    assert table_titles(history_page(**{"from": "2000-01-01", "to": "2000-01-31"})) == []
    store.soft_delete(compared)
    assert table_titles(history_page(deleted="true")) == ["compared prompt"]
    assert table_titles(history_page()) == ["plain chat"]


def test_searching_shows_highlighted_snippets_safely_and_opens_the_conversation(store):
    cid = conversation(store, "Why is my <script>alert(1)</script> query slow?",
                       "Add an index on the *orders* table; the query planner will use it.")
    conversation(store, "Unrelated", "Nothing to see.")
    at = history_page()
    at.text_input(key="q").set_value("planner").run()
    assert not at.exception
    texts = markdown_texts(at)
    assert any("**planner**" in t for t in texts), texts
    assert any("\\*orders\\*" in t for t in texts)  # the message's own Markdown is shown as text
    assert all(not m.allow_html for m in at.markdown)
    assert any(t.startswith("**Why is my \\<script\\>") for t in texts)  # the title, escaped
    assert any(c.value.startswith("1 conversation found") for c in at.caption)
    at.button(key=f"open-{cid}").click().run()
    assert open_id(at) == cid
    assert [m.markdown[0].value for m in at.chat_message][1].startswith("Add an index")


def test_a_search_link_restores_the_results_and_hostile_text_is_harmless(store):
    conversation(store, "tell me about unbalanced quotes", "They break parsers.")
    at = history_page(q='"unbalanced quotes')
    assert any("Searched as plain words" in c.value for c in at.caption)
    assert any("**unbalanced**" in t for t in markdown_texts(at))
    for text in ("a AND", "NEAR(", "*", "-x", "'; DROP TABLE messages", "🎉"):
        assert not history_page(q=text).exception


def test_selecting_a_row_opens_the_read_only_transcript_with_figures_and_settings(store):
    conversation(store, "First question", "First answer")
    cid = conversation(store, "Second question", "Partial answer", status="stopped", system="Be terse.")
    at = history_page()
    table = at.dataframe[0]
    at.session_state[table.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert open_id(at) == cid
    assert at.subheader[0].value == "Second question"
    you, reply = at.chat_message
    assert you.markdown[0].value == "Second question" and reply.markdown[0].value == "Partial answer"
    figures = reply.caption[-1].value
    assert figures.startswith("gpt-4o-mini · 1,234 in · 256 out · $0.0025 · 0.41 s to first token")
    assert re.search(r" · stopped by you · \d\d:\d\d UTC$", figures)  # the time of the reply last (issue 19)
    assert not at.chat_input  # read-only
    settings = at.expander[0]
    assert settings.label == "System prompt and parameters"
    assert "Be terse." in settings.code[0].value and "Temperature: 0.2" in settings.code[0].value
    assert {b.label for b in at.download_button} >= {"Export Markdown", "Export JSON", "Download table (CSV)"}


def test_a_failed_reply_shows_its_error_in_the_transcript(store):
    cid = conversation(store, "Hello?", "", status="error", error="Anthropic is overloaded right now.")
    at = history_page(open=cid)
    assert [e.value for e in at.chat_message[1].error] == ["Anthropic is overloaded right now."]
    assert any("1 failed" in c.value for c in at.caption)


def test_continue_in_chat_opens_the_conversation_on_the_chat_page(store):
    cid = conversation(store, "Carry on from here", "Sure.")
    at = history_page(open=cid)
    button(at, "Continue in chat").click().run()
    assert not at.exception
    value = at.query_params.get("c")
    assert (value[0] if isinstance(value, list) else value) == cid
    assert at.chat_message[0].markdown[0].value == "Carry on from here"
    assert at.chat_input  # the chat page, ready to continue


def test_delete_hides_the_conversation_and_undo_brings_it_back(store):
    cid = conversation(store, "Delete me", "ok")
    conversation(store, "Keep me", "ok")
    at = history_page(open=cid)
    button(at, "Delete").click().run()
    assert not at.exception
    assert table_titles(at) == ["Keep me"] and open_id(at) is None
    assert store.get_conversation(cid) is None  # hidden everywhere, the chat page included
    assert any("Deleted **Delete me**" in t for t in markdown_texts(at))
    assert [t.value for t in at.toast] == ["Conversation deleted."]
    button(at, "Undo").click().run()
    assert not at.exception
    assert table_titles(at) == ["Keep me", "Delete me"]
    assert open_id(at) == cid and store.get_conversation(cid) is not None


def test_a_deleted_conversation_can_be_found_and_restored(store):
    cid = conversation(store, "Restore me", "ok")
    store.soft_delete(cid)
    at = history_page(deleted="true", open=cid)
    assert table_titles(at) == ["Restore me"]
    assert not [b for b in at.button if b.label in ("Continue in chat", "Delete")]
    button(at, "Restore").click().run()
    assert not at.exception
    assert store.get_conversation(cid) is not None
    assert table_titles(history_page()) == ["Restore me"]


def test_a_link_to_an_unknown_or_someone_elses_conversation_shows_not_found(store):
    theirs = conversation(store, "Not yours", "ok", user="ann")
    for cid in (theirs, "no-such-conversation"):
        at = history_page(open=cid)
        assert any("not found" in w.value for w in at.warning)
        assert not at.chat_message


def test_the_table_pages_through_many_conversations(store):
    for i in range(53):
        store.create_conversation(user="local", title=f"conversation {i:02d}")
    at = history_page()
    assert len(table_titles(at)) == 50 and at.pagination[0].num_pages == 2
    second = history_page(page="2")
    assert table_titles(second) == ["conversation 02", "conversation 01", "conversation 00"]


def test_the_analytics_tab_shows_cards_charts_and_tables_for_the_filtered_set(store):
    conversation(store, "q1", "a1", cost=0.01)
    conversation(store, "q2", "a2", provider="ollama", model="llama3.2", cost=None)
    conversation(store, "q3", "a3", source="compare", cost=0.5)
    at = history_page(tab="Analytics", source="chat")
    cards = {m.label: m.value for m in at.metric}
    assert cards == {"Conversations": "2", "Messages": "4", "Tokens": "2,980",
                     "Cost": "$0.01 + 1 reply of unknown cost"}
    by_model, by_user = (d.value for d in at.dataframe)
    assert list(by_model["Model"]) == ["ollama:llama3.2", "openai:gpt-4o-mini"]
    assert list(by_model["Cost"]) == ["cost unknown", "$0.01"]
    assert list(by_model["Median time to first token (s)"]) == [0.41, 0.41]
    assert list(by_user["User"]) == ["local"] and list(by_user["Conversations"]) == [2]
    assert len(at.get("vega_lite_chart")) == 2  # cost and tokens per day by model


def test_the_analytics_tab_says_so_when_nothing_matches(store):
    at = history_page(tab="Analytics")
    assert {m.label: m.value for m in at.metric}["Cost"] == "$0.00"
    assert any("No conversations match" in i.value for i in at.info)


def test_deleting_the_selected_row_does_not_open_the_next_one(store):
    conversation(store, "Older", "ok")
    newest = conversation(store, "Newest", "ok")
    at = history_page()
    at.session_state[at.dataframe[0].key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert open_id(at) == newest
    button(at, "Delete").click().run()
    assert not at.exception
    assert open_id(at) is None and not at.chat_message
    assert table_titles(at) == ["Older"]


def test_an_analyst_sees_everyones_conversations_but_changes_only_their_own(store, monkeypatch):
    monkeypatch.setenv("CHAT_ANALYSTS", "local")
    st.cache_resource.clear()
    mine = conversation(store, "Mine", "ok", cost=0.01)
    theirs = conversation(store, "Ann's", "ok", user="ann", cost=0.02)
    at = history_page()
    assert table_titles(at) == ["Ann's", "Mine"]
    assert table_titles(history_page(user="ann")) == ["Ann's"]  # the user filter, for analysts only
    at = history_page(open=theirs)
    assert at.chat_message and not [b for b in at.button if b.label in ("Continue in chat", "Delete")]
    assert any("Only ann can continue" in c.value for c in at.caption)
    assert button(history_page(open=mine), "Delete")
    by_user = history_page(tab="Analytics").dataframe[1].value
    assert list(by_user["User"]) == ["ann", "local"]


def test_without_the_analyst_role_a_user_filter_is_neither_shown_nor_obeyed(store):
    conversation(store, "Ann's", "ok", user="ann")
    at = history_page(user="ann")
    assert table_titles(at) == [] and not [s for s in at.selectbox if s.label == "User"]


def long_conversation(store, db_path, n: int) -> str:
    """A conversation of ``n`` messages: the first exchange through the Store, the rest copied in by SQL
    (the Store takes ~3 ms a message; the triggers keep search and totals as the Store would)."""
    cid = conversation(store, "question 0", "answer 1")
    with sqlite3.connect(db_path) as con:
        con.execute("""
            WITH RECURSIVE k(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
            INSERT INTO messages (conversation_id, position, role, content, status, provider, model, created_at,
                                  updated_at)
            SELECT ?, i + 1, CASE i % 2 WHEN 0 THEN 'user' ELSE 'assistant' END,
                   CASE i % 2 WHEN 0 THEN 'question ' ELSE 'answer ' END || i, 'complete',
                   CASE i % 2 WHEN 1 THEN 'openai' END, CASE i % 2 WHEN 1 THEN 'gpt-4o-mini' END,
                   '2030-01-01T00:00:00.000000Z', '2030-01-01T00:00:00.000000Z'
            FROM k""", [n - 1, cid])
    return cid


def test_a_long_transcript_opens_on_its_latest_messages_with_earlier_ones_a_click_away(store, bare_env):
    cid = long_conversation(store, bare_env, 10_000)
    assert len(store.messages(cid)) == 10_000
    at = history_page(open=cid)
    assert len(at.chat_message) == 60
    assert at.chat_message[-1].markdown[0].value == "answer 9999"
    assert at.chat_message[0].markdown[0].value == "question 9940"
    more = next(b for b in at.button if b.label.startswith("Show 200 earlier messages (9,940 hidden)"))
    more.click().run()
    assert not at.exception
    assert len(at.chat_message) == 260 and at.chat_message[0].markdown[0].value == "question 9740"


def test_the_exports_of_a_long_conversation_hold_every_message(store, bare_env):
    cid = long_conversation(store, bare_env, 10_000)
    conv = get_conversation(store, cid, user="local")
    messages = store.messages(cid, include_superseded=True)
    markdown = conversation_markdown(conv, messages)
    assert "question 0" in markdown and "answer 9999" in markdown
    exported = json.loads(conversation_json(conv, messages))
    assert len(exported["messages"]) == 10_000


def test_a_search_too_large_says_so_and_the_rest_of_the_page_works(store):
    cid = conversation(store, "kubernetes cluster", "answer")
    at = history_page(q=" ".join(f"word{i}" for i in range(25)))
    assert any(w.value == "Search takes at most 20 words; shorten it." for w in at.warning)
    at.text_input(key="q").set_value("kubernetes").run()
    assert not at.warning and any(c.value.startswith("1 conversation found") for c in at.caption)
    at = history_page(q=" ".join(["a*"] * 2500), open=cid)  # a replayed link: refused, the transcript shown
    assert any("at most 500 characters" in w.value for w in at.warning)
    assert at.chat_message[1].markdown[0].value == "answer"


def test_a_damaged_search_index_is_reported_and_listing_still_works(store, bare_env):
    conversation(store, "kubernetes cluster", "answer")
    with sqlite3.connect(bare_env) as con:
        con.execute("UPDATE messages_fts_data SET block = X'0011223344556677'")
    at = history_page(q="kubernetes")
    assert any("search index is damaged" in w.value for w in at.warning)
    at.text_input(key="q").set_value("").run()
    assert not at.exception and table_titles(at) == ["kubernetes cluster"]


def test_the_transcript_and_exports_say_how_each_reply_ended_in_the_same_words(store):
    cid = conversation(store, "Tell me everything", "Part one of", status="unfinished")
    store.add_user_message(cid, "Weather?")
    tool = store.start_reply(cid, provider="anthropic", model="claude-haiku-4-5")
    store.finish_reply(tool, content="", status="complete", usage=None, cost=0.0, finish_reason="tool_use",
                       tool_calls=["get_weather"])
    at = history_page(open=cid)
    assert any("ended before the provider finished it" in w.value for w in at.chat_message[1].warning)
    assert "unfinished" in at.chat_message[1].caption[-1].value
    assert any("tool get\\_weather" in i.value for i in at.chat_message[3].info)
    messages = store.messages(cid)
    markdown = conversation_markdown(store.get_conversation(cid), messages)
    assert "> Unfinished: The reply ended before the provider finished it." in markdown
    assert "> Tool call not run: The model asked to use the tool get_weather; tools are not enabled here." in markdown
    data = json.loads(conversation_json(store.get_conversation(cid), messages))
    replies = [m for m in data["messages"] if m["role"] == "assistant"]
    assert [(r["status"], r["ending"]) for r in replies] == [("unfinished", "unfinished"),
                                                            ("complete", "tool call not run")]
    assert replies[1]["tool_calls"] == ["get_weather"] and replies[1]["finish_reason"] == "tool_use"


# ---------------------------------------------------------------- what a daily user expects (issue 19)


def scrollers(at: AppTest) -> list:
    return [e for e in at.get("bidi_component") if e.proto.component_name == "chat_scroll_here"]


def test_open_brings_the_transcript_into_view_once(store):
    cid = conversation(store, "where is the planner?", "The planner is here.")
    at = history_page()
    at.text_input(key="q").set_value("planner").run()
    assert not scrollers(at)
    at.button(key=f"open-{cid}").click().run()
    assert len(scrollers(at)) == 1 and "innerHTML" not in scrollers(at)[0].proto.js_content
    at.run()  # any later run leaves the reader where they are
    assert not scrollers(at) and open_id(at) == cid


def test_a_filter_change_closes_a_transcript_it_leaves_out_and_keeps_one_it_still_matches(store):
    cid = conversation(store, "an openai question", "an answer")
    conversation(store, "a claude question", "another answer", provider="anthropic", model="claude-haiku-4-5")
    at = history_page(open=cid)
    at.selectbox(key="provider").set_value("openai").run()
    assert open_id(at) == cid  # still matches: still open
    at.selectbox(key="provider").set_value("anthropic").run()
    assert open_id(at) is None and not at.chat_message
    at = history_page(open=cid)
    at.text_input(key="q").set_value("claude").run()
    assert open_id(at) is None  # the search no longer finds it either


def test_the_daily_charts_draw_one_day_as_a_bar_with_whole_legend_labels_and_no_zoom(store):
    conversation(store, "q1", "a1", cost=0.01)
    conversation(store, "q2", "a2", provider="anthropic", model="a-model-with-a-very-long-name-that-used-to-be-cut")
    at = history_page(tab="Analytics")
    charts_ = at.get("vega_lite_chart")
    assert len(charts_) == 2
    for chart in charts_:
        spec = json.loads(chart.proto.spec)
        assert "params" not in spec and "selection" not in json.dumps(spec)  # nothing binds the mouse wheel
        x = spec["encoding"]["x"]
        assert x["type"] == "ordinal" and x["scale"]["paddingOuter"] == 5.5  # one day: one bar of 1/12 width
        legend = spec["encoding"]["color"]["legend"]
        assert legend["labelLimit"] == 0 and legend["orient"] == "bottom"
