"""Spend limits that hold under concurrency: reservations taken with the check, in one transaction. A real
Store file, real SDK clients and the fake provider over HTTP."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from chat import limits, turns
from chat.compare.batch import BatchRun
from chat.compare.runs import start_run, stream_all
from chat.compare.views import load_run
from chat.config import ModelId
from chat.pricing import Pricer
from chat.providers.base import Message, Params, ProviderError, Usage
from chat.providers.openai import OpenAIProvider
from chat.store import Store, open_store

MODEL = "openai:gpt-4o-mini"
MAX_TOKENS = 20  # the fake provider's replies are 20 tokens: a reservation covers the real cost


@pytest.fixture
def store(engine_store):
    """Each test that uses it runs on both engines."""
    return engine_store


@pytest.fixture
def provider(openai_client):
    return OpenAIProvider(name="openai", client=openai_client, label="OpenAI")


def one_reply(prompt: str) -> float:
    """What one reply to ``prompt`` reserves (its likely cost at most)."""
    return limits.likely_cost(Pricer(), "openai", "gpt-4o-mini", [Message("user", prompt)], system=None,
                              max_tokens=MAX_TOKENS)


def settings() -> turns.TurnSettings:
    return turns.TurnSettings(ModelId("openai", "gpt-4o-mini"), params=Params(max_tokens=MAX_TOKENS))


def spent(store, user="alice") -> float:
    """The known cost of the user's replies today."""
    return store.spend_since(user, limits.start_of_day())[0]


def drain(turn: turns.Turn) -> None:
    try:
        for _ in turn.stream(flush_every=0.0):
            pass
    except ProviderError:
        pass  # recorded on the reply


def test_concurrent_turns_against_a_small_limit_end_past_it_by_at_most_one_reply(store, provider, fake_provider):
    fake_provider.set_scenario(tokens_per_second=100)  # every reply is still streaming when the others start
    prompt = "how much is this"
    one = one_reply(prompt)
    limit = 2.5 * one
    conversations = [store.create_conversation(user="alice") for _ in range(8)]
    start = threading.Barrier(len(conversations))
    made: list[turns.Turn] = []

    def user_turn(cid: str) -> None:
        start.wait()
        ctx = turns.TurnContext(store, provider, Pricer(), user="alice", daily_limit=limit)
        turn = turns.send(ctx, cid, prompt, settings())
        made.append(turn)
        drain(turn)

    threads = [threading.Thread(target=user_turn, args=(cid,)) for cid in conversations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fake_provider.events("request")) == 3  # reserved 0, 1 and 2 replies' worth: 3 reaches 2.5
    assert limit <= spent(store) <= limit + one
    refused = [t.record for t in made if t.record["status"] == "error"]
    assert len(refused) == 5 and all("daily limit" in r["error"] for r in refused)
    assert all(r["cost"] == 0 for r in refused)


def test_a_four_target_compare_against_a_small_limit_stops_at_the_limit(store, provider, fake_provider):
    prompt = "compare these"
    one = one_reply(prompt)
    limit = 2.5 * one
    targets = [turns.TurnSettings.parse(MODEL, max_tokens=MAX_TOKENS) for _ in range(4)]
    live = start_run(turns.TurnContexts(store, {"openai": provider}, Pricer(), user="alice", daily_limit=limit),
                     prompt, targets)
    stream_all(live)

    assert len(fake_provider.events("request")) == 3
    assert spent(store) <= limit + one
    view = load_run(store, live.run_id)
    assert [c.reply["status"] for c in view.columns] == ["complete", "complete", "complete", "error"]
    assert "daily limit" in view.columns[3].reply["error"]


def test_a_batch_of_twenty_against_a_small_limit_ends_past_it_by_at_most_one_reply(store, provider, fake_provider):
    fake_provider.set_scenario(tokens_per_second=200)
    prompts = [f"batch prompt {i}" for i in range(20)]
    one = max(one_reply(p) for p in prompts)
    limit = 5.5 * one
    batch = BatchRun(turns.TurnContexts(store, {"openai": provider}, Pricer(), user="alice", daily_limit=limit),
                     prompts, [turns.TurnSettings.parse(MODEL, max_tokens=MAX_TOKENS)], max_in_flight=4)
    for _ in batch.run():
        pass

    sent = len(fake_provider.events("request"))
    assert 6 <= sent < 20
    assert spent(store) <= limit + one
    refused = [r for r in batch.rows if r.status == "error"]
    assert len(refused) == 20 - sent and all("daily limit" in r.error for r in refused)


def test_a_streaming_reply_holds_its_reservation_until_its_real_cost_replaces_it(store, provider, fake_provider):
    fake_provider.set_scenario(tokens_per_second=50)
    cid = store.create_conversation(user="alice")
    ctx = turns.TurnContext(store, provider, Pricer(), user="alice", daily_limit=1.0)
    turn = turns.send(ctx, cid, "reserve for me", settings())
    since = limits.start_of_day()
    reserved = store.messages(cid)[-1]["reserved_cost"]
    assert reserved == pytest.approx(one_reply("reserve for me"))
    assert store.spend_since("alice", since) == (0.0, pytest.approx(reserved))

    drain(turn)
    row = store.messages(cid)[-1]
    assert row["status"] == "complete" and row["reserved_cost"] is None
    assert 0 < row["cost"] <= reserved
    assert store.spend_since("alice", since) == (pytest.approx(row["cost"]), 0.0)


def test_a_crashed_replys_reservation_is_released_when_it_is_marked_interrupted(store, provider):
    cid = store.create_conversation(user="alice")
    store.add_user_message(cid, "then the server died")
    budget = dataclasses.replace(limits.budget("alice", 1.0), reserve=2.0)
    started = store.start_reply_within(cid, provider="openai", model="gpt-4o-mini", budget=budget)
    assert started.admitted
    later = store.create_conversation(user="alice")
    store.add_user_message(later, "and now?")

    def start_another():
        return limits.start_reply(turns.TurnContext(store, provider, Pricer()), later, settings(),
                                  [Message("user", "and now?")], recorded=None, budget=limits.budget("alice", 1.0))

    refused_id, refused = start_another()  # the crashed reply's reservation uses the day up
    assert "still streaming" in refused.hint and "$2.00" in refused.hint
    store.finish_reply(refused_id, content="", status="error", usage=None, cost=None, error=str(refused))

    assert store.mark_interrupted_replies() == 1
    assert store.spend_since("alice", budget.since) == (0.0, 0.0)
    assert store.messages(cid)[-1]["reserved_cost"] is None
    assert start_another()[1] is None


def test_an_unknown_price_reserves_nothing_but_known_costs_still_count(store, provider):
    assert limits.likely_cost(Pricer(), "ollama", "llama3.2", [Message("user", "hi")], system=None,
                              max_tokens=None) == 0
    cid = store.create_conversation(user="alice")
    store.add_user_message(cid, "q")
    first = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
    store.finish_reply(first, content="a", status="complete", usage=Usage(10, 10), cost=0.5)
    message_id, over = limits.start_reply(turns.TurnContext(store, provider, Pricer()), cid,
                                          turns.TurnSettings.parse("ollama:llama3.2"), [Message("user", "q")],
                                          recorded=None, budget=limits.budget("alice", 0.5))
    assert isinstance(over, limits.SpendLimitReached) and over.spent == pytest.approx(0.5)
    assert store.messages(cid)[-1]["id"] == message_id


def test_without_a_limit_nothing_is_reserved(store, provider, fake_provider):
    cid = store.create_conversation(user="alice")
    turns.send(turns.TurnContext(store, provider, Pricer(), user="alice"), cid, "no limit", settings()).stop()
    assert store.messages(cid)[-1]["reserved_cost"] is None


def test_budget_checks_from_two_replicas_at_once_never_both_take_the_last_room(store, store_target):
    """Two Store objects on one database, as two app replicas have: 2 x 12 replies started at once against
    room for 5 reservations; exactly 5 are admitted, whichever replica asked."""
    other = open_store(store_target)
    try:
        budget = dataclasses.replace(limits.budget("alice", 5.0), reserve=1.0)
        conversations = [s.create_conversation(user="alice") for s in (store, other) for _ in range(12)]
        start = threading.Barrier(len(conversations))
        admitted: list[bool] = []

        def begin(replica: Store, cid: str) -> None:
            start.wait()
            admitted.append(replica.start_reply_within(cid, provider="openai", model="gpt-4o-mini",
                                                       budget=budget).admitted)

        threads = [threading.Thread(target=begin, args=(store if i % 2 else other, cid))
                   for i, cid in enumerate(conversations)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(admitted) == [False] * 19 + [True] * 5
        assert store.spend_since("alice", budget.since) == (0.0, 5.0)
    finally:
        other.close()
