from datetime import UTC, datetime

import pytest

from chat import turns
from chat.config import ModelId
from chat.identity import LOCAL_USER, NotSignedIn, Viewer, resolve_viewer
from chat.limits import SpendLimitReached, budget, start_of_day
from chat.pricing import Pricer
from chat.providers.base import Params, Usage
from chat.providers.openai import OpenAIProvider
from chat.store import open_store


def test_without_an_identity_mode_everyone_is_the_one_local_user():
    assert resolve_viewer("none", headers={"X-Forwarded-Email": "mallory@x.com"}) == Viewer(LOCAL_USER)


def test_the_proxy_header_names_the_user_only_in_header_mode():
    viewer = resolve_viewer("header", headers={"x-forwarded-email": "Alice@Example.com"})
    assert viewer.user == "alice@example.com" and not viewer.analyst
    assert resolve_viewer("header", headers={"X-Auth-User": "bob"}, header_name="X-Auth-User").user == "bob"


@pytest.mark.parametrize("headers", [{}, {"X-Forwarded-Email": "  "}, {"X-Other": "alice"}])
def test_header_mode_without_the_header_signs_nobody_in(headers):
    with pytest.raises(NotSignedIn, match="X-Forwarded-Email"):
        resolve_viewer("header", headers=headers)


def test_oidc_mode_takes_the_login_email_and_requires_one():
    assert resolve_viewer("oidc", oidc_email="Carol@x.com").user == "carol@x.com"
    with pytest.raises(NotSignedIn):
        resolve_viewer("oidc", oidc_email=None)


def test_analysts_see_everyone_but_change_only_their_own():
    analyst = resolve_viewer("header", headers={"X-Forwarded-Email": "ann@x.com"}, analysts=frozenset({"ann@x.com"}))
    assert analyst.analyst and analyst.scope is None
    assert not analyst.can_change("bob@x.com")
    user = Viewer("bob@x.com")
    assert user.scope == "bob@x.com" and not user.can_change("ann@x.com") and user.can_change("bob@x.com")


def reply(store, user, cost):
    cid = store.create_conversation(user=user)
    store.add_user_message(cid, "q")
    mid = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
    store.finish_reply(mid, content="a", status="complete", usage=Usage(10, 10, input_exact=True,
                                                                         output_exact=True), cost=cost)


def test_the_days_spend_counts_a_users_replies_of_today_only(tmp_path):
    store = open_store(tmp_path / "chat.db")
    reply(store, "alice", 0.25)
    reply(store, "alice", 0.5)
    reply(store, "alice", None)
    reply(store, "bob", 9.0)
    assert store.spend_since("alice", start_of_day()) == (pytest.approx(0.75), 0.0)
    tomorrow = datetime(2999, 1, 1, tzinfo=UTC)
    assert store.spend_since("alice", start_of_day(tomorrow)) == (0.0, 0.0)


def test_a_turn_past_the_daily_limit_is_refused_with_the_days_spend_and_nothing_is_sent(tmp_path, fake_provider,
                                                                                       openai_client):
    store = open_store(tmp_path / "chat.db")
    reply(store, "alice", 1.5)
    bobs = store.create_conversation(user="bob")
    assert store.start_reply_within(bobs, provider="openai", model="gpt-4o-mini",
                                    budget=budget("bob", 1.0)).admitted  # someone else's spend does not count

    cid = store.create_conversation(user="alice")
    provider = OpenAIProvider(name="openai", client=openai_client)
    settings = turns.TurnSettings(ModelId("openai", "gpt-4o-mini"), params=Params())
    turn = turns.send(turns.TurnContext(store, provider, Pricer(), user="alice", daily_limit=1.0), cid, "one more?",
                      settings)
    with pytest.raises(SpendLimitReached) as caught:
        list(turn.stream())
    assert "$1.50" in caught.value.hint and "$1.00" in caught.value.hint
    assert not fake_provider.events("request")
    rows = store.messages(cid)
    assert rows[0]["content"] == "one more?" and rows[1]["status"] == "error" and "$1.50" in rows[1]["error"]


def test_header_mode_refuses_a_header_sent_twice_as_streamlit_shows_it():
    from streamlit.runtime.context import StreamlitHeaders

    twice = StreamlitHeaders([("X-Forwarded-Email", "mallory@x.com"), ("x-forwarded-email", "alice@x.com")])
    assert twice["X-Forwarded-Email"] == "mallory@x.com"  # what a plain lookup would have believed
    with pytest.raises(NotSignedIn, match="more than once"):
        resolve_viewer("header", headers=twice)
    once = StreamlitHeaders([("X-Forwarded-Email", "alice@x.com"), ("X-Other", "x")])
    assert resolve_viewer("header", headers=once).user == "alice@x.com"


@pytest.mark.parametrize("headers", [
    {"X-Forwarded-Email": "mallory@x.com, alice@x.com"},  # copies joined by a proxy or a framework
    {"X-Forwarded-Email": "alice@x.com", "x-forwarded-email": "mallory@x.com"},  # two keys in a plain mapping
    {"X-Forwarded-Email": ",alice@x.com"},
])
def test_header_mode_refuses_joined_or_repeated_values(headers):
    with pytest.raises(NotSignedIn, match="more than once"):
        resolve_viewer("header", headers=headers)
