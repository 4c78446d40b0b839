"""The chat page under Streamlit's AppTest, talking to the fake provider over HTTP."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chat import turns
from chat.compare.runs import start_run, stream_all
from chat.store import open_store

APP = "../app.py"


def run_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def open_cid(at: AppTest) -> str | None:
    value = at.query_params.get("c")
    return value[0] if isinstance(value, list) else value


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    return at


def test_sending_a_message_streams_stores_and_shows_the_figures_line(app_env, fake_provider):
    at = send(run_app(), "Hello page")
    user, reply = at.chat_message
    assert user.markdown[0].value == "Hello page"
    assert reply.markdown[0].value.startswith("Echo: Hello page")
    line = reply.caption[-1].value
    assert line.startswith("gpt-4o-mini · 2 in · 20 out · $")
    assert "to first token" in line
    rows = open_store(app_env).messages(open_cid(at))
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assert rows[1]["status"] == "complete" and rows[1]["cost"] > 0 and rows[1]["output_tokens"] == 20


def test_the_conversation_total_is_shown_in_the_sidebar(app_env, fake_provider):
    at = send(send(run_app(), "one"), "two")
    totals = [c.value for c in at.sidebar.caption if c.value.startswith("This chat:")]
    assert totals and "tokens" in totals[0] and "$" in totals[0]


def test_a_conversation_link_restores_the_whole_conversation(app_env, fake_provider):
    at = send(run_app(), "remember me")
    cid = open_cid(at)
    again = run_app(c=cid)
    assert [m.markdown[0].value for m in again.chat_message][0] == "remember me"
    assert "20 out" in again.chat_message[1].caption[-1].value


def test_an_unknown_conversation_id_shows_not_found(app_env):
    at = run_app(c="does-not-exist")
    assert any("not found" in w.value for w in at.warning)
    assert not at.chat_message


def test_someone_elses_conversation_shows_not_found(app_env):
    cid = open_store(app_env).create_conversation(user="someone-else", settings={})
    at = run_app(c=cid)
    assert any("not found" in w.value for w in at.warning)


def test_new_chat_starts_an_empty_conversation(app_env, fake_provider):
    at = send(run_app(), "first chat")
    at.sidebar.button[0].click().run()
    assert not at.chat_message
    assert open_cid(at) is None
    send(at, "second chat")
    assert len(open_store(app_env).chat_list("local")) == 2


def test_switching_conversations_from_the_recent_list(app_env, fake_provider):
    at = send(run_app(), "alpha question")
    at.sidebar.button[0].click().run()
    send(at, "beta question")
    alpha = next(b for b in at.sidebar.button if b.label.startswith("alpha"))
    alpha.click().run()
    assert at.chat_message[0].markdown[0].value == "alpha question"


def test_empty_or_whitespace_input_does_nothing(app_env, fake_provider):
    at = send(run_app(), "   \n ")
    assert not at.chat_message
    assert not fake_provider.events("request")


def test_no_configured_provider_shows_the_setup_card(bare_env):
    at = run_app()
    assert not at.exception
    assert at.title[0].value == "Set up a provider"
    assert not at.chat_input


def test_the_system_prompt_and_model_are_recorded_on_each_reply(app_env, fake_provider):
    at = run_app()
    at.sidebar.text_area(key="system").set_value("Answer in French.")
    send(at, "hi")
    at.sidebar.selectbox(key="model").set_value("anthropic:claude-haiku-4-5")
    send(at, "again")
    rows = open_store(app_env).messages(open_cid(at))
    assert rows[1]["settings"]["system"] == "Answer in French." and rows[1]["model"] == "gpt-4o-mini"
    assert rows[3]["model"] == "claude-haiku-4-5" and rows[3]["provider"] == "anthropic"
    assert fake_provider.events("request")[-1]["body"]["system"] == "Answer in French."


FAULTS = [
    ({"api_key": "another-key"}, "rejected the API key"),
    ({"status": 403}, "not allowed"),
    ({"status": 404}, "does not know this model"),
    ({"status": 429, "retry_after": "7"}, "Wait about 7 s"),
    ({"status": 429}, "rate-limiting"),
    ({"status": 500}, "returned an error"),
    ({"status": 503}, "overloaded"),
    ({"status": 529}, "overloaded"),
    ({"context_too_long": True}, "too long"),
    ({"first_token_delay": 3}, "took too long"),
    ({"headers_delay": 3}, "took too long"),
    ({"words": 30, "error_after": 5}, "partial text is kept"),
    ({"words": 30, "drop_after": 5}, "partial text is kept"),
    ({"words": 30, "stall_after": 5}, "partial text is kept"),
]


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"])
@pytest.mark.parametrize(("knobs", "expected"), FAULTS, ids=[str(f[0]) for f in FAULTS])
def test_each_provider_fault_is_shown_as_a_clear_message_and_loses_nothing(app_env, monkeypatch, fake_provider,
                                                                            knobs, expected, model):
    monkeypatch.setenv("CHAT_TIMEOUT", "1")
    monkeypatch.setenv("CHAT_FIRST_TOKEN_TIMEOUT", "1")  # the wait before the first output has its own limit
    st.cache_resource.clear()
    at = run_app()
    at.sidebar.selectbox(key="model").set_value(model)
    fake_provider.set_scenario(None, **knobs)
    send(at, "hello")
    assert at.chat_message[0].markdown[0].value == "hello"
    errors = [e.value for e in at.chat_message[1].error]
    assert errors and expected in errors[0], errors
    rows = open_store(app_env).messages(open_cid(at))
    assert rows[0]["content"] == "hello" and rows[1]["status"] == "error"
    if knobs.get("words"):  # broke after 5 chunks: the partial reply is kept, on screen and stored
        assert rows[1]["content"].startswith("Echo: hello") and len(rows[1]["content"].split()) == 5
        assert at.chat_message[1].markdown[0].value == rows[1]["content"]
    # One click retries, and the app takes the next message.
    fake_provider.reset()
    next(b for b in at.button if b.label == "Retry").click().run()
    assert not at.exception
    assert at.chat_message[1].markdown[0].value.startswith("Echo: hello")
    assert not at.chat_message[1].error
    send(at, "and next")
    assert at.chat_message[-1].markdown[0].value.startswith("Echo: and next")


def test_an_unreachable_server_is_explained(app_env, monkeypatch, fake_provider):
    monkeypatch.setenv("CHAT_ENDPOINTS", '{"local": {"base_url": "http://127.0.0.1:9/v1", "models": ["m"]}}')
    st.cache_resource.clear()
    at = run_app()
    at.sidebar.selectbox(key="model").set_value("local:m")
    send(at, "hello")
    errors = [e.value for e in at.chat_message[1].error]
    assert errors and "connection" in errors[0].lower()


def test_regenerate_replaces_the_last_reply(app_env, fake_provider):
    at = send(run_app(), "hi")
    fake_provider.set_scenario(None, text="A different answer")
    next(b for b in at.button if b.label == "Regenerate").click().run()
    assert len(at.chat_message) == 2
    assert at.chat_message[1].markdown[0].value == "A different answer"


def test_editing_the_last_message_resends_it(app_env, fake_provider):
    at = send(run_app(), "helo")
    cid = open_cid(at)
    last_user = open_store(app_env).messages(cid)[0]
    at.text_area(key=f"edit-{last_user['id']}").set_value("hello")
    next(b for b in at.button if b.label == "Resend").click().run()
    assert [m.markdown[0].value for m in at.chat_message][0] == "hello"
    assert at.chat_message[1].markdown[0].value.startswith("Echo: hello")


def test_html_in_messages_is_not_rendered_as_html(app_env, fake_provider):
    fake_provider.set_scenario(None, text="<script>alert(1)</script> done")
    at = send(run_app(), "<b>bold?</b>")
    # st.markdown escapes HTML unless unsafe_allow_html is set; the page never sets it.
    assert all(not m.allow_html for msg in at.chat_message for m in msg.markdown)


def test_a_very_long_message_and_reply_are_shown_whole_and_stored_whole(app_env, fake_provider):
    long = "word " * 20_000
    fake_provider.set_scenario(None, text="reply " * 10_000 + "THE-LAST-WORD")
    at = send(run_app(), long)
    assert at.chat_message[0].markdown[0].value == long.strip()
    assert at.chat_message[1].markdown[0].value.endswith("THE-LAST-WORD")
    rows = open_store(app_env).messages(open_cid(at))
    assert rows[0]["content"] == long and rows[1]["content"].endswith("THE-LAST-WORD")


def test_a_long_conversation_opens_on_its_latest_messages_with_earlier_ones_a_click_away(app_env):
    store = open_store(app_env)
    cid = store.create_conversation(user="local", settings={})
    for i in range(50):
        store.add_user_message(cid, f"question {i}")
        reply = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
        store.finish_reply(reply, content=f"answer {i}", status="complete", usage=None, cost=None)
    at = run_app(c=cid)
    assert len(at.chat_message) == 60
    assert at.chat_message[-1].markdown[0].value == "answer 49"
    more = next(b for b in at.button if b.label.startswith("Show 40 earlier messages"))
    more.click().run()
    assert len(at.chat_message) == 100
    assert at.chat_message[0].markdown[0].value == "question 0"


def test_temperature_is_sent_where_the_provider_takes_it_and_not_recorded_where_it_does_not(app_env, fake_provider):
    at = run_app()
    at.sidebar.number_input(key="temperature").set_value(0.3)
    send(at, "warm")
    assert fake_provider.events("request")[-1]["body"]["temperature"] == 0.3
    at.sidebar.selectbox(key="model").set_value("anthropic:claude-haiku-4-5").run()
    assert at.sidebar.number_input(key="temperature").disabled
    send(at, "cold")
    assert "temperature" not in fake_provider.events("request")[-1]["body"]
    assert open_store(app_env).messages(open_cid(at))[-1]["settings"]["temperature"] is None


def test_a_remote_image_in_model_output_is_shown_as_text(app_env, fake_provider):
    fake_provider.set_scenario(None, text="Here ![pixel](https://tracker.example/p.png) done")
    at = send(run_app(), "hi")
    shown = at.chat_message[1].markdown[0].value
    assert "![" not in shown and "tracker.example" in shown
    stored = open_store(app_env).messages(open_cid(at))[1]["content"]
    assert stored == "Here ![pixel](https://tracker.example/p.png) done"


@pytest.mark.parametrize("text", [
    "a\x00b\x07c", "שלום עולם مرحبا", "👩‍👩‍👧 e\u0301 ZA̡͊͠͝LGΌ",
    "'; DROP TABLE messages; --",
])
def test_odd_input_is_stored_and_shown_as_typed(app_env, fake_provider, text):
    at = send(run_app(), text)
    rows = open_store(app_env).messages(open_cid(at))
    assert rows[0]["content"] == text
    assert rows[1]["content"].startswith("Echo:") and rows[1]["status"] == "complete"


def test_an_unusable_database_path_gives_a_clear_message(bare_env, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CHAT_DB", str(blocker / "chat.db"))
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    st.cache_resource.clear()
    at = run_app()
    assert not at.exception
    assert at.error and str(blocker) in at.error[0].value


def test_a_corrupt_database_file_gives_a_clear_message_and_is_left_untouched(bare_env, monkeypatch):
    bare_env.write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    st.cache_resource.clear()
    at = run_app()
    assert not at.exception
    assert at.error and "database" in at.error[0].value.lower()
    assert bare_env.read_bytes() == b"this is not sqlite" * 100


def test_a_database_from_a_newer_version_is_refused_clearly(bare_env, monkeypatch):
    import sqlite3

    open_store(bare_env).close()
    con = sqlite3.connect(bare_env)
    con.execute("insert into _migrations (name, applied_at) values ('m999_from_the_future', '2030-01-01')")
    con.commit()
    con.close()
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    st.cache_resource.clear()
    at = run_app()
    assert not at.exception
    assert at.error and "newer" in at.error[0].value.lower()


def test_every_earlier_turn_is_sent_while_it_fits_the_models_context_window(app_env, fake_provider):
    at = run_app()
    for i in range(4):
        send(at, f"question {i}: " + "a fairly long sentence with many words in it " * 10)
    assert len(fake_provider.sent_messages()) == 7  # three full turns and the new question: nothing left out
    assert not any("left out" in c.value for m in at.chat_message for c in m.caption)


def test_a_conversation_too_long_for_a_small_window_drops_its_oldest_turns_with_a_notice(app_env, monkeypatch,
                                                                                        fake_provider):
    endpoint = {"tiny": {"base_url": fake_provider.url + "/v1", "api_key": "test-key", "models": ["m"],
                         "context_window": 4096 + 300}}
    monkeypatch.setenv("CHAT_ENDPOINTS", __import__("json").dumps(endpoint))
    st.cache_resource.clear()
    at = run_app()
    at.sidebar.selectbox(key="model").set_value("tiny:m")
    for i in range(4):
        send(at, f"question {i}: " + "word " * 60)
    sent = fake_provider.events("request")[-1]["body"]["messages"]
    assert sent[-1]["content"].startswith("question 3") and len(sent) < 7
    assert any("left out of this request" in c.value for c in at.chat_message[-1].caption)


def test_a_malformed_price_override_gives_a_clear_message(app_env, monkeypatch):
    monkeypatch.setenv("CHAT_PRICES", '{"openai:gpt-4o-mini": {"input_mtok": "cheap"}}')
    st.cache_resource.clear()
    at = run_app()
    assert not at.exception
    assert at.error and "price configuration" in at.error[0].value


# ---------------------------------------------------------------- how a reply ended, on the page


def test_a_reply_that_ends_before_the_provider_finished_it_is_marked_unfinished_with_retry(app_env, fake_provider):
    fake_provider.set_scenario(None, words=30, end_after=6)
    at = send(run_app(), "hello")
    bubble = at.chat_message[1]
    assert bubble.markdown[0].value.startswith("Echo: hello") and len(bubble.markdown[0].value.split()) == 6
    assert any("ended before the provider finished it" in w.value for w in bubble.warning)
    assert "unfinished" in bubble.caption[-1].value and "≈" in bubble.caption[-1].value
    assert open_store(app_env).messages(open_cid(at))[1]["status"] == "unfinished"
    fake_provider.reset()
    next(b for b in at.button if b.label == "Retry").click().run()
    assert not at.exception and not at.chat_message[1].warning
    assert open_store(app_env).messages(open_cid(at))[1]["status"] == "complete"


def test_a_reply_cut_at_the_output_limit_says_so_and_continue_asks_the_model_to_go_on(app_env, fake_provider):
    fake_provider.set_scenario(None, words=30)
    at = run_app()
    at.sidebar.number_input(key="max_tokens").set_value(5)
    send(at, "tell me a long story")
    bubble = at.chat_message[1]
    assert any("reached its output limit" in i.value for i in bubble.info)
    assert "cut at the output limit" in bubble.caption[-1].value
    assert not any(b.label == "Retry" for b in at.button)
    next(b for b in at.button if b.label == "Continue").click().run()
    assert not at.exception
    assert at.chat_message[2].markdown[0].value == turns.CONTINUE_PROMPT
    sent = fake_provider.sent_messages()  # OpenAI itself: the Responses API's input
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]


def test_a_tool_call_without_text_is_never_an_empty_bubble(app_env, fake_provider):
    fake_provider.set_scenario(None, text="", tool_call={"name": "get_weather", "arguments": {"city": "Oslo"}})
    at = send(run_app(), "weather in Oslo?")
    bubble = at.chat_message[1]
    assert [i.value for i in bubble.info] == [
        "The model asked to use the tool get\\_weather; tools are not enabled here."]
    assert "tool call not run" in bubble.caption[-1].value
    fake_provider.reset()
    send(at, "just guess then")
    assert at.chat_message[-1].markdown[0].value.startswith("Echo:")


def test_a_server_that_answers_200_with_an_error_object_is_shown_in_its_own_words(app_env, fake_provider):
    fake_provider.set_scenario(None, body="json_error", error_message="model 'llama9' not found")
    at = send(run_app(), "hello")
    errors = [e.value for e in at.chat_message[1].error]
    assert errors == ["OpenAI answered with an error: model 'llama9' not found"]
    assert any(b.label == "Retry" for b in at.button)


# ---------------------------------------------------------------- what a daily user expects (issue 19)


def sidebar_chats(at: AppTest) -> list[str]:
    return [b.label for b in at.sidebar.button if (b.key or "").startswith(("open-", "found-"))]


def test_a_long_first_message_titles_the_chat_cut_at_a_word_boundary(app_env, fake_provider):
    at = send(run_app(), "Please explain how the garbage collector decides when to run a full collection")
    (label,) = sidebar_chats(at)
    assert label == "Please explain how the garbage…"


def test_a_chat_is_renamed_from_the_sidebar_and_the_popover_closes(app_env, fake_provider):
    at = send(run_app(), "first words")
    cid = open_cid(at)
    at.sidebar.text_input(key=f"title-{cid}").set_value("  My *plan*  for Q3 ")
    at.sidebar.button(key="rename_save").click().run()
    assert open_store(app_env).get_conversation(cid)["title"] == "My *plan* for Q3"
    assert sidebar_chats(at) == ["My \\*plan\\* for Q3"]  # escaped: shown as typed
    assert at.session_state["rename_open"] is False


def test_the_sidebar_search_finds_the_users_own_chats_only(app_env, fake_provider):
    store = open_store(app_env)
    theirs = store.create_conversation(user="someone-else")
    store.add_user_message(theirs, "kubernetes secrets rotation")
    at = send(run_app(), "kubernetes ingress question")
    at.sidebar.button[0].click().run()
    send(at, "a recipe for bread")
    at.sidebar.text_input(key="chat_search").set_value("kubernetes").run()
    assert sidebar_chats(at) == ["kubernetes ingress question"]
    assert any("1 chat found" in c.value for c in at.sidebar.caption)
    at.sidebar.text_input(key="chat_search").set_value("").run()
    assert sidebar_chats(at) == ["a recipe for bread", "kubernetes ingress question"]


def test_deleting_a_chat_from_the_sidebar_can_be_undone(app_env, fake_provider):
    at = send(run_app(), "keep me after all")
    cid = open_cid(at)
    at.sidebar.button(key="delete_chat").click().run()
    assert open_cid(at) is None and not at.chat_message
    assert open_store(app_env).get_conversation(cid) is None  # soft-deleted
    assert any("Deleted keep me after all" in c.value for c in at.sidebar.caption)
    assert sidebar_chats(at) == []
    at.sidebar.button(key="undo_delete").click().run()
    assert open_cid(at) == cid and at.chat_message[0].markdown[0].value == "keep me after all"
    assert sidebar_chats(at) == ["keep me after all"]


def test_a_compare_column_continued_as_a_chat_is_listed_in_recent(app_env, fake_provider):
    from chat.config import load_settings
    from chat.pricing import Pricer
    from chat.providers import build_providers

    store = open_store(app_env)
    providers = build_providers(load_settings())
    live = start_run(turns.TurnContexts(store, providers, Pricer(), user="local"), "compare this prompt",
                     [turns.TurnSettings.parse("openai:gpt-4o-mini"),
                      turns.TurnSettings.parse("anthropic:claude-haiku-4-5")])
    stream_all(live)
    continued = live.columns[0].conversation_id
    at = run_app()
    assert sidebar_chats(at) == []  # compared only: not a chat yet
    at = run_app(c=continued)
    send(at, "and a follow-up")
    assert sidebar_chats(at) == ["compare this prompt"]


def copy_buttons(message) -> list:
    return [e for e in message.children.values() if getattr(e, "type", None) == "bidi_component"]


def test_every_reply_has_one_copy_button_carrying_its_markdown(app_env, fake_provider):
    import json

    fake_provider.set_scenario(None, text="# Title\n\n- **bold** item\n\n```py\nx = 1\n```")
    at = send(run_app(), "give me markdown")
    user, reply = at.chat_message
    assert copy_buttons(user) == []
    (button,) = [e for e in reply.get("bidi_component")]
    assert button.proto.component_name == "chat_copy_markdown"
    assert json.loads(button.proto.json) == "# Title\n\n- **bold** item\n\n```py\nx = 1\n```"
    assert "innerHTML" not in button.proto.js_content  # the text only ever goes to the clipboard


def test_each_message_shows_when_it_was_sent(app_env, fake_provider):
    import re

    at = send(run_app(), "what time is it")
    user, reply = at.chat_message
    assert re.fullmatch(r"Sent \d\d:\d\d UTC", user.markdown[0].help)
    assert re.search(r" · \d\d:\d\d UTC$", reply.caption[-1].value)


def test_resend_closes_the_edit_popover(app_env, fake_provider):
    at = send(run_app(), "helo")
    last_user = open_store(app_env).messages(open_cid(at))[0]
    key = f"edit-{last_user['id']}"
    at.session_state[f"{key}-open"] = True  # as a click on Edit leaves it
    at.text_area(key=key).set_value("hello")
    next(b for b in at.button if b.label == "Resend").click().run()
    assert at.session_state[f"{key}-open"] is False
    assert at.chat_message[1].markdown[0].value.startswith("Echo: hello")


def test_regenerate_keeps_the_earlier_reply_a_click_away_and_the_one_shown_is_sent_next(app_env, fake_provider):
    fake_provider.set_scenario(None, text="First answer")
    at = send(run_app(), "hi")
    fake_provider.set_scenario(None, text="Second answer")
    next(b for b in at.button if b.label == "Regenerate").click().run()
    assert at.chat_message[1].markdown[0].value == "Second answer"
    assert "2 / 2" in [c.value for c in at.caption]
    assert at.button(key="version_next").disabled
    at.button(key="version_previous").click().run()
    assert [m.markdown[0].value for m in at.chat_message] == ["hi", "First answer"]
    assert "1 / 2" in [c.value for c in at.caption] and at.button(key="version_previous").disabled
    fake_provider.set_scenario(None, text="Third")
    send(at, "go on")
    sent = [m["content"] for m in fake_provider.sent_messages()]
    assert [c if isinstance(c, str) else c[0]["text"] for c in sent] == ["hi", "First answer", "go on"]  # shown
    totals = open_store(app_env).get_conversation(open_cid(at))
    assert totals["reply_count"] == 3  # the hidden version still counts in what the chat cost


def test_the_cost_of_the_next_send_is_shown_under_the_input_and_follows_the_model(app_env, fake_provider):
    at = run_app()
    line = at.caption[-1].value
    assert line.startswith("Next send to openai\\:gpt\\-4o\\-mini: ≈3 tokens of this chat + your message")
    assert "up to ≈$0.0025 with a reply of 4,096 tokens" in line  # 4,096 × $0.60/M output
    send(at, "a question " * 50)
    grown = at.caption[-1].value
    counted = int(__import__("re").search(r"≈([\d,]+) tokens of this chat", grown)[1].replace(",", ""))
    assert counted > 100  # the 100-word question and its reply now go with the next message
    at.sidebar.selectbox(key="model").set_value("anthropic:claude-haiku-4-5")
    at.sidebar.number_input(key="max_tokens").set_value(1000).run()
    switched = at.caption[-1].value
    assert switched.startswith("Next send to anthropic\\:claude\\-haiku\\-4\\-5:")
    assert "with a reply of 1,000 tokens" in switched


def test_the_next_send_of_a_model_without_a_price_says_its_cost_is_unknown(app_env, monkeypatch, fake_provider):
    monkeypatch.setenv("CHAT_ENDPOINTS", '{"local": {"base_url": "' + fake_provider.url + '/v1", "models": ["m"]}}')
    st.cache_resource.clear()
    at = run_app()
    at.sidebar.selectbox(key="model").set_value("local:m").run()
    assert at.caption[-1].value.endswith("cost unknown (no price for this model).")


def test_a_long_anthropic_chat_reads_its_prefix_from_the_cache_and_says_what_that_saved(app_env, fake_provider):
    at = run_app()
    at.sidebar.selectbox(key="model").set_value("anthropic:claude-haiku-4-5")
    send(at, "Read this: " + "word " * 1000)
    assert "cache_control" not in fake_provider.last_request["body"]  # a first turn: nothing to reuse yet
    send(at, "Summarise it")
    assert fake_provider.last_request["body"]["cache_control"] == {"type": "ephemeral"}
    written = at.chat_message[-1].caption[-1].value
    assert "to cache" in written and "caching cost $" in written and "more" in written  # the write costs 1.25×
    send(at, "Shorter")
    line = at.chat_message[-1].caption[-1].value
    rows = open_store(app_env).messages(open_cid(at))
    assert rows[-1]["cache_read_tokens"] > 1000 and rows[-1]["cache_saved"] > 0
    assert f"{rows[-1]['cache_read_tokens']:,} from cache" in line and "caching saved $" in line
    # the price difference on claude-haiku-4-5: a read is $0.10/M instead of $1/M, a write $1.25/M
    read, write = rows[-1]["cache_read_tokens"], rows[-1]["cache_write_tokens"]
    assert rows[-1]["cache_saved"] == pytest.approx(read * 0.9e-6 - write * 0.25e-6)


def test_openais_automatic_cache_reads_are_shown_the_same_way(app_env, fake_provider):
    fake_provider.set_scenario(None, prompt_cache="auto")
    at = send(run_app(), "a long question " * 100)
    send(at, "and again")
    rows = open_store(app_env).messages(open_cid(at))
    assert rows[-1]["cache_read_tokens"] == 300 and rows[-1]["cache_write_tokens"] == 0
    line = at.chat_message[-1].caption[-1].value
    assert "300 from cache" in line and "caching saved $" in line
