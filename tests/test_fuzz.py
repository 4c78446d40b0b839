"""Property-based tests (hypothesis) where hostile or odd input meets our own parsing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import turns
from chat.history.search import search
from chat.providers.base import ContextTooLong, Message
from chat.safe_text import InertStream, inert_markdown
from chat.store import Filters, open_store

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@given(st.lists(st.text(alphabet="![]()x!\n", max_size=8), max_size=20))
def test_no_chunking_of_model_output_lets_a_markdown_image_through(chunks):
    guard = InertStream()
    shown = "".join(guard.feed(c) for c in chunks) + guard.flush()
    assert "![" not in shown
    assert shown.replace("\u200b", "") == "".join(chunks)


@given(texts)
def test_making_markdown_inert_keeps_the_visible_text(text):
    assert inert_markdown(text).replace("\u200b", "") == text.replace("\u200b", "")


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("fuzz") / "chat.db")
    cid = store.create_conversation(user="local")
    for text in ["quokka smiles", "the data file", "C++ and C# (and F*)", "emoji 👩‍👩‍👧 and ümlauts"]:
        store.add_user_message(cid, text)
    return store


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts)
def test_any_search_text_returns_results_or_nothing_but_never_an_error(seeded_store, text):
    page = search(seeded_store, text, Filters(user="local"))
    assert page is not None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30),
       st.integers(min_value=200, max_value=3000))
def test_the_context_fit_keeps_the_newest_messages_within_the_window_or_refuses(sizes, window):
    history_ = [Message("user" if i % 2 == 0 else "assistant", "word " * n) for i, n in enumerate(sizes)]
    if history_[-1].role != "user":
        history_.append(Message("user", "last"))
    try:
        kept, dropped = turns.fit_context(history_, model="gpt-4o-mini", system=None, context_window=window,
                                          reserve=100)
    except ContextTooLong:
        return
    assert kept == history_[dropped:]
    assert kept[-1] == history_[-1] and kept[0].role == "user"
