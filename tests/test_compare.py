"""Compare logic: runs, ranking, votes, blind mode, batch runs with bounded concurrency, CSV. A real Store
file and real SDK clients against the fake provider over HTTP."""

from __future__ import annotations

import csv
import io
import random
import threading

import pytest

from chat import turns
from chat.compare.batch import CSV_FIELDS, BatchRow, BatchRun, batch_csv, batch_expected_calls, batch_rows, batch_totals
from chat.compare.batch_input import csv_columns, prompts_from_csv, prompts_from_text
from chat.compare.ranking import leaders, ranks, summary_line, summary_rows
from chat.compare.runs import start_run, stream_all, stream_column
from chat.compare.targets import CompareError
from chat.compare.views import anonymise, column_title, load_run
from chat.compare.votes import cast_vote, vote_choices
from chat.display import column_figures, describe_settings
from chat.pricing import Pricer
from chat.providers.anthropic import AnthropicProvider
from chat.providers.openai import OpenAIProvider

ENDS = ("complete", "disconnect", "status_error", "drop", "midstream_error")


@pytest.fixture
def providers(openai_client, anthropic_client):
    return {"openai": OpenAIProvider(name="openai", client=openai_client, label="OpenAI"),
            "anthropic": AnthropicProvider(name="anthropic", client=anthropic_client, label="Anthropic")}


def targets(*names, **params):
    return [turns.TurnSettings.parse(n, **params) for n in names]


def start(store, providers, prompt="compare me", names=("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"),
          daily_limit=None, **kwargs):
    return start_run(turns.TurnContexts(store, providers, Pricer(), user="alice", daily_limit=daily_limit), prompt,
                     targets(*names), **kwargs)


def intervals(log: list[dict]) -> dict[int, tuple[float, float]]:
    """request serial -> (arrived, ended) from the fake provider's log."""
    starts = {e["request"]: e["t"] for e in log if e["kind"] == "request"}
    ends = {e["request"]: e["t"] for e in log if e["kind"] in ENDS}
    return {r: (starts[r], ends[r]) for r in starts if r in ends}


def max_overlap(log: list[dict]) -> int:
    points = sorted([(a, 1) for a, _ in intervals(log).values()] + [(b, -1) for _, b in intervals(log).values()])
    current = peak = 0
    for _, step in points:  # at equal times an end (-1) sorts before a start (+1)
        current += step
        peak = max(peak, current)
    return peak


# ---------------------------------------------------------------- ranking


def row(status="complete", duration=None, ttft=None, cost=None):
    return {"status": status, "duration": duration, "ttft": ttft, "cost": cost}


def test_targets_are_ranked_by_total_time_first_token_and_cost():
    rows = {"A": row(duration=2.0, ttft=0.5, cost=0.002), "B": row(duration=1.0, ttft=0.7, cost=0.0001),
            "C": row(duration=3.0, ttft=0.2, cost=0.01)}
    ranked = ranks(rows)
    assert [ranked[k].latency for k in "ABC"] == [2, 1, 3]
    assert [ranked[k].first_token for k in "ABC"] == [2, 3, 1]
    assert [ranked[k].cost for k in "ABC"] == [2, 1, 3]
    assert summary_line(rows) == "Fastest first token: C · Fastest reply: B · Cheapest: B"


def test_equal_figures_share_a_rank_and_the_next_rank_is_skipped():
    ranked = ranks({"A": row(cost=0.001), "B": row(cost=0.001), "C": row(cost=0.002)})
    assert [ranked[k].cost for k in "ABC"] == [1, 1, 3]
    assert leaders({"A": row(cost=0.001), "B": row(cost=0.001)})["cost"] == ["A", "B"]


def test_stopped_failed_and_unpriced_replies_are_not_ranked():
    rows = {"A": row(duration=5.0, cost=0.01), "B": row("stopped", duration=0.5, cost=0.0),
            "C": row("error", duration=0.1, cost=0.0), "D": row(duration=1.0, cost=None)}
    ranked = ranks(rows)
    assert (ranked["B"].latency, ranked["B"].cost, ranked["C"].latency, ranked["C"].cost) == (None,) * 4
    assert (ranked["A"].latency, ranked["D"].latency) == (2, 1)
    assert (ranked["A"].cost, ranked["D"].cost) == (1, None)
    assert summary_line({"B": row("stopped", duration=0.5)}) == ""


# ---------------------------------------------------------------- votes


def test_vote_choices_generalise_to_n_columns():
    assert vote_choices(["A", "B"]) == [("A", "A is better"), ("B", "B is better"), ("tie", "Tie"),
                                               ("all_bad", "Both bad")]
    assert [text for _, text in vote_choices(["A", "B", "C"])] == [
        "A is best", "B is best", "C is best", "Tie", "All bad"]


def test_a_vote_is_stored_on_the_run_and_only_valid_votes_are_accepted(store, providers, fake_provider):
    live = start(store, providers)
    stream_all(live)
    cast_vote(store, live.run_id, "B")
    assert store.get_compare_run(live.run_id)["vote"] == "B"
    with pytest.raises(CompareError):
        cast_vote(store, live.run_id, "C")  # only two columns
    cast_vote(store, live.run_id, "all_bad")
    assert load_run(store, live.run_id).vote == "all_bad"


# ---------------------------------------------------------------- a run


def test_a_run_is_saved_as_one_compare_conversation_per_target_linked_to_the_run(store, providers, fake_provider):
    live = start(store, providers, names=("openai:gpt-4o-mini", "openai:gpt-4o-mini"), options={"synced": False})
    stream_all(live)
    run = store.get_compare_run(live.run_id)
    assert run["prompt"] == "compare me" and run["user"] == "alice" and run["blind"] is False
    assert run["settings"]["synced"] is False
    assert [t["label"] for t in run["settings"]["targets"]] == ["A", "B"]
    conversations = [store.get_conversation(c.conversation_id) for c in load_run(store, live.run_id).columns]
    assert [c["source"] for c in conversations] == ["compare", "compare"]
    assert [c["settings"]["label"] for c in conversations] == ["A", "B"]
    assert {c["id"] for c in conversations} == {c.conversation_id for c in live.columns}
    for conversation in conversations:
        messages = store.messages(conversation["id"])
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[0]["content"] == "compare me"
        assert messages[1]["status"] == "complete" and messages[1]["content"].startswith("Echo: compare me")


def test_the_same_model_twice_with_different_settings_is_two_targets(store, providers, fake_provider):
    both = [turns.TurnSettings.parse("openai:gpt-4o-mini", temperature=0.0),
            turns.TurnSettings.parse("openai:gpt-4o-mini", temperature=1.5, system="Be terse.")]
    live = start_run(turns.TurnContexts(store, providers, Pricer(), user="alice"), "hi", both)
    stream_all(live)
    bodies = sorted((e["body"] for e in fake_provider.events("request")), key=lambda b: b["temperature"])
    assert [b["temperature"] for b in bodies] == [0.0, 1.5]
    assert bodies[1]["instructions"] == "Be terse."  # OpenAI itself: the Responses API
    view = load_run(store, live.run_id)
    assert [c.settings["temperature"] for c in view.columns] == [0.0, 1.5]
    assert describe_settings(view.columns[1].settings) == "temperature 1.5"


def test_a_target_is_stored_with_the_settings_a_chat_reply_records(store, providers, fake_provider):
    target = turns.TurnSettings.parse("openai:gpt-4o-mini", system="  ", temperature=0.2)
    live = start_run(turns.TurnContexts(store, providers, Pricer(), user="alice"), "hi",
                     [target, turns.TurnSettings.parse("anthropic:claude-haiku-4-5", max_tokens=64)])
    stream_all(live)
    recorded = {"provider": "openai", "model": "gpt-4o-mini", "system": "", "temperature": 0.2, "max_tokens": None}
    assert store.get_conversation(live.columns[0].conversation_id)["settings"] == {**recorded, "label": "A"}
    assert load_run(store, live.run_id).run["settings"]["targets"][0] == {"label": "A", **recorded}
    assert store.messages(live.columns[0].conversation_id)[1]["settings"] == recorded


@pytest.mark.parametrize("count", [1, 5])
def test_a_run_needs_two_to_four_targets(store, providers, count):
    with pytest.raises(CompareError, match="between 2 and 4"):
        start(store, providers, names=["openai:gpt-4o-mini"] * count)


def test_an_empty_prompt_or_unknown_provider_is_refused_before_anything_is_saved(store, providers):
    with pytest.raises(CompareError):
        start(store, providers, prompt="   ")
    with pytest.raises(CompareError, match="nowhere"):
        start(store, providers, names=("openai:gpt-4o-mini", "nowhere:model"))
    assert store.recent_compare_runs(None) == []


def test_columns_stream_in_parallel_wall_time_is_about_the_slowest(store, providers, fake_provider):
    fake_provider.set_scenario("gpt-4o-mini", words=12, tokens_per_second=40)  # ~0.3 s
    fake_provider.set_scenario("claude-haiku-4-5", words=12, tokens_per_second=60)  # ~0.2 s
    fake_provider.set_scenario("gpt-4.1-mini", words=12, tokens_per_second=30)  # ~0.4 s
    live = start(store, providers, names=("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini"))
    stream_all(live)
    spans = list(intervals(fake_provider.log).values())
    assert len(spans) == 3
    wall = max(b for _, b in spans) - min(a for a, _ in spans)
    assert wall < 0.75 * sum(b - a for a, b in spans), spans
    assert max_overlap(fake_provider.log) == 3


def test_a_failure_in_one_column_stays_in_that_column(store, providers, fake_provider):
    fake_provider.set_scenario("claude-haiku-4-5", status=529)
    fake_provider.set_scenario("gpt-4.1-mini", words=30, drop_after=5)
    live = start(store, providers, names=("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini"))
    stream_all(live)
    view = load_run(store, live.run_id)
    by_label = {c.label: c.reply for c in view.columns}
    assert by_label["A"]["status"] == "complete" and by_label["A"]["content"].startswith("Echo:")
    assert by_label["B"]["status"] == "error" and "overloaded" in by_label["B"]["error"]
    assert by_label["C"]["status"] == "error" and "partial text is kept" in by_label["C"]["error"]
    assert by_label["C"]["content"]  # the text before the drop is kept
    assert live.columns[1].turn.error.hint == by_label["B"]["error"]
    ranked = ranks(by_label)
    assert ranked["A"].latency == 1 and ranked["B"].latency is None and ranked["C"].latency is None


def test_stop_closes_every_upstream_and_keeps_each_partial_reply_as_stopped(store, providers, fake_provider):
    for model in ("gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1-mini"):
        fake_provider.set_scenario(model, words=400, tokens_per_second=50)
    live = start(store, providers, names=("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini"))
    stop = threading.Event()
    seen: set[int] = set()

    def on_text(index, _chunk):
        seen.add(index)
        if len(seen) == 3:
            stop.set()

    stream_all(live, stop=stop, on_text=on_text)
    disconnects = [fake_provider.wait_for("disconnect", timeout=2, request=r)
                   for r in {e["request"] for e in fake_provider.events("request")}]
    assert len(disconnects) == 3 and all(d["chunks"] < 400 for d in disconnects)
    view = load_run(store, live.run_id)
    assert [c.reply["status"] for c in view.columns] == ["stopped"] * 3
    assert all(c.reply["content"].startswith("Echo:") for c in view.columns)
    assert all("stopped by you" in column_figures(c.reply)[-1] for c in view.columns)
    assert not fake_provider.events("complete")


def test_columns_never_started_are_saved_as_stopped_and_nothing_is_sent(store, providers, fake_provider):
    live = start(store, providers, names=("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini"))
    assert live.claim(0)
    stream_column(live, 0)  # already claimed: returns at once
    assert not live.finished
    assert live.abandon_unclaimed() == [1, 2]
    stream_column(live, 1)  # abandoned: nothing sent
    assert not fake_provider.events("request")
    view = load_run(store, live.run_id)
    assert [c.reply["status"] for c in view.columns] == ["streaming", "stopped", "stopped"]
    live.columns[0].turn.stop()
    live.column_done(0)
    assert live.wait(0) and not load_run(store, live.run_id).streaming


def test_a_column_and_a_batch_call_stop_waiting_after_the_pages_time_between_chunks(store, providers,
                                                                                   fake_provider):
    # The providers here carry no time limit of their own: the limit is the one the page passes (CHAT_TIMEOUT),
    # as it passes it to a chat turn. The stall ends before the SDK's own read timeout, so a turn that did not
    # get the limit would finish complete.
    fake_provider.set_scenario(None, words=30, stall_after=5, stall_for=4.5)
    contexts = turns.TurnContexts(store, providers, Pricer(), user="alice", idle_timeout=1.5)
    live = start_run(contexts, "compare me", targets("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"))
    stream_all(live)
    replies = [c.reply for c in load_run(store, live.run_id).columns]
    assert [r["status"] for r in replies] == ["error", "error"]
    assert all(len(r["content"].split()) == 5 for r in replies)
    batch = BatchRun(contexts, ["batch me"], targets("openai:gpt-4o-mini"))
    for _ in batch.run():
        pass
    assert [r.status for r in batch.rows] == ["error"] and len(batch.rows[0].reply.split()) == 5


def test_past_the_daily_limit_every_column_is_refused_and_nothing_is_sent(store, providers, fake_provider):
    stream_all(start(store, providers))  # spends a little
    live = start(store, providers, prompt="one more", daily_limit=0.000001)
    stream_all(live)
    assert len(fake_provider.events("request")) == 2  # only the first run's
    view = load_run(store, live.run_id)
    assert [c.reply["status"] for c in view.columns] == ["error", "error"]
    assert all("daily limit" in c.reply["error"] for c in view.columns)


def test_blind_mode_shuffles_the_targets_and_hides_them_until_the_vote(store, providers, fake_provider):
    names = ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "openai:gpt-4.1-mini")
    rng = random.Random(3)
    expected = list(range(3))
    random.Random(3).shuffle(expected)
    assert expected != [0, 1, 2]
    live = start(store, providers, names=names, blind=True, rng=rng)
    stream_all(live)
    view = load_run(store, live.run_id)
    assert [c.name for c in view.columns] == [names[i] for i in expected]
    assert view.run["blind"] is True and not view.revealed
    assert column_title(view, view.columns[0]) == "A: model hidden"
    assert {r["Model"] for r in summary_rows(view)} == {"hidden"}
    cast_vote(store, live.run_id, "tie")
    view = load_run(store, live.run_id)
    assert view.revealed and column_title(view, view.columns[0]) == f"A: {names[expected[0]]}"
    assert [t["model"] for t in view.run["settings"]["targets"]] == [names[i].split(":")[1] for i in expected]


def test_blind_mode_takes_the_provider_names_out_of_error_hints():
    assert anonymise("OpenAI is overloaded right now. Try again.", ["openai", "OpenAI"]) == (
        "The provider is overloaded right now. Try again.")
    assert anonymise("The connection to Anthropic failed.", ["anthropic", "Anthropic"]) == (
        "The connection to the provider failed.")


def test_summary_rows_show_figures_and_ranks_per_target(store, providers, fake_provider):
    fake_provider.set_scenario("claude-haiku-4-5", words=10, tokens_per_second=20)
    live = start(store, providers)
    stream_all(live)
    rows = summary_rows(load_run(store, live.run_id))
    assert [r["Target"] for r in rows] == ["A", "B"]
    assert rows[0]["Model"] == "openai:gpt-4o-mini" and rows[0]["Out"] == "20" and rows[1]["Out"] == "10"
    assert rows[0]["Latency rank"] == "1" and rows[1]["Latency rank"] == "2"
    assert all(r["Cost"].startswith("$") and r["Status"] == "complete" for r in rows)


def test_another_users_run_is_not_loaded(store, providers):
    run_id = store.create_compare_run(user="bob", prompt="mine")
    assert load_run(store, run_id, user="alice") is None
    assert load_run(store, run_id, user="bob").id == run_id


def test_a_compare_column_continues_as_an_ordinary_conversation(store, providers, fake_provider):

    live = start(store, providers)
    stream_all(live)
    column = live.columns[0]
    follow = turns.send(turns.TurnContext(store, providers["openai"], Pricer()), column.conversation_id, "and then?",
                        column.target)
    "".join(follow.stream())
    assert len(store.messages(column.conversation_id)) == 4
    view = load_run(store, live.run_id)  # the run still shows the compared reply
    assert view.columns[0].reply["content"].startswith("Echo: compare me")


# ---------------------------------------------------------------- batch runs


def run_batch(store, providers, prompts, names, daily_limit=None, **kwargs):
    batch = BatchRun(turns.TurnContexts(store, providers, Pricer(), user="alice", daily_limit=daily_limit), prompts,
                     targets(*names), **kwargs)
    for _ in batch.run():
        pass
    return batch


def test_a_batch_never_has_more_calls_in_flight_than_asked(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=8, tokens_per_second=60)
    batch = run_batch(store, providers, [f"prompt {i}" for i in range(5)],
                      ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"), max_in_flight=3)
    assert len(intervals(fake_provider.log)) == 10
    assert max_overlap(fake_provider.log) == 3  # the bound is reached, never passed
    assert len(batch.rows) == 10 and {r.status for r in batch.rows} == {"complete"}, [
        (r.status, r.error) for r in batch.rows if r.status != "complete"]


def test_one_call_at_a_time_means_no_overlap(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=4, tokens_per_second=100)
    run_batch(store, providers, ["a", "b", "c"], ("openai:gpt-4o-mini", "openai:gpt-4o-mini"), max_in_flight=1)
    assert max_overlap(fake_provider.log) == 1


def test_a_batch_is_saved_as_one_run_per_prompt_with_a_conversation_per_call(store, providers, fake_provider):
    batch = run_batch(store, providers, ["first", "", "  second  "],
                      ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"))
    runs = store.compare_runs_in_batch(batch.batch_id)
    assert [r["prompt"] for r in runs] == ["first", "second"]
    assert all(r["settings"]["mode"] == "batch" and r["settings"]["prompt_count"] == 2 for r in runs)
    assert batch_expected_calls(store, batch.batch_id) == 4
    rows = batch_rows(store, batch.batch_id, user="alice")
    assert [(r.prompt, r.label, r.target) for r in rows] == [
        ("first", "A", "openai:gpt-4o-mini"), ("first", "B", "anthropic:claude-haiku-4-5"),
        ("second", "A", "openai:gpt-4o-mini"), ("second", "B", "anthropic:claude-haiku-4-5")]
    assert all(r.status == "complete" and r.output_tokens == 20 and r.cost > 0 for r in rows)
    assert {r.conversation_id for r in rows} == {r.conversation_id for r in batch.rows}
    assert all(store.get_conversation(r.conversation_id)["source"] == "compare" for r in rows)
    assert batch_rows(store, batch.batch_id, user="bob") == []
    assert store.recent_compare_runs("alice", mode="single") == []
    assert len(store.recent_compare_runs("alice", mode="batch")) == 2


def test_a_failing_target_in_a_batch_fails_only_its_own_calls(store, providers, fake_provider):
    fake_provider.set_scenario("claude-haiku-4-5", status=429, retry_after="3")
    batch = run_batch(store, providers, ["x", "y"], ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"))
    by_target = {}
    for r in batch.rows:
        by_target.setdefault(r.label, set()).add(r.status)
    assert by_target == {"A": {"complete"}, "B": {"error"}}
    assert all("rate-limiting" in r.error for r in batch.rows if r.label == "B")
    totals = {t["Target"]: t for t in batch_totals(batch.rows)}
    assert totals["A: openai:gpt-4o-mini"]["Complete"] == 2
    assert totals["B: anthropic:claude-haiku-4-5"]["Failed"] == 2
    assert totals["B: anthropic:claude-haiku-4-5"]["Cost"] == "$0.00"  # refused before it started: nothing billed


def test_closing_a_batch_stops_the_calls_in_flight_and_skips_the_rest(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=300, tokens_per_second=50)
    batch = BatchRun(turns.TurnContexts(store, providers, Pricer(), user="alice"), [f"p{i}" for i in range(6)],
                     targets("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"), max_in_flight=2)
    results = batch.run()
    for _ in results:
        if len(fake_provider.events("chunk")) >= 10:
            break
    results.close()
    requests = fake_provider.events("request")
    assert len(requests) == 2
    for request in requests:
        assert fake_provider.wait_for("disconnect", timeout=2, request=request["request"])["chunks"] < 300
    rows = batch_rows(store, batch.batch_id)
    assert len(rows) == 2 and {r.status for r in rows} == {"stopped"}
    assert all(r.reply.startswith("Echo: p0") for r in rows)


def test_a_batch_stops_sending_once_the_daily_limit_is_reached(store, providers, fake_provider):
    batch = run_batch(store, providers, ["a", "b", "c"], ("openai:gpt-4o-mini", "openai:gpt-4o-mini"),
                      max_in_flight=1, daily_limit=0.000001)
    assert len(fake_provider.events("request")) == 1  # the first call spends past the limit
    assert [r.status for r in batch.rows].count("error") == 5
    assert all("daily limit" in r.error for r in batch.rows if r.status == "error")


def test_batch_limits_are_checked(store, providers):
    contexts = turns.TurnContexts(store, providers, Pricer(), user="a")
    with pytest.raises(CompareError, match="at least one prompt"):
        BatchRun(contexts, ["", " "], targets("openai:x"))
    with pytest.raises(CompareError, match="in flight"):
        BatchRun(contexts, ["p"], targets("openai:x"), max_in_flight=0)
    with pytest.raises(CompareError, match="No provider named nowhere is configured"):
        BatchRun(contexts, ["p"], targets("openai:x", "nowhere:y"))


# ---------------------------------------------------------------- CSV in and out


def test_prompts_come_one_per_line_or_from_a_csv_column():
    assert prompts_from_text("one\n\n  two  \r\nthree\n") == ["one", "two", "three"]
    data = '\ufeffid,question\n1,"What is 2+2?"\n2,""\n3,"Line one\nline two"\n'.encode()
    assert csv_columns(data) == ["id", "question"]
    assert prompts_from_csv(data, "question") == ["What is 2+2?", "Line one\nline two"]
    with pytest.raises(CompareError, match="no column"):
        prompts_from_csv(data, "answer")
    with pytest.raises(CompareError, match="UTF-8"):
        csv_columns("q\nnaïve\n".encode("latin-1") + b"\xff")


def test_the_results_csv_has_one_line_per_call_and_neutralises_formulas():
    rows = [
        BatchRow(0, "=1+1", "A", "openai:gpt-4o-mini", "complete", reply="- a list, with \"quotes\"\nand lines",
                 input_tokens=3, input_exact=True, output_tokens=7, output_exact=True, cost=0.0000123,
                 ttft=0.25, duration=1.25, run_id="r", conversation_id="c"),
        BatchRow(0, "=1+1", "B", "anthropic:claude-haiku-4-5", "error", error="@boom"),
    ]
    parsed = list(csv.DictReader(io.StringIO(batch_csv(rows))))
    assert tuple(parsed[0]) == CSV_FIELDS
    assert parsed[0]["prompt"] == "'=1+1" and parsed[0]["reply"] == "'- a list, with \"quotes\"\nand lines"
    assert (parsed[0]["cost_usd"], parsed[0]["ttft_s"], parsed[0]["total_s"]) == ("0.00001230", "0.250", "1.250")
    assert parsed[0]["tokens_per_s"] == "7.0" and parsed[0]["output_exact"] == "1"
    assert parsed[1]["status"] == "error" and parsed[1]["error"] == "'@boom" and parsed[1]["cost_usd"] == ""


def test_batch_totals_sum_tokens_and_costs_per_target():
    rows = [BatchRow(i, f"p{i}", "A", "openai:m", "complete", input_tokens=10, input_exact=True,
                     output_tokens=20, output_exact=True, cost=0.001, ttft=0.1, duration=1.0 + i)
            for i in range(3)]
    rows.append(BatchRow(0, "p0", "B", "ollama:m", "complete", input_tokens=5, output_tokens=5, cost=None))
    totals = {t["Target"]: t for t in batch_totals(rows)}
    a = totals["A: openai:m"]
    assert (a["Calls"], a["In"], a["Out"], a["Cost"], a["Mean total (s)"]) == (3, "30", "60", "$0.0030", 2.0)
    assert totals["B: ollama:m"]["Cost"] == "cost unknown"
    assert (totals["B: ollama:m"]["In"], totals["B: ollama:m"]["Out"]) == ("≈5", "≈5")  # estimated figures


def test_a_comparison_whose_columns_were_all_deleted_leaves_the_recent_list(store, providers, fake_provider):
    run = start(store, providers)
    stream_all(run)
    assert [r["id"] for r in store.recent_compare_runs("alice")] == [run.run_id]
    for column in load_run(store, run.run_id).columns:
        store.soft_delete(column.conversation_id)
    assert store.recent_compare_runs("alice") == []
