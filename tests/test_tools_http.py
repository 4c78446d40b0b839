"""Tools over streamable HTTP: tests/mcp_server.py served by the official SDK on a loopback port (a subprocess
started here, stopped by its pid), behind a bearer token, spoken to by the app's MCP client. The real provider
SDKs over HTTP to the fake provider, a real SQLite file, and the Chat page in AppTest."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import streamlit as st
import test_tools
from streamlit.testing.v1 import AppTest
from test_tools_pages import listed

from chat.config import McpServer
from chat.history.export import conversation_json, conversation_markdown
from chat.mcp_servers import Toolbox
from chat.store import open_store
from chat.tool_loop import ToolRunner
from e2e_support import Proc, free_port

SERVER_SCRIPT = str(Path(__file__).with_name("mcp_server.py"))
TOKEN = "hunter2-http-bearer-token"
providers = test_tools.providers  # the fixture: the three provider formats over HTTP to the fake provider
run = test_tools.run


def wait_listening(port: int, proc: Proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"the MCP server exited with {proc.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the MCP server did not listen on {port} within {timeout} s")


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """The test MCP server on http://127.0.0.1:PORT/mcp, taking only ``Authorization: Bearer TOKEN``; the
    Authorization of every request it received is in ``seen``."""
    tmp = tmp_path_factory.mktemp("mcp-http")
    port = free_port()
    seen = tmp / "seen.txt"
    env = {**os.environ, "MCP_TOKEN": TOKEN, "MCP_SEEN": str(seen)}
    proc = Proc([sys.executable, SERVER_SCRIPT, "--http", str(port)], env=env, log=tmp / "server.log")
    try:
        wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/mcp", seen
    finally:
        proc.stop()


def http_box(url: str, token: str = TOKEN) -> Toolbox:
    return Toolbox([McpServer(name="web", label="Web tools", url=url, headers={"Authorization": f"Bearer {token}"})])


def test_tools_are_listed_and_called_over_streamable_http_with_the_configured_header(store, providers, fake_provider,
                                                                                    http_server):
    url, seen = http_server
    box = http_box(url)
    listing = box.listing("web")
    assert listing.error is None
    assert {t.name for t in listing.tools} == {"lookup", "write_note", "broken", "slow"}
    assert next(t for t in listing.tools if t.name == "lookup").read_only
    fake_provider.set_scenario(None, tool_calls=[{"name": "web__lookup", "arguments": {"key": "sky"}}])
    tools, errors, pending = box.tools(["web"])
    _, row, _ = run(store, providers, "chat", ToolRunner(box, tools))
    call = row["tool_steps"][0]["calls"][0]
    assert call["status"] == "done" and call["result"] == "sky is blue" and call["server"] == "web"
    assert row["content"].endswith("Results: sky is blue")
    assert f"Bearer {TOKEN}" in seen.read_text().splitlines()  # the header reached the server


def test_a_server_that_refuses_the_header_is_named_with_its_http_status_and_never_the_secret(http_server):
    url, _ = http_server
    listing = http_box(url, token="wrong-token-1234").listing("web")
    assert listing.tools == [] and listing.error is not None
    hint = listing.error.hint
    assert "'web' could not be reached" in hint and "HTTP 401" in hint and "check its headers" in hint
    assert "wrong-token-1234" not in hint and TOKEN not in hint


def test_an_http_server_that_is_down_is_named_and_the_chat_works_without_it(store, providers, fake_provider):
    box = http_box(f"http://127.0.0.1:{free_port()}/mcp")  # nothing listens there
    tools, errors, pending = box.tools(["web"])
    assert tools == [] and pending == [] and len(errors) == 1
    assert "'web' could not be reached" in errors[0].hint and TOKEN not in errors[0].hint
    _, row, _ = run(store, providers, "chat", ToolRunner(box, tools))
    assert row["status"] == "complete" and "tools" not in fake_provider.requests[0]["body"]


# ---------------------------------------------------------------- the page: the header goes nowhere else


def _shown(at: AppTest) -> str:
    """Everything the page drew, as its element messages say it."""
    out = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


@pytest.fixture
def http_page(app_env, monkeypatch, tmp_path, http_server):
    """The app run from a directory whose .streamlit/secrets.toml configures the HTTP server (right token) and
    the same server with a wrong one."""
    url, _ = http_server
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        f'[mcp.web]\nurl = {json.dumps(url)}\nlabel = "Web tools"\n'
        f'headers = {{ Authorization = "Bearer {TOKEN}" }}\n\n'
        f'[mcp.refused]\nurl = {json.dumps(url)}\nheaders = {{ Authorization = "Bearer wrong-token-5678" }}\n')
    st.cache_resource.clear()
    st.secrets._reset()  # st.secrets keeps the first file it parsed for the process: this test's file, then none
    yield app_env
    st.cache_resource.clear()
    st.secrets._reset()


def test_an_http_servers_header_never_reaches_the_page_the_logs_or_the_exports(http_page, fake_provider, caplog):
    caplog.set_level(logging.DEBUG)
    fake_provider.set_scenario(None, tool_calls=[{"name": "web__lookup", "arguments": {"key": "sky"}}])
    at = AppTest.from_file("../app.py", default_timeout=60).run()
    box = next(m for m in at.sidebar.multiselect if m.label == "Tools")
    box.select("web").select("refused").run()
    at.chat_input[0].set_value("what colour is the sky?").run()
    assert not at.exception, at.exception
    listed(at)
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 1 and "'refused' could not be reached" in warnings[0] and "HTTP 401" in warnings[0]

    cid = at.query_params["c"][0] if isinstance(at.query_params["c"], list) else at.query_params["c"]
    store = open_store(http_page)
    row = store.messages(cid)[-1]
    assert row["tool_steps"][0]["calls"][0]["result"] == "sky is blue"  # the call went over HTTP
    conversation = store.get_conversation(cid)
    exports = (conversation_json(conversation, store.messages(cid))
               + conversation_markdown(conversation, store.messages(cid)))
    refreshed = AppTest.from_file("../app.py", default_timeout=60)
    refreshed.query_params["c"] = cid
    shown = _shown(at) + _shown(refreshed.run())
    logs = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "sky is blue" in shown and "Web tools" in shown  # what the checks below read is really there
    for secret in (TOKEN, "wrong-token-5678"):
        assert secret not in shown and secret not in exports and secret not in logs
        assert secret not in json.dumps(row, default=str)
