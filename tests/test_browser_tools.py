"""Tools in a real browser: a call that needs approval is approved (or denied) in the page, its steps are seen
live and again after a refresh, and followed live from another app server sharing the store. The test MCP
server (tests/mcp_server.py) is configured in a secrets file in the app's home directory
(~/.streamlit/secrets.toml)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from chat.display import APPROVAL_ELSEWHERE, DENIED_NOTE
from chat.tool_loop import DENIED
from e2e_support import AppProcess, app_env, running_stack, wait_idle

pytestmark = pytest.mark.browser

SERVER_SCRIPT = str(Path(__file__).with_name("mcp_server.py"))
SECRET = "hunter2-browser-mcp-secret"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-tools")
    home = tmp / "home"
    (home / ".streamlit").mkdir(parents=True)
    notes = tmp / "notes.txt"
    (home / ".streamlit" / "secrets.toml").write_text(
        f'[mcp.test]\ncommand = {json.dumps(sys.executable)}\nargs = [{json.dumps(SERVER_SCRIPT)}]\n'
        f'label = "Test tools"\nenv = {{ MCP_NOTES = {json.dumps(str(notes))}, MCP_SECRET = "{SECRET}" }}\n')
    with running_stack(tmp, HOME=str(home)) as parts:
        yield (*parts, notes, home)


def choose_test_tools(page) -> None:
    page.locator("[data-testid='stSidebar'] [data-testid='stMultiSelect']").click()
    page.get_by_role("option", name="Test tools").click()
    page.keyboard.press("Escape")
    wait_idle(page)


def send(page, text: str) -> None:
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(text)
    box.press("Enter")


def test_a_call_that_needs_approval_is_approved_its_steps_seen_and_found_again_after_a_refresh(stack):
    provider, app, browser, _db, notes, _home = stack
    provider.reset()
    page = browser.new_page()
    try:
        page.goto(app.url)
        wait_idle(page)
        choose_test_tools(page)

        provider.set_scenario(None, tool_calls=[{"name": "test__write_note", "arguments": {"text": "hello"}}])
        send(page, "please write a note")

        approve = page.locator("[class*='st-key-approve-'] button")
        approve.wait_for(timeout=30_000)
        reply = page.locator("[data-testid='stChatMessage']").last
        block = reply.locator("[data-testid='stExpander']").first
        assert "write_note (test)" in block.inner_text() and "waiting for your approval" in block.inner_text()
        expect(block.locator("code").first).to_contain_text('"text": "hello"')  # shown before it runs
        assert not notes.exists()
        approve.click()

        reply.locator("[data-testid='stCaptionContainer']", has_text="2 model calls").wait_for(timeout=30_000)
        wait_idle(page)
        assert notes.read_text() == "hello\n"
        text = reply.inner_text()
        assert "write_note (test) · done in" in text and "Results: noted: hello" in text

        page.reload()
        wait_idle(page)
        reply = page.locator("[data-testid='stChatMessage']").last
        reply.locator("[data-testid='stCaptionContainer']", has_text="2 model calls").wait_for()
        block = reply.locator("[data-testid='stExpander']").first
        assert "write_note (test) · done in" in block.inner_text()
        block.locator("summary").click()
        expect(block.locator("code").last).to_contain_text("noted: hello")
        assert "Results: noted: hello" in reply.inner_text()
        assert SECRET not in page.content()
    finally:
        page.close()


def test_a_denied_call_is_marked_denied_and_the_model_told_so_also_after_a_refresh(stack):
    provider, app, browser, _db, notes, _home = stack
    provider.reset()
    before = notes.read_text() if notes.exists() else None
    page = browser.new_page()
    try:
        page.goto(app.url)
        wait_idle(page)
        choose_test_tools(page)
        provider.set_scenario(None, tool_calls=[{"name": "test__write_note", "arguments": {"text": "denied"}}])
        send(page, "please write another note")
        deny = page.locator("[class*='st-key-deny-'] button")
        deny.wait_for(timeout=30_000)
        deny.click()

        for attempt in ("live", "after a refresh"):
            reply = page.locator("[data-testid='stChatMessage']").last
            reply.locator("[data-testid='stCaptionContainer']", has_text="2 model calls").wait_for(timeout=30_000)
            block = reply.locator("[data-testid='stExpander']").first
            assert "write_note (test) · denied by you" in block.inner_text(), attempt
            assert f"Results: {DENIED}" in reply.inner_text(), attempt  # the model's answer to being told
            block.locator("summary").click()
            expect(block).to_contain_text(DENIED_NOTE)
            if attempt == "live":
                page.reload()
                wait_idle(page)
        assert (notes.read_text() if notes.exists() else None) == before  # the tool never ran
    finally:
        page.close()


def test_a_reply_written_by_another_app_server_shows_its_steps_live(stack, tmp_path):
    provider, app, browser, db_path, _notes, home = stack
    provider.reset()
    second = AppProcess(app_env(provider.url, db_path, HOME=str(home)), log=tmp_path / "second.log")
    page, other = browser.new_page(), browser.new_page()
    try:
        page.goto(app.url)
        wait_idle(page)
        choose_test_tools(page)
        answer = " ".join(f"word{i}" for i in range(40))  # each model call streams for 4 s
        provider.set_scenario(None, text=answer, tokens_per_second=10,
                              tool_calls=[{"name": "test__write_note", "arguments": {"text": "from afar"}}])
        send(page, "write a note others can watch")
        approve = page.locator("[class*='st-key-approve-'] button")
        approve.wait_for(timeout=30_000)
        page.wait_for_url(re.compile(r"[?&]c=[0-9a-f]{32}"))
        cid = re.search(r"[?&]c=([0-9a-f]{32})", page.url).group(1)

        other.goto(f"{second.url}/?c={cid}")  # the other server follows the reply from the store
        reply = other.locator("[data-testid='stChatMessage']").last
        reply.get_by_text("Being written by another app server", exact=False).wait_for(timeout=60_000)
        expect(reply).to_contain_text("write_note (test) · waiting for your approval", timeout=30_000)
        expect(reply).to_contain_text(APPROVAL_ELSEWHERE)
        approve.click()
        # the call done and the answer growing after it (the text before the call has word20 too), while the
        # reply is still being written there
        other.wait_for_function(
            """() => { const m = [...document.querySelectorAll("[data-testid='stChatMessage']")].pop();
                       const t = m ? m.innerText : "";
                       return t.includes("write_note (test) · done in") && t.split("word20").length > 2
                              && t.includes("Being written by another app server"); }""", timeout=60_000)
        reply.locator("[data-testid='stCaptionContainer']", has_text="2 model calls").wait_for(timeout=60_000)
        assert "write_note (test) · done in" in reply.inner_text()
        assert reply.inner_text().count("word39") == 2  # the text before the call, and the whole answer
    finally:
        page.close()
        other.close()
        second.stop()
