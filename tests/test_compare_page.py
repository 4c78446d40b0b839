"""The compare page under Streamlit's AppTest, talking to the in-process fake provider over HTTP."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from chat.compare.batch import batch_rows
from chat.compare.views import load_run
from chat.store import open_store

APP = "../app.py"
ENDS = ("complete", "disconnect", "status_error", "drop", "midstream_error")


def compare_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for k, v in query.items():
        at.query_params[k] = v
    return at.switch_page("app_pages/compare.py").run()  # the first run opens the compare page directly


def choose(at: AppTest, *models: str) -> AppTest:
    at.sidebar.radio(key="cmp_count").set_value(len(models)).run()
    for i, model in enumerate(models):
        at.sidebar.selectbox(key=f"cmp_model_{i}").set_value(model)
    return at


def run(at: AppTest, prompt: str) -> AppTest:
    at.text_area(key="cmp_prompt").set_value(prompt)
    at.button(key="cmp_run").click().run()
    assert not at.exception, at.exception
    return at


def query(at: AppTest, name: str) -> str | None:
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def result_columns(at: AppTest) -> dict[str, object]:
    """label -> the column of that target's reply."""
    out = {}
    for column in at.tabs[0].columns:
        titles = [m.value for m in column.markdown if m.value.startswith("**")]
        if titles:
            out[titles[0].strip("*").split(":")[0]] = column
    return out


def test_the_page_opens_with_a_hint_and_default_targets(app_env):
    at = compare_page()
    assert not at.exception
    assert at.sidebar.selectbox(key="cmp_model_0").value == "openai:gpt-4o-mini"
    assert at.sidebar.selectbox(key="cmp_model_1").value != "openai:gpt-4o-mini"
    assert any("press Run" in c.value for c in at.caption)
    assert at.button(key="cmp_stop").disabled


def test_without_providers_the_page_points_to_the_setup(bare_env):
    at = compare_page()
    assert not at.exception
    assert at.title[0].value == "Set up a provider"


def test_one_prompt_streams_into_every_column_with_figures_summary_and_a_vote(app_env, fake_provider):
    fake_provider.set_scenario("claude-haiku-4-5", words=10)
    at = run(choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"), "Hello columns")
    columns = result_columns(at)
    assert list(columns) == ["A", "B"]
    assert columns["A"].markdown[0].value == "**A: openai:gpt-4o-mini**"
    assert columns["B"].markdown[0].value == "**B: anthropic:claude-haiku-4-5**"
    for label, out in (("A", "20 out"), ("B", "10 out")):
        assert columns[label].markdown[1].value.startswith("Echo: Hello columns")
        figures = columns[label].caption[-1].value
        assert "s to first token" in figures and "s total" in figures and out in figures and "$" in figures
    assert any(m.value.startswith("Fastest first token:") and "Cheapest:" in m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert list(table["Target"]) == ["A", "B"] and list(table["Out"]) == ["20", "10"]
    assert [b.label for b in at.button if b.key and b.key.startswith("cmp_vote_")] == [
        "A is better", "B is better", "Tie", "Both bad"]
    run_id = query(at, "run")
    saved = load_run(open_store(app_env), run_id)
    assert saved.run["prompt"] == "Hello columns" and len(saved.columns) == 2
    assert {c.reply["status"] for c in saved.columns} == {"complete"}
    # the vote is saved and shown
    at.button(key="cmp_vote_B").click().run()
    assert open_store(app_env).get_compare_run(run_id)["vote"] == "B"
    assert at.button(key="cmp_vote_B").proto.type == "primary"
    assert any(c.value == "You voted: B is better." for c in at.caption)


def test_three_columns_stream_at_once(app_env, fake_provider):
    fake_provider.set_scenario("gpt-4o-mini", words=15, tokens_per_second=50)
    fake_provider.set_scenario("claude-haiku-4-5", words=15, tokens_per_second=75)
    fake_provider.set_scenario("gpt-4.1-mini", words=15, tokens_per_second=37)
    at = choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini")
    run(at, "together")
    starts = {e["request"]: e["t"] for e in fake_provider.events("request")}
    ends = {e["request"]: e["t"] for e in fake_provider.log if e["kind"] in ENDS}
    assert len(starts) == len(ends) == 3
    wall = max(ends.values()) - min(starts.values())
    assert wall < 0.75 * sum(ends[r] - starts[r] for r in starts)
    assert len(result_columns(at)) == 3


def test_a_failure_shows_in_its_own_column_only(app_env, fake_provider):
    fake_provider.set_scenario("claude-haiku-4-5", status=529)
    at = run(choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini"),
             "one fails")
    columns = result_columns(at)
    assert [len(columns[k].error) for k in "ABC"] == [0, 1, 0]
    assert "overloaded" in columns["B"].error[0].value
    assert columns["A"].markdown[1].value.startswith("Echo:") and columns["C"].markdown[1].value.startswith("Echo:")
    assert "failed" in columns["B"].caption[-1].value
    assert list(at.dataframe[0].value["Latency rank"]) == ["1", "—", "2"] or \
        list(at.dataframe[0].value["Latency rank"]) == ["2", "—", "1"]


def test_blind_mode_hides_the_models_until_the_vote(app_env, fake_provider):
    fake_provider.set_scenario("claude-haiku-4-5", status=529)  # its error must not name the provider
    at = choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
    at.checkbox(key="cmp_blind").check()
    run(at, "who wrote this?")
    columns = result_columns(at)
    assert [c.markdown[0].value for c in columns.values()] == ["**A: model hidden**", "**B: model hidden**"]
    assert [e.value for e in at.main.error] == ["The provider is overloaded right now. Try again in a minute, "
                                                "or switch model."]
    page_text = " ".join(e.value for e in [*at.main.markdown, *at.main.caption, *at.main.error]).lower()
    assert "openai" not in page_text and "anthropic" not in page_text
    assert not at.dataframe  # the ranking table would give the models away (issue 19): shown after the vote
    assert not [b for b in at.button if b.label == "Continue as chat"]
    page_text = " ".join(e.value for e in [*at.main.markdown, *at.main.caption, *at.main.error])
    assert "gpt-4o-mini" not in page_text and "claude" not in page_text
    at.button(key="cmp_vote_tie").click().run()
    titles = sorted(c.markdown[0].value for c in result_columns(at).values())
    assert any("openai:gpt-4o-mini" in t for t in titles) and any("claude-haiku-4-5" in t for t in titles)
    assert open_store(app_env).get_compare_run(query(at, "run"))["blind"] is True


def test_blind_mode_hides_cost_figures_ranking_and_the_sidebars_targets_until_the_vote(app_env, fake_provider):
    fake_provider.set_scenario("claude-haiku-4-5", words=10)
    at = choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
    at.checkbox(key="cmp_blind").check()
    run(at, "which is which?")
    columns = result_columns(at)
    for column in columns.values():
        figures = column.caption[-1].value
        assert "$" not in figures and "out" not in figures and "first token" not in figures
        assert "hidden until you vote" in figures
    assert not any("Cheapest" in m.value or "Fastest" in m.value for m in at.markdown)
    assert not at.dataframe
    assert not [s for s in at.sidebar.selectbox if (s.key or "").startswith("cmp_model_")]
    assert any("hidden until you vote" in c.value for c in at.sidebar.caption)
    sidebar_text = " ".join(e.value for e in [*at.sidebar.markdown, *at.sidebar.caption, *at.sidebar.expander])
    assert "gpt-4o-mini" not in sidebar_text and "claude" not in sidebar_text
    at.button(key="cmp_vote_A").click().run()
    assert all("$" in c.caption[-1].value and "out" in c.caption[-1].value for c in result_columns(at).values())
    assert any("Cheapest" in m.value for m in at.markdown) and set(at.dataframe[0].value["Model"]) == {
        "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"}
    assert [s.value for s in at.sidebar.selectbox if (s.key or "").startswith("cmp_model_")] == [
        "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]  # the choices were kept while hidden


def test_a_blind_comparisons_per_target_temperatures_look_alike_until_the_vote(app_env, fake_provider):
    """A disabled box would tell the Anthropic target apart from the others while the models are hidden."""
    at = choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
    at.sidebar.toggle(key="cmp_synced").set_value(False).run()
    at.checkbox(key="cmp_blind").check()
    run(at, "which is which?")
    boxes = [at.sidebar.number_input(key=f"cmp_temperature_{i}") for i in range(2)]
    assert [box.disabled for box in boxes] == [False, False]
    at.button(key="cmp_vote_A").click().run()
    assert [at.sidebar.number_input(key=f"cmp_temperature_{i}").disabled for i in range(2)] == [False, True]


def test_parameters_can_be_set_per_target(app_env, fake_provider):
    at = choose(compare_page(), "openai:gpt-4o-mini", "openai:gpt-4o-mini")
    at.sidebar.toggle(key="cmp_synced").set_value(False).run()
    at.sidebar.number_input(key="cmp_temperature_0").set_value(0.0)
    at.sidebar.number_input(key="cmp_temperature_1").set_value(1.5)
    at.sidebar.text_area(key="cmp_system_1").set_value("Answer in French.")
    run(at, "same model twice")
    bodies = sorted((e["body"] for e in fake_provider.events("request")), key=lambda b: b["temperature"])
    assert [b["temperature"] for b in bodies] == [0.0, 1.5]
    assert bodies[1]["instructions"] == "Answer in French."  # OpenAI itself: the Responses API
    assert result_columns(at)["B"].caption[0].value == "temperature 1.5 · system prompt set"


def test_a_targets_temperature_is_fixed_where_its_provider_fixes_it_as_on_the_chat_page(app_env, fake_provider):
    at = choose(compare_page(), "openai:gpt-4o-mini", "openai:gpt-4o-mini")
    at.sidebar.toggle(key="cmp_synced").set_value(False).run()
    at.sidebar.number_input(key="cmp_temperature_1").set_value(0.7)
    at.sidebar.selectbox(key="cmp_model_1").set_value("anthropic:claude-haiku-4-5").run()
    assert not at.sidebar.number_input(key="cmp_temperature_0").disabled
    anthropic = at.sidebar.number_input(key="cmp_temperature_1")
    assert anthropic.disabled and anthropic.placeholder == "not adjustable"
    run(at, "fixed")  # the value set for the other model is not sent, and the column does not show it
    assert "temperature" not in result_columns(at)["B"].caption[0].value


def test_synced_parameters_go_to_every_target(app_env, fake_provider):
    at = choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
    at.sidebar.number_input(key="cmp_temperature").set_value(0.3)
    at.sidebar.number_input(key="cmp_max_tokens").set_value(5)
    at.sidebar.text_area(key="cmp_system").set_value("Be brief.")
    run(at, "synced")
    bodies = {e["protocol"]: e["body"] for e in fake_provider.events("request")}
    assert bodies["responses"]["temperature"] == 0.3 and bodies["responses"]["max_output_tokens"] == 5
    assert bodies["responses"]["instructions"] == "Be brief."
    assert bodies["anthropic"]["max_tokens"] == 5 and bodies["anthropic"]["system"] == "Be brief."
    assert "temperature" not in bodies["anthropic"]  # the Anthropic adapter never sends it, and the page says so
    assert "not sent" in result_columns(at)["B"].caption[0].value


def test_continue_a_column_as_a_chat(app_env, fake_provider):
    at = run(compare_page(), "carry on")
    at.button(key=next(b.key for b in at.button if b.label == "Continue as chat")).click().run()
    assert not at.exception
    conversation = open_store(app_env).get_conversation(query(at, "c"))
    assert conversation["source"] == "compare"
    assert [m.markdown[0].value for m in at.chat_message][0] == "carry on"
    assert at.chat_message[1].markdown[0].value.startswith("Echo: carry on")


def test_a_run_link_restores_the_comparison_unless_it_is_gone(app_env, fake_provider):
    run_id = query(run(compare_page(), "remember this"), "run")
    again = compare_page(run=run_id)
    assert [m.value for m in result_columns(again)["A"].markdown][1].startswith("Echo: remember this")
    missing = compare_page(run="nope")
    assert any("not found" in w.value for w in missing.warning)
    db = open_store(app_env)
    for column in load_run(db, run_id).columns:
        db.soft_delete(column.conversation_id)
    deleted = compare_page(run=run_id)
    assert not deleted.exception and any("deleted" in i.value for i in deleted.info)


def test_an_empty_prompt_sends_nothing(app_env, fake_provider):
    at = run(compare_page(), "   ")
    assert any("prompt" in w.value for w in at.warning)
    assert not fake_provider.events("request")
    assert open_store(app_env).recent_compare_runs(None) == []


def test_a_batch_runs_every_prompt_against_every_target(app_env, fake_provider):
    at = choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5")
    at.text_area(key="batch_text").set_value("first question\n\nsecond question\nthird question")
    at.number_input(key="batch_in_flight").set_value(2)
    at.button(key="batch_run").click().run()
    assert not at.exception, at.exception
    assert len(fake_provider.events("request")) == 6
    totals, results = at.dataframe[0].value, at.dataframe[1].value
    assert list(totals["Calls"]) == [3, 3] and list(totals["Complete"]) == [3, 3]
    assert len(results) == 6 and list(results["Prompt"])[:2] == ["first question", "first question"]
    assert all(reply.startswith("Echo:") for reply in results["Reply"])
    assert any("All 6 calls ran" in c.value for c in at.caption)
    rows = batch_rows(open_store(app_env), query(at, "batch"))
    assert len(rows) == 6 and {r.status for r in rows} == {"complete"}
    download = at.get("download_button")
    assert download and download[0].proto.label == "Download CSV"


def test_each_column_says_how_its_reply_ended_in_the_same_words_as_the_chat_page(app_env, fake_provider):
    fake_provider.set_scenario("gpt-4o-mini", words=30, end_after=4)
    fake_provider.set_scenario("claude-haiku-4-5", refusal="I won't do that.")
    at = run(choose(compare_page(), "openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"), "do a thing")
    columns = result_columns(at)
    assert any("ended before the provider finished it" in w.value for w in columns["A"].warning)
    assert any("The model refused to answer" in w.value for w in columns["B"].warning)
    assert "unfinished" in columns["A"].caption[-1].value and "refused" in columns["B"].caption[-1].value
    assert list(at.dataframe[0].value["Status"]) == ["unfinished", "refused"]
