"""The turn logic end to end: a real Store file, real SDK clients, the fake provider over HTTP."""

from __future__ import annotations

import sqlite3
import time

import pytest

from chat import turns
from chat.config import ModelId
from chat.pricing import Pricer
from chat.providers.anthropic import AnthropicProvider
from chat.providers.base import ConnectionLost, ContextTooLong, Overloaded, Params, StreamError
from chat.providers.openai import OpenAIProvider


@pytest.fixture
def openai_provider(openai_client):
    return OpenAIProvider(name="openai", client=openai_client, label="OpenAI")


@pytest.fixture
def anthropic_provider(anthropic_client):
    return AnthropicProvider(name="anthropic", client=anthropic_client, label="Anthropic")


def settings(provider="openai", model="gpt-4o-mini", system=None):
    return turns.TurnSettings(ModelId(provider, model), system=system, params=Params())


def ctx(store, provider, **limits):
    return turns.TurnContext(store, provider, Pricer(), **limits)


def new_conversation(store):
    return store.create_conversation(user="alice", settings={})


def drain(turn):
    return "".join(turn.stream(flush_every=0.0))


def test_a_complete_turn_stores_the_reply_with_exact_usage_and_cost(store, openai_provider, fake_provider):
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider), cid, "hello there", settings())
    text = drain(turn)
    assert text.startswith("Echo: hello there")
    rows = store.messages(cid)
    assert [r["role"] for r in rows] == ["user", "assistant"]
    reply = rows[1]
    assert reply["status"] == "complete" and reply["content"] == text
    assert reply["input_exact"] and reply["output_exact"]
    assert reply["output_tokens"] == 20
    assert reply["cost"] is not None and reply["cost"] > 0
    assert reply["settings"]["model"] == "gpt-4o-mini"
    assert reply["ttft"] is not None and reply["duration"] >= reply["ttft"]


def test_a_turn_is_built_without_touching_the_database_and_opening_it_starts_the_reply(store, openai_provider,
                                                                                       fake_provider):
    cid = new_conversation(store)
    store.add_user_message(cid, "hi")
    built = turns.Turn(ctx(store, openai_provider, user="alice", daily_limit=1.0), cid, settings())
    assert built.message_id is None and not built.finished
    assert [r["role"] for r in store.messages(cid)] == ["user"]
    opened = turns.Turn.open(ctx(store, openai_provider), cid, settings())
    reply = store.messages(cid)[-1]
    assert reply["id"] == opened.message_id and reply["status"] == "streaming"
    assert drain(opened).startswith("Echo: hi")
    assert store.messages(cid)[-1]["status"] == "complete"


def test_the_users_message_is_committed_before_the_provider_is_called(store, openai_provider, fake_provider,
                                                                       tmp_path):
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider), cid, "saved first", settings())
    assert not fake_provider.events("request")
    raw = sqlite3.connect(tmp_path / "chat.db")
    assert raw.execute("select content from messages where role='user'").fetchone() == ("saved first",)
    raw.close()
    drain(turn)


def test_the_whole_history_and_system_prompt_are_sent_each_turn(store, anthropic_provider, fake_provider):
    cid = new_conversation(store)
    s = settings("anthropic", "claude-haiku-4-5", system="Be brief.")
    drain(turns.send(ctx(store, anthropic_provider), cid, "first", s))
    drain(turns.send(ctx(store, anthropic_provider), cid, "second", s))
    body = fake_provider.events("request")[-1]["body"]
    assert body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert all(m["role"] != "system" for m in body["messages"])


def test_a_stopped_turn_closes_upstream_and_keeps_the_partial_reply_marked_and_estimated(
        store, openai_provider, fake_provider):
    fake_provider.set_scenario(None, words=400, tokens_per_second=100)
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider), cid, "go on", settings())
    gen = turn.stream(flush_every=0.0)
    shown = [next(gen) for _ in range(5)]
    closed_at = time.monotonic()
    gen.close()  # what the page does when Streamlit interrupts the run
    disconnect = fake_provider.wait_for("disconnect", timeout=2)
    assert disconnect["t"] - closed_at < 0.5
    assert disconnect["chunks"] < 400
    reply = store.messages(cid)[-1]
    assert reply["status"] == "stopped"
    assert reply["content"].startswith("".join(shown))
    assert reply["output_tokens"] and not reply["output_exact"]
    assert reply["input_tokens"] and not reply["input_exact"]


def test_a_stopped_anthropic_turn_keeps_exact_input_tokens(store, anthropic_provider, fake_provider):
    fake_provider.set_scenario(None, words=400, tokens_per_second=100, input_tokens=321)
    cid = new_conversation(store)
    turn = turns.send(ctx(store, anthropic_provider), cid, "go on", settings("anthropic", "claude-haiku-4-5"))
    gen = turn.stream(flush_every=0.0)
    next(gen)
    next(gen)
    gen.close()
    reply = store.messages(cid)[-1]
    assert reply["status"] == "stopped"
    assert reply["input_tokens"] == 321 and reply["input_exact"]
    assert not reply["output_exact"]


def test_a_turn_that_fails_before_the_first_token_is_recorded_as_an_error(store, anthropic_provider,
                                                                          fake_provider):
    fake_provider.set_scenario(None, status=529)
    cid = new_conversation(store)
    turn = turns.send(ctx(store, anthropic_provider), cid, "hi", settings("anthropic", "claude-haiku-4-5"))
    with pytest.raises(Overloaded):
        drain(turn)
    rows = store.messages(cid)
    assert rows[0]["content"] == "hi"
    assert rows[1]["status"] == "error" and "overloaded" in rows[1]["error"].lower()
    assert rows[1]["content"] == ""
    assert rows[1]["cost"] == 0 and rows[1]["input_tokens"] is None  # a refused request is not billed


def test_a_turn_that_fails_after_the_first_token_keeps_the_partial_text(store, openai_provider, fake_provider):
    fake_provider.set_scenario(None, words=50, drop_after=10)
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider), cid, "hi", settings())
    shown = []
    with pytest.raises((StreamError, ConnectionLost)):
        for chunk in turn.stream(flush_every=0.0):
            shown.append(chunk)
    reply = store.messages(cid)[-1]
    assert reply["status"] == "error"
    assert reply["content"] == "".join(shown) and len(reply["content"].split()) == 10
    assert reply["error"]


def test_partial_text_is_checkpointed_while_streaming(store, openai_provider, fake_provider, tmp_path):
    fake_provider.set_scenario(None, words=200, tokens_per_second=50)
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider), cid, "hi", settings())
    gen = turn.stream(flush_every=0.0, checkpoint_every=0.2)
    started = time.monotonic()
    for _ in gen:
        if time.monotonic() - started > 0.8:
            break
    raw = sqlite3.connect(tmp_path / "chat.db")
    status, content = raw.execute("select status, content from messages where role='assistant'").fetchone()
    raw.close()
    gen.close()
    assert status == "streaming"
    assert len(content.split()) >= 10


def test_the_oldest_turns_are_left_out_when_the_context_window_is_full(store, openai_provider, fake_provider):
    cid = new_conversation(store)
    for i in range(6):
        drain(turns.send(ctx(store, openai_provider), cid, f"message {i} " + "word " * 100, settings()))
    turn = turns.send(ctx(store, openai_provider, context_window=4096 + 500), cid, "last one", settings())
    drain(turn)
    assert turn.dropped > 0
    sent = fake_provider.sent_messages()
    assert sent[0]["role"] == "user"
    assert sent[-1]["content"] == "last one"
    assert len(sent) == 13 - turn.dropped
    assert store.messages(cid)[-1]["settings"]["context_dropped"] == turn.dropped


def test_a_message_too_long_for_the_model_is_refused_before_anything_is_sent(store, openai_provider,
                                                                             fake_provider):
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider, context_window=8000), cid, "word " * 20_000, settings())
    with pytest.raises(ContextTooLong):
        drain(turn)
    assert not fake_provider.events("request")
    rows = store.messages(cid)
    assert rows[0]["role"] == "user" and rows[1]["status"] == "error"


def test_regenerate_supersedes_the_last_reply_and_keeps_its_cost_counted(store, openai_provider, fake_provider):
    cid = new_conversation(store)
    drain(turns.send(ctx(store, openai_provider), cid, "hi", settings()))
    cost_before = store.get_conversation(cid)["cost"]
    drain(turns.regenerate(ctx(store, openai_provider), cid, settings()))
    visible = store.messages(cid)
    assert [r["role"] for r in visible] == ["user", "assistant"]
    assert len(store.messages(cid, include_superseded=True)) == 3
    assert store.get_conversation(cid)["cost"] > cost_before


def test_editing_the_last_message_resends_it_in_place(store, openai_provider, fake_provider):
    cid = new_conversation(store)
    drain(turns.send(ctx(store, openai_provider), cid, "helo", settings()))
    drain(turns.edit_last(ctx(store, openai_provider), cid, "hello", settings()))
    visible = store.messages(cid)
    assert [r["content"] for r in visible if r["role"] == "user"] == ["hello"]
    assert visible[-1]["content"].startswith("Echo: hello")


def test_a_failed_reply_before_any_text_is_left_out_and_the_messages_around_it_go_as_one():
    rows = [
        {"role": "user", "content": "a", "position": 0},
        {"role": "assistant", "content": "", "status": "error", "position": 1},
        {"role": "user", "content": "b", "position": 2},
    ]
    assert [(m.role, m.content) for m in turns.history_from_rows(rows)] == [("user", "a\n\nb")]


def test_figures_are_stored_for_a_model_with_unknown_price_as_unknown(store, fake_provider, openai_client):
    provider = OpenAIProvider(name="ollama", client=openai_client, label="ollama")
    cid = new_conversation(store)
    drain(turns.send(ctx(store, provider), cid, "hi", settings("ollama", "llama3.2")))
    reply = store.messages(cid)[-1]
    assert reply["cost"] is None
    assert store.get_conversation(cid)["unknown_cost_count"] == 1


def test_a_temperature_the_provider_does_not_take_is_neither_sent_nor_recorded(store, anthropic_provider,
                                                                              fake_provider):
    cid = new_conversation(store)
    s = turns.TurnSettings(ModelId("anthropic", "claude-haiku-4-5"), params=Params(temperature=0.7))
    drain(turns.send(ctx(store, anthropic_provider), cid, "hi", s))
    assert "temperature" not in fake_provider.events("request")[-1]["body"]
    assert store.messages(cid)[-1]["settings"]["temperature"] is None


def test_a_turn_abandoned_before_it_streams_still_leaves_streaming_and_costs_nothing(store, openai_provider,
                                                                                     fake_provider):
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider), cid, "hi", settings())
    with pytest.raises(KeyboardInterrupt), turn.running():
        raise KeyboardInterrupt  # e.g. a Stop landing while the page draws the history
    reply = store.messages(cid)[-1]
    assert reply["status"] == "stopped" and reply["cost"] == 0
    assert store.get_conversation(cid)["unknown_cost_count"] == 0
    assert not fake_provider.events("request")


def test_a_reply_that_brings_no_text_fails_as_timed_out_even_if_the_connection_stays_open(store, anthropic_provider,
                                                                                          fake_provider):
    fake_provider.set_scenario(None, words=30, stall_after=3)  # the SDK's own read timeout here is 5 s
    cid = new_conversation(store)
    turn = turns.send(ctx(store, anthropic_provider, idle_timeout=0.5), cid, "hi",
                      settings("anthropic", "claude-haiku-4-5"))
    started = time.monotonic()
    with pytest.raises(StreamError, match="no text for"):
        drain(turn)
    assert time.monotonic() - started < 3
    fake_provider.wait_for("disconnect", timeout=2)
    reply = store.messages(cid)[-1]
    assert reply["status"] == "error" and len(reply["content"].split()) == 3


def test_a_silent_reply_keeps_its_row_fresh_so_it_is_not_taken_for_a_crashed_one(store, openai_provider,
                                                                                 fake_provider, tmp_path):
    fake_provider.set_scenario(None, first_token_delay=1.5)
    cid = new_conversation(store)
    turn = turns.send(ctx(store, openai_provider), cid, "hi", settings())
    gen = turn.stream(checkpoint_every=0.2)
    before = store.messages(cid)[-1]["updated_at"]
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert next(gen) == ""
    assert store.messages(cid)[-1]["updated_at"] > before
    gen.close()


@pytest.mark.parametrize("knobs", [{"first_token_delay": 5}, {"words": 30, "stall_after": 3}],
                         ids=["thinking before the first token", "stalled mid-reply"])
@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
def test_a_stop_while_the_provider_is_silent_hangs_up_at_once(store, request, fake_provider, knobs, provider_name):
    provider = request.getfixturevalue(f"{provider_name}_provider")
    fake_provider.set_scenario(None, **knobs)
    cid = new_conversation(store)
    model = "gpt-4o-mini" if provider_name == "openai" else "claude-haiku-4-5"
    turn = turns.send(ctx(store, provider), cid, "hi", settings(provider_name, model))
    gen = turn.stream(flush_every=0.0)
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        next(gen)
    closed_at = time.monotonic()
    gen.close()
    disconnect = fake_provider.wait_for("disconnect", timeout=2)
    assert disconnect["t"] - closed_at < 0.5
    assert store.messages(cid)[-1]["status"] == "stopped"

