"""Live replies: a reply runs on its own thread, owned by its conversation; pages only follow it. Real SDK,
real HTTP to the fake provider, a real SQLite file."""

from __future__ import annotations

import threading
import time

import pytest

from chat import live, turns
from chat.config import ModelId
from chat.pricing import Pricer
from chat.providers.base import Params
from chat.providers.openai import OpenAIProvider

SETTINGS = turns.TurnSettings(ModelId("openai", "gpt-4o-mini"), params=Params())


@pytest.fixture
def provider(openai_client):
    return OpenAIProvider(name="openai", client=openai_client, label="OpenAI")


@pytest.fixture
def registry():
    return live.Registry()


def start(store, provider, registry, prompt="hello", conversation=None):
    conversation = conversation or store.create_conversation(user="alice", settings={})
    turn = turns.send(turns.TurnContext(store, provider, Pricer()), conversation, prompt, SETTINGS)
    return registry.start(turn), conversation


def test_a_reply_nobody_follows_still_finishes_and_is_stored_complete(store, provider, registry, fake_provider):
    fake_provider.set_scenario(None, words=30, tokens_per_second=300)
    reply, conversation = start(store, provider, registry)
    assert reply.wait(10)
    row = store.messages(conversation)[-1]
    assert row["status"] == "complete" and len(row["content"].split()) == 30


def test_a_follower_that_arrives_midway_gets_the_text_so_far_then_the_rest(store, provider, registry,
                                                                           fake_provider):
    fake_provider.set_scenario(None, words=40, tokens_per_second=80)
    reply, conversation = start(store, provider, registry)
    fake_provider.wait_for("chunk", timeout=5, n=10)
    time.sleep(0.1)  # the tenth chunk is logged as it is sent: let it arrive
    followed = list(reply.follow())
    first = next(chunk for chunk in followed if chunk)
    assert len(first.split()) >= 10  # the text so far, at once
    assert "".join(followed) == store.messages(conversation)[-1]["content"]
    assert len(followed) > 2  # and then the rest, as it came


def test_leaving_the_page_does_not_stop_the_reply(store, provider, registry, fake_provider):
    fake_provider.set_scenario(None, words=40, tokens_per_second=100)
    reply, conversation = start(store, provider, registry)
    follower = reply.follow()
    next(follower)
    follower.close()  # the page's run ended: a rerun, another page, a closed tab
    assert reply.wait(10)
    assert store.messages(conversation)[-1]["status"] == "complete"
    assert not fake_provider.events("disconnect")


def test_two_followers_see_the_same_live_text(store, provider, registry, fake_provider):
    fake_provider.set_scenario(None, words=40, tokens_per_second=120)
    reply, conversation = start(store, provider, registry)
    seen: list[str] = ["", ""]

    def follow(i):
        seen[i] = "".join(reply.follow())

    threads = [threading.Thread(target=follow, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen[0] == seen[1] == store.messages(conversation)[-1]["content"]


def test_stop_from_another_thread_closes_the_upstream_and_keeps_the_partial_reply_as_stopped(
        store, provider, registry, fake_provider):
    fake_provider.set_scenario(None, words=400, tokens_per_second=50)
    reply, conversation = start(store, provider, registry)
    fake_provider.wait_for("chunk", timeout=5, n=5)
    reply.stop()
    disconnect = fake_provider.wait_for("disconnect", timeout=5)
    assert disconnect["chunks"] < 400  # cut off, not left to run on
    assert reply.wait(5)
    row = store.messages(conversation)[-1]
    assert row["status"] == "stopped" and row["content"].startswith("Echo: hello")
    assert not row["output_exact"]


def test_a_stop_while_the_provider_is_silent_hangs_up_at_once(store, provider, registry, fake_provider):
    fake_provider.set_scenario(None, first_token_delay=30)
    reply, conversation = start(store, provider, registry)
    fake_provider.wait_for("request", timeout=5)
    time.sleep(0.2)
    reply.stop()
    fake_provider.wait_for("disconnect", timeout=2)
    assert reply.wait(5) and store.messages(conversation)[-1]["status"] == "stopped"


def test_one_reply_at_a_time_per_conversation(store, provider, registry, fake_provider):
    fake_provider.set_scenario(None, words=200, tokens_per_second=50)
    reply, conversation = start(store, provider, registry)
    second = turns.answer(turns.TurnContext(store, provider, Pricer()), conversation, SETTINGS)
    with pytest.raises(live.ReplyInProgress):
        registry.start(second)
    assert store.messages(conversation, include_superseded=True)[-1]["status"] != "streaming"  # not left open
    assert registry.running(conversation) is reply
    reply.stop()
    reply.wait(5)
    assert registry.running(conversation) is None


def test_a_follower_of_a_long_reply_sends_fewer_larger_updates(store, provider, registry, fake_provider):
    fake_provider.set_scenario(None, words=6000, tokens_per_second=5000)
    reply, _ = start(store, provider, registry)
    updates = [chunk for chunk in reply.follow() if chunk]
    assert "".join(updates) == reply.text
    assert len(updates) < 200  # coalesced: not one update per token


def test_a_page_started_reply_is_sent_when_followed_or_after_its_grace_if_nobody_comes(store, provider, registry,
                                                                                      fake_provider):
    fake_provider.set_scenario(None, words=5)
    conversation = store.create_conversation(user="alice", settings={})
    ctx = turns.TurnContext(store, provider, Pricer())
    followed = registry.start(turns.send(ctx, conversation, "one", SETTINGS), grace=30)
    time.sleep(0.3)
    assert not fake_provider.requests  # not sent before a follower arrives
    assert "".join(followed.follow()).startswith("Echo: one")
    other = store.create_conversation(user="alice", settings={})
    unwatched = registry.start(turns.send(ctx, other, "two", SETTINGS), grace=0.2)
    assert unwatched.wait(5)  # nobody came: sent after the grace, and finished
    assert store.messages(other)[-1]["status"] == "complete"


def test_a_reply_stopped_before_it_was_sent_sends_nothing(store, provider, registry, fake_provider):
    conversation = store.create_conversation(user="alice", settings={})
    reply = registry.start(turns.send(turns.TurnContext(store, provider, Pricer()), conversation, "never", SETTINGS),
                           grace=30)
    reply.stop()
    assert reply.wait(5)
    assert store.messages(conversation)[-1]["status"] == "stopped" and not fake_provider.requests
