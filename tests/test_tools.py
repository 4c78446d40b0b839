"""Tools over MCP: a real MCP server (tests/mcp_server.py, stdio, the official SDK), the real provider SDKs
over HTTP to the fake provider (which asks for tools and answers with their results), a real SQLite file."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from chat import turns
from chat.config import McpServer, ModelId
from chat.display import ending
from chat.mcp_servers import Toolbox
from chat.pricing import Pricer
from chat.providers.anthropic import AnthropicProvider
from chat.providers.base import Usage
from chat.providers.openai import OpenAIProvider
from chat.tool_loop import DENIED, ToolRunner

SERVER_SCRIPT = str(Path(__file__).with_name("mcp_server.py"))
FORMATS = ["responses", "chat", "anthropic"]
MODELS = {"responses": ("openai", "gpt-4o-mini"), "chat": ("ollama", "llama3"),
          "anthropic": ("anthropic", "claude-haiku-4-5")}
PRICES = {"ollama:*": {"input_mtok": 1.0, "output_mtok": 2.0}}


@pytest.fixture
def providers(openai_client, anthropic_client):
    return {"responses": OpenAIProvider(name="openai", client=openai_client, label="OpenAI"),
            "chat": OpenAIProvider(name="ollama", client=openai_client, label="ollama", api="chat"),
            "anthropic": AnthropicProvider(name="anthropic", client=anthropic_client, label="Anthropic")}


@pytest.fixture
def toolbox(tmp_path):
    server = McpServer(name="test", label="test", command=sys.executable, args=(SERVER_SCRIPT,),
                       env={"MCP_NOTES": str(tmp_path / "notes.txt"), "MCP_STARTED": str(tmp_path / "started"),
                            "MCP_SECRET": "hunter2-very-secret"})
    box = Toolbox([server])
    assert box.listing("test").error is None
    return box


def runner(toolbox, max_steps=10):
    tools, errors, _ = toolbox.tools(["test"])
    assert not errors
    return ToolRunner(toolbox, tools, max_steps=max_steps)


def start(store, providers, fmt, tools, prompt="what colour is the sky?", conversation=None, pricer=None):
    conversation = conversation or store.create_conversation(user="alice", settings={})
    settings = turns.TurnSettings(ModelId(*MODELS[fmt]))
    ctx = turns.TurnContext(store, providers[fmt], pricer or Pricer(PRICES), tools=tools)
    turn = turns.send(ctx, conversation, prompt, settings)
    return turn, conversation


def run(store, providers, fmt, tools, **kwargs):
    turn, conversation = start(store, providers, fmt, tools, **kwargs)
    "".join(turn.stream(flush_every=0.0))
    return turn, store.messages(conversation)[-1], conversation


def tool_results_sent(request: dict) -> list[str]:
    body = request["body"]
    if "input" in body:
        return [i["output"] for i in body["input"] if i.get("type") == "function_call_output"]
    out = [m["content"] for m in body["messages"] if m.get("role") == "tool"]
    for m in body["messages"]:
        if isinstance(m.get("content"), list):
            out += [b["content"] for b in m["content"] if b.get("type") == "tool_result"]
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_model_that_asks_for_a_tool_gets_its_result_and_answers_with_it(store, providers, fake_provider, toolbox,
                                                                          fmt):
    fake_provider.set_scenario(None, text=None, words=3, tool_calls=[
        {"name": "test__lookup", "arguments": {"key": "sky"}}])
    turn, row, _ = run(store, providers, fmt, runner(toolbox))
    requests = fake_provider.requests
    assert len(requests) == 2
    assert requests[0]["body"]["tools"]  # the tools went to the provider in its format
    assert tool_results_sent(requests[1]) == ["sky is blue"]
    assert row["status"] == "complete"
    assert row["content"].endswith("Results: sky is blue")
    steps = row["tool_steps"]
    assert len(steps) == 2 and steps[0]["calls"][0]["status"] == "done"
    assert steps[0]["calls"][0]["result"] == "sky is blue" and json.loads(steps[0]["calls"][0]["arguments"]) == {
        "key": "sky"}
    assert steps[1]["text"] == "Results: sky is blue" and not steps[1]["calls"]


def test_every_model_call_of_the_loop_is_counted_and_priced(store, providers, fake_provider, toolbox):
    fake_provider.set_scenario(None, input_tokens=100, output_tokens=10, tool_calls=[
        {"name": "test__lookup", "arguments": {"key": "sky"}}])
    _, row, _ = run(store, providers, "chat", runner(toolbox))
    assert [s["input_tokens"] for s in row["tool_steps"]] == [100, 100]
    assert row["input_tokens"] == 200 and row["output_tokens"] == 20 and row["input_exact"]
    assert row["cost"] == pytest.approx(sum(s["cost"] for s in row["tool_steps"]))
    assert row["cost"] == pytest.approx((200 * 1.0 + 20 * 2.0) / 1e6)


def test_what_the_prompt_cache_saved_is_summed_over_every_model_call_of_the_loop(store, providers, fake_provider,
                                                                                 toolbox):
    fake_provider.set_scenario(None, input_tokens=100, cache_read_tokens=1000, output_tokens=10, tool_calls=[
        {"name": "test__lookup", "arguments": {"key": "sky"}}])
    pricer = Pricer({"ollama:*": {"input_mtok": 1.0, "output_mtok": 2.0, "cache_read_mtok": 0.1}})
    _, row, _ = run(store, providers, "chat", runner(toolbox), pricer=pricer)
    assert row["cache_read_tokens"] == 2000
    one_call = pricer.cache_saving(*MODELS["chat"], Usage(100, 10, cache_read_tokens=1000))
    assert one_call == pytest.approx(1000 * 0.9 / 1e6) and row["cache_saved"] == pytest.approx(2 * one_call)


@pytest.mark.parametrize("fmt", FORMATS)
def test_several_calls_in_one_step_all_run_and_all_results_go_back(store, providers, fake_provider, toolbox, fmt):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__lookup", "arguments": {"key": "sky"}},
                                                 {"name": "test__lookup", "arguments": {"key": "sea"}}])
    _, row, _ = run(store, providers, fmt, runner(toolbox))
    assert sorted(tool_results_sent(fake_provider.requests[1])) == ["sea is blue", "sky is blue"]
    assert [c["status"] for c in row["tool_steps"][0]["calls"]] == ["done", "done"]
    assert row["content"].endswith("Results: sky is blue | sea is blue")


def test_a_failing_tool_is_shown_failed_and_the_model_is_told_the_error(store, providers, fake_provider, toolbox):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__broken", "arguments": {"key": "sky"}}])
    _, row, _ = run(store, providers, "anthropic", runner(toolbox))
    call = row["tool_steps"][0]["calls"][0]
    assert call["status"] == "failed" and call["error"]
    assert tool_results_sent(fake_provider.requests[1])[0].startswith("Error:")
    assert row["status"] == "complete"


def test_the_step_limit_stops_a_model_that_keeps_asking_with_a_clear_note(store, providers, fake_provider, toolbox):
    fake_provider.set_scenario(None, tool_rounds=None, tool_calls=[
        {"name": "test__lookup", "arguments": {"key": "sky"}}])
    _, row, _ = run(store, providers, "responses", runner(toolbox, max_steps=3))
    assert len(fake_provider.requests) == 3
    assert len(row["tool_steps"]) == 3
    assert row["finish_reason"] == "step_limit"
    assert ending(row).word == "stopped at the step limit"


def _in_thread(turn):
    done = threading.Event()

    def go():
        try:
            "".join(turn.stream(flush_every=0.0))
        finally:
            done.set()

    threading.Thread(target=go, daemon=True).start()
    return done


def _wait_for(predicate):
    while not predicate():
        time.sleep(0.02)


def waiting_calls(turn):
    """The calls waiting for the user's approval, found in the turn's steps as the page finds them."""
    return [call for step in list(turn.steps) for call in step.calls if call.status == "waiting"]


@pytest.mark.parametrize("approve", [True, False])
def test_a_tool_that_changes_things_runs_only_once_the_user_approves_it(store, providers, fake_provider, toolbox,
                                                                        tmp_path, approve):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__write_note", "arguments": {"text": "hello"}}])
    turn, conversation = start(store, providers, "chat", runner(toolbox))
    done = _in_thread(turn)
    _wait_for(lambda: waiting_calls(turn))
    waiting = waiting_calls(turn)[0]
    assert waiting.needs_approval and json.loads(waiting.arguments) == {"text": "hello"}
    assert not (tmp_path / "notes.txt").exists()
    turn.decide(waiting.id, approve)
    done.wait()
    row = store.messages(conversation)[-1]
    call = row["tool_steps"][0]["calls"][0]
    if approve:
        assert call["status"] == "done" and (tmp_path / "notes.txt").read_text() == "hello\n"
        assert row["content"].endswith("Results: noted: hello")
    else:
        assert call["status"] == "denied" and not (tmp_path / "notes.txt").exists()
        assert tool_results_sent(fake_provider.requests[1]) == [DENIED]


def test_stop_during_a_tool_call_cancels_it_and_keeps_the_reply_stopped(store, providers, fake_provider, toolbox,
                                                                        tmp_path):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__slow", "arguments": {"seconds": 60}}])
    turn, conversation = start(store, providers, "anthropic", runner(toolbox))
    done = _in_thread(turn)
    _wait_for(lambda: (tmp_path / "started").exists())
    turn.request_stop()
    done.wait()
    row = store.messages(conversation)[-1]
    assert row["status"] == "stopped"
    assert row["tool_steps"][0]["calls"][0]["status"] == "stopped"
    assert len(fake_provider.requests) == 1  # the model was not called again


def test_a_server_that_fails_to_start_says_so_and_the_chat_works_without_it(store, providers, fake_provider):
    box = Toolbox([McpServer(name="gone", label="gone", command=sys.executable,
                             args=("-c", "import sys; sys.exit(3)"), env={"TOKEN": "hunter2-very-secret"})])
    tools, errors, _ = box.tools(["gone"])
    assert tools == [] and len(errors) == 1
    assert "could not be reached" in errors[0].hint and "hunter2" not in errors[0].hint
    _, row, _ = run(store, providers, "chat", ToolRunner(box, tools))
    assert row["status"] == "complete" and "tools" not in fake_provider.requests[0]["body"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_later_turn_sends_the_steps_back_as_the_provider_requires(store, providers, fake_provider, toolbox, fmt):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__lookup", "arguments": {"key": "sky"}}])
    _, _, conversation = run(store, providers, fmt, runner(toolbox))
    fake_provider.set_scenario(None, tool_calls=None)
    _, row, _ = run(store, providers, fmt, None, prompt="thanks", conversation=conversation)
    assert row["status"] == "complete"
    last = fake_provider.requests[-1]
    assert tool_results_sent(last) == ["sky is blue"]  # the provider accepted the history (no 400)


def test_the_steps_are_stored_at_each_checkpoint_not_only_at_the_finish(store, providers, fake_provider, toolbox):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__write_note", "arguments": {"text": "hello"}}])
    turn, conversation = start(store, providers, "chat", runner(toolbox))
    done = _in_thread(turn)
    _wait_for(lambda: waiting_calls(turn))
    row = store.messages(conversation)[-1]  # a crash now would leave these steps with the interrupted reply
    assert row["status"] == "streaming"
    assert [c["status"] for c in row["tool_steps"][0]["calls"]] == ["waiting"]
    assert json.loads(row["tool_steps"][0]["calls"][0]["arguments"]) == {"text": "hello"}
    turn.decide(waiting_calls(turn)[0].id, False)
    done.wait()
    assert store.messages(conversation)[-1]["tool_steps"][0]["calls"][0]["status"] == "denied"


# ---------------------------------------------------------------- listing in the background


def held(tmp_path, hold: Path, name: str = "held") -> McpServer:
    """The test server over stdio, silent until ``hold`` exists (never, if the test never makes it)."""
    return McpServer(name=name, label=name, command=sys.executable, args=(SERVER_SCRIPT,),
                     env={"MCP_HOLD": str(hold), "MCP_STARTED": str(tmp_path / "started")})


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections and never answers (nobody calls accept)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["stdio", "http"])
def test_a_server_that_never_answers_is_listed_in_the_background_and_shown_pending(tmp_path, silent_port, kind):
    server = (held(tmp_path, tmp_path / "never") if kind == "stdio" else
              McpServer(name="held", label="held", url=f"http://127.0.0.1:{silent_port}/mcp"))
    box = Toolbox([server], wait=0)  # a page's wait, at its shortest
    try:
        listing = box.listing("held")
        assert listing.pending and listing.tools == [] and listing.error is None
        assert box.tools(["held"]) == ([], [], ["held"])  # asked again: still under way, no error made up
        runner = ToolRunner(box, servers=("held",))
        assert not runner.ready() and runner.defs == []
    finally:
        box.refresh()  # the listing under way is cancelled (its server stopped)


def test_a_reply_waits_on_its_own_thread_for_a_server_still_being_listed_then_offers_its_tools(
        store, providers, fake_provider, tmp_path):
    hold = tmp_path / "go"
    box = Toolbox([held(tmp_path, hold)], wait=0)
    fake_provider.set_scenario(None, tool_calls=[{"name": "held__lookup", "arguments": {"key": "sky"}}])
    turn, conversation = start(store, providers, "chat", ToolRunner(box, servers=("held",)))
    done = _in_thread(turn)
    _wait_for(lambda: (tmp_path / "started").exists())  # the reply's thread asked for the listing
    assert box.tools(["held"], wait=0)[2] == ["held"]
    time.sleep(2.5)
    assert store.mark_interrupted_replies(stale_after=2.0) == 0  # kept fresh meanwhile: not taken for a crash
    assert fake_provider.requests == []  # nothing sent while its tools are unknown
    hold.touch()
    done.wait()
    row = store.messages(conversation)[-1]
    assert fake_provider.requests[0]["body"]["tools"]
    assert row["status"] == "complete" and row["tool_steps"][0]["calls"][0]["result"] == "sky is blue"


def test_stop_while_a_reply_waits_for_a_tool_server_ends_it_stopped_with_nothing_sent(store, providers,
                                                                                     fake_provider, tmp_path):
    box = Toolbox([held(tmp_path, tmp_path / "never")], wait=0)
    try:
        turn, conversation = start(store, providers, "anthropic", ToolRunner(box, servers=("held",)))
        done = _in_thread(turn)
        _wait_for(lambda: (tmp_path / "started").exists())
        turn.request_stop()
        done.wait()
        row = store.messages(conversation)[-1]
        assert row["status"] == "stopped" and fake_provider.requests == []
    finally:
        box.refresh()


def test_refresh_forgets_a_listing_and_the_next_ask_lists_again(tmp_path):
    hold = tmp_path / "go"
    box = Toolbox([held(tmp_path, hold)], wait=0)
    assert box.listing("held").pending
    box.refresh()
    hold.touch()
    listing = box.listing("held", wait=60)
    assert not listing.pending and "lookup" in [t.name for t in listing.tools]
    box.refresh("held")
    assert box.listing("held", wait=0).pending  # listed afresh, not the cached one
    box.refresh()


def test_a_checkpoint_after_tool_steps_holds_the_answer_so_far_as_a_step_of_its_own(store, providers,
                                                                                   fake_provider, toolbox):
    answer = "one two three four five six seven eight"
    fake_provider.set_scenario(None, text=answer, tokens_per_second=4, tool_calls=[
        {"name": "test__lookup", "arguments": {"key": "sky"}}])
    turn, conversation = start(store, providers, "chat", runner(toolbox))
    done = _in_thread(turn)
    seen = None
    while seen is None and not done.is_set():  # what another app process following the reply reads
        row = store.messages(conversation)[-1]
        steps = row.get("tool_steps") or []
        if row["status"] == "streaming" and len(steps) == 2 and steps[1]["text"]:
            seen = row
        time.sleep(0.05)
    done.wait()
    assert seen is not None, "no checkpoint held the answer after the steps"
    first, partial = seen["tool_steps"]
    assert first["calls"][0]["status"] == "done" and not partial["calls"]
    assert answer.startswith(partial["text"]) and partial["text"] != answer
    final = store.messages(conversation)[-1]["tool_steps"]
    assert len(final) == 2 and final[1]["text"] == answer and final[1]["input_tokens"] is not None


def test_a_reply_waiting_for_approval_is_kept_fresh_and_never_taken_for_a_crashed_one(store, providers,
                                                                                      fake_provider, toolbox):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__write_note", "arguments": {"text": "later"}}])
    turn, conversation = start(store, providers, "chat", runner(toolbox))
    done = _in_thread(turn)
    try:
        _wait_for(lambda: waiting_calls(turn))
        time.sleep(2.5)  # the user takes their time
        assert store.mark_interrupted_replies(stale_after=2.0) == 0  # what any page run does, in any process
        assert store.messages(conversation)[-1]["status"] == "streaming"
    finally:
        turn.request_stop()
        done.wait()
