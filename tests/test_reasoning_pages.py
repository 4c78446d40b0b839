"""The Thinking section and the reasoning settings on the pages, under Streamlit's AppTest, talking to the fake
provider over HTTP with the real SDKs."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from chat.compare.views import load_run
from chat.store import open_store

APP = "../app.py"
THOUGHT = "The user says hi. I should greet them back."


def chat_page() -> AppTest:
    """The chat page, run again once the model listings asked in the background have arrived."""
    from ui.resources import catalog

    at = AppTest.from_file(APP, default_timeout=30).run()
    catalog().wait()
    return at.run()


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    return at


def open_cid(at: AppTest) -> str:
    value = at.query_params.get("c")
    return value[0] if isinstance(value, list) else value


def labels(at: AppTest, role: str = "assistant") -> list[str]:
    return [e.label for m in at.chat_message if m.name == role for e in m.expander]


def test_a_reply_that_reasoned_shows_a_collapsed_thinking_section_above_the_answer(app_env, fake_provider):
    fake_provider.set_scenario(None, words=4, reasoning=THOUGHT)
    at = chat_page()
    at.sidebar.selectbox(key="model").set_value("openai:gpt-5-mini")
    send(at, "hi")
    reply = at.chat_message[1]
    (section,) = reply.expander
    assert section.label.startswith("Thought for ") and section.label.endswith(" s")
    assert section.markdown[0].value == THOUGHT
    assert reply.markdown[-1].value == "Echo: hi lorem ipsum"  # the answer, without the thinking
    assert "of them reasoning" in reply.caption[-1].value


def test_a_reply_without_reasoning_has_no_thinking_section(app_env, fake_provider):
    at = send(chat_page(), "hello")
    assert at.chat_message[1].markdown[0].value.startswith("Echo: hello") and labels(at) == []


def test_reasoning_effort_is_offered_only_for_models_that_take_it_and_recorded_on_the_reply(app_env, fake_provider):
    at = chat_page()
    assert not [s for s in at.sidebar.selectbox if s.key == "reasoning_effort"]  # gpt-4o-mini does not reason
    at.sidebar.selectbox(key="model").set_value("openai:gpt-5-mini").run()
    effort = at.sidebar.selectbox(key="reasoning_effort")
    assert effort.value == "model default" and "low" in effort.options
    effort.set_value("low")
    send(at, "think a little")
    assert fake_provider.last_request["body"]["reasoning"] == {"summary": "auto", "effort": "low"}
    assert open_store(app_env).messages(open_cid(at))[-1]["settings"]["reasoning_effort"] == "low"


def test_anthropic_thinking_can_be_turned_on_where_the_models_api_says_the_model_thinks(app_env, fake_provider):
    at = chat_page()
    at.sidebar.selectbox(key="model").set_value("anthropic:claude-haiku-4-5").run()
    assert not [s for s in at.sidebar.selectbox if s.key == "reasoning_effort"]  # the models API: no effort
    at.sidebar.selectbox(key="thinking").set_value("on")
    fake_provider.set_scenario(None, words=3, reasoning=THOUGHT)
    send(at, "think")
    assert fake_provider.last_request["body"]["thinking"] == {"type": "adaptive", "display": "summarized"}
    row = open_store(app_env).messages(open_cid(at))[-1]
    assert row["settings"]["thinking"] == "on" and row["reasoning"] == THOUGHT
    assert labels(at)[0].startswith("Thought for ")


def test_the_picker_offers_what_the_endpoint_serves_and_falls_back_when_it_cannot_say(app_env, fake_provider):
    fake_provider.set_scenario(None, models={"openai": ["gpt-4o-mini", "o4-mini"]})
    assert "openai:o4-mini" in chat_page().sidebar.selectbox(key="model").options
    fake_provider.set_scenario(None, models_status=503)
    __import__("streamlit").cache_resource.clear()
    at = chat_page()
    assert not at.exception and "openai:o4-mini" not in at.sidebar.selectbox(key="model").options
    assert "openai:gpt-4o-mini" in at.sidebar.selectbox(key="model").options


def test_compare_columns_and_history_transcripts_show_the_thinking_section(app_env, fake_provider):
    fake_provider.set_scenario(None, words=3, reasoning=THOUGHT)
    at = AppTest.from_file(APP, default_timeout=30).switch_page("app_pages/compare.py").run()
    at.sidebar.selectbox(key="cmp_model_0").set_value("openai:gpt-5-mini")
    at.sidebar.selectbox(key="cmp_model_1").set_value("anthropic:claude-haiku-4-5")
    at.text_area(key="cmp_prompt").set_value("compare thoughts")
    at.button(key="cmp_run").click().run()
    assert not at.exception
    sections = [e for e in at.expander if e.label.startswith("Thought for ")]
    assert len(sections) == 2 and all(s.markdown[0].value == THOUGHT for s in sections)

    run_id = at.query_params["run"]
    cid = load_run(open_store(app_env), run_id[0] if isinstance(run_id, list) else run_id).columns[0].conversation_id
    history = AppTest.from_file(APP, default_timeout=30).switch_page("app_pages/history.py")
    history.query_params["open"] = cid
    history.run()
    assert not history.exception
    assert [e.label for e in history.chat_message[1].expander][0].startswith("Thought for ")
