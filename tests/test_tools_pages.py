"""Tools on the pages (AppTest): the Chat page's per-conversation choice of MCP servers, a reply's steps
drawn live and again from the store, History's exports with the steps. A real MCP server (tests/mcp_server.py)
configured in a secrets file, the fake provider asking for its tools."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from chat.history.export import conversation_json, conversation_markdown
from chat.store import open_store

APP = "../app.py"
SERVER_SCRIPT = str(Path(__file__).with_name("mcp_server.py"))
SECRET = "hunter2-mcp-page-secret"


def secrets_toml(tmp_path: Path, *, broken: bool = False) -> str:
    good = (f'[mcp.test]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(SERVER_SCRIPT)}]\n'
            f'label = "Test tools"\n'
            f'env = {{ MCP_NOTES = {json.dumps(str(tmp_path / "notes.txt"))}, MCP_SECRET = "{SECRET}" }}\n')
    if broken:
        good += (f'\n[mcp.gone]\ncommand = {json.dumps(sys.executable)}\nargs = ["-c", "import sys; sys.exit(3)"]\n'
                 f'env = {{ TOKEN = "{SECRET}" }}\n')
    return good


@pytest.fixture
def tools_env(app_env, monkeypatch, tmp_path):
    """The app run from a working directory whose .streamlit/secrets.toml configures the test MCP server."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(secrets_toml(tmp_path, broken=True))
    st.cache_resource.clear()
    st.secrets._reset()  # st.secrets keeps the first file it parsed for the process: this test's file, then none
    yield app_env
    st.cache_resource.clear()
    st.secrets._reset()


def run_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def open_cid(at: AppTest) -> str | None:
    value = at.query_params.get("c")
    return value[0] if isinstance(value, list) else value


def tools_box(at: AppTest):
    return next(m for m in at.sidebar.multiselect if m.label == "Tools")


def listed(at: AppTest, timeout: float = 60.0) -> AppTest:
    """The page run again until no chosen tool server is still connecting (their listings run in the background;
    in a browser the page redraws itself when they are done)."""
    deadline = time.monotonic() + timeout
    while any("connecting…" in c.value for c in at.sidebar.caption) and time.monotonic() < deadline:
        time.sleep(0.2)
        at.run()
    return at


def test_no_tools_by_default_and_a_server_that_cannot_start_is_explained_in_one_message(tools_env, fake_provider):
    at = run_app()
    box = tools_box(at)
    assert box.value == [] and set(box.options) == {"Test tools", "gone"}
    assert not at.sidebar.warning
    listed(box.select("gone").run())
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 1 and "could not be reached" in warnings[0] and SECRET not in warnings[0]
    at.chat_input[0].set_value("still works").run()  # the chat works without the server's tools
    assert not at.exception
    assert at.chat_message[1].markdown[0].value.startswith("Echo: still works")
    assert "tools" not in fake_provider.requests[-1]["body"]


def test_a_reply_with_a_read_only_tool_shows_its_steps_and_again_after_a_refresh(tools_env, fake_provider):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__lookup", "arguments": {"key": "sky"}}])
    at = run_app()
    tools_box(at).select("test").run()
    at.chat_input[0].set_value("what colour is the sky?").run()
    assert not at.exception, at.exception
    cid = open_cid(at)
    assert fake_provider.requests[0]["body"]["tools"]
    row = open_store(tools_env).messages(cid)[-1]
    assert row["status"] == "complete" and row["tool_steps"][0]["calls"][0]["result"] == "sky is blue"
    assert (open_store(tools_env).get_conversation(cid)["settings"] or {}).get("tools") == ["test"]
    shown = at.chat_message[1]
    assert len(shown.status) == 1 and "lookup" in shown.status[0].label
    assert shown.markdown[-1].value.endswith("Results: sky is blue")

    again = run_app(c=cid)  # a refresh: the choice and the steps come back from the store
    assert tools_box(again).value == ["test"]
    reply = again.chat_message[1]
    blocks = list(reply.status)
    assert len(blocks) == 1 and "lookup (test) · done in" in blocks[0].label.replace("\\", "")
    assert [c.value for c in blocks[0].code] == ['{\n  "key": "sky"\n}', "sky is blue"]
    assert reply.markdown[-1].value.endswith("Results: sky is blue")
    assert "2 model calls:" in reply.caption[-1].value


def test_the_tool_choice_is_saved_with_the_conversation_as_soon_as_it_changes(tools_env, fake_provider):
    at = run_app()
    at.chat_input[0].set_value("hello").run()
    cid = open_cid(at)
    tools_box(at).select("test").run()
    assert open_store(tools_env).get_conversation(cid)["settings"]["tools"] == ["test"]
    assert tools_box(run_app(c=cid)).value == ["test"]
    tools_box(at).unselect("test").run()
    assert tools_box(run_app(c=cid)).value == []


def test_exports_hold_the_steps(tools_env, fake_provider):
    fake_provider.set_scenario(None, tool_calls=[{"name": "test__lookup", "arguments": {"key": "sky"}}])
    at = run_app()
    tools_box(at).select("test").run()
    at.chat_input[0].set_value("what colour is the sky?").run()
    store = open_store(tools_env)
    cid = open_cid(at)
    conversation = store.get_conversation(cid)
    messages = store.messages(cid)
    data = json.loads(conversation_json(conversation, messages))
    steps = data["messages"][-1]["tool_steps"]
    assert steps[0]["calls"][0]["result"] == "sky is blue" and steps[0]["calls"][0]["tool"] == "lookup"
    text = conversation_markdown(conversation, messages)
    assert "**Tool call:** lookup \\(test\\) · done in" in text
    assert '```json\n{\n  "key": "sky"\n}\n```' in text and "Result:\n\n```\nsky is blue\n```" in text
    assert "2 model calls:" in text
    assert SECRET not in text and SECRET not in json.dumps(data)


def test_the_figures_line_breaks_a_reply_down_by_model_call_and_labels_are_inert():
    from chat.display import call_label, figures_line, steps_breakdown

    steps = [{"input_tokens": 300, "output_tokens": 10, "exact": True, "calls": []},
             {"input_tokens": 400, "output_tokens": 20, "exact": False, "calls": []}]
    assert steps_breakdown(steps) == "2 model calls: 310 + ≈420 tokens"
    assert "2 model calls: 310 + ≈420 tokens" in figures_line({"model": "m", "tool_steps": steps, "status": "complete"})
    assert steps_breakdown(None) is None
    label = call_label({"tool": "<b>x</b>", "server": "s", "status": "denied"})
    assert "\\<b\\>" in label and "denied by you" in label


def test_a_long_result_is_shown_truncated_with_the_whole_kept(tools_env, fake_provider):
    from chat.tool_loop import SHOWN_CHARS

    store = open_store(tools_env)
    cid = store.create_conversation(user="local", settings={})
    store.add_user_message(cid, "long one")
    whole = "<img src=x>" + "y" * (SHOWN_CHARS * 2)
    message_id = store.start_reply(cid, provider="openai", model="gpt-4o-mini", settings={})
    steps = [{"text": "", "calls": [{"id": "c1", "wire_name": "test__lookup", "server": "test", "tool": "lookup",
                                     "arguments": "{}", "status": "done", "result": whole, "duration": 0.1}],
              "input_tokens": 1, "output_tokens": 1},
             {"text": "done", "calls": [], "input_tokens": 1, "output_tokens": 1}]
    store.finish_reply(message_id, content="done", status="complete", usage=None, cost=None, tool_steps=steps)
    at = run_app(c=cid)
    assert not at.exception, at.exception
    block = at.chat_message[1].status[0]
    assert block.code[-1].value == whole[:SHOWN_CHARS] + "…"  # as code: inert, never HTML
    assert any("whole result is kept" in c.value for c in block.caption)
    assert store.messages(cid)[-1]["tool_steps"][0]["calls"][0]["result"] == whole


def test_servers_that_never_answer_are_shown_connecting_and_the_page_run_returns(app_env, monkeypatch, tmp_path):
    import socket

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".streamlit").mkdir()
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        (tmp_path / ".streamlit" / "secrets.toml").write_text(
            f'[mcp.mute]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(SERVER_SCRIPT)}]\n'
            f'label = "Mute tools"\nenv = {{ MCP_HOLD = {json.dumps(str(tmp_path / "never"))} }}\n\n'
            f'[mcp.silent]\nurl = "http://127.0.0.1:{silent.getsockname()[1]}/mcp"\nlabel = "Silent tools"\n')
        st.cache_resource.clear()
        st.secrets._reset()
        try:
            at = run_app()
            tools_box(at).select("mute").select("silent").run()
            assert not at.exception, at.exception
            captions = [c.value for c in at.sidebar.caption]
            assert any("Mute tools: connecting…" in c for c in captions)
            assert any("Silent tools: connecting…" in c for c in captions)
            assert not at.sidebar.warning  # not failed: still being listed
            assert tools_box(at).value == ["mute", "silent"] and not at.chat_input[0].disabled
        finally:
            (tmp_path / "never").touch()  # the held server goes on (and ends with its client), whatever the page did
            st.cache_resource.clear()
            st.secrets._reset()
