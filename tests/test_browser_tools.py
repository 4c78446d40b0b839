"""Tools in a real browser: a call that needs approval is approved in the page, its steps are seen live and
again after a refresh. The test MCP server (tests/mcp_server.py) is configured in a secrets file in the app's
home directory (~/.streamlit/secrets.toml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from e2e_support import running_stack, wait_idle

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
        yield (*parts, notes)


def test_a_call_that_needs_approval_is_approved_its_steps_seen_and_found_again_after_a_refresh(stack):
    provider, app, browser, _db, notes = stack
    provider.reset()
    page = browser.new_page()
    try:
        page.goto(app.url)
        wait_idle(page)
        page.locator("[data-testid='stSidebar'] [data-testid='stMultiSelect']").click()
        page.get_by_role("option", name="Test tools").click()
        page.keyboard.press("Escape")
        wait_idle(page)

        provider.set_scenario(None, tool_calls=[{"name": "test__write_note", "arguments": {"text": "hello"}}])
        box = page.locator("[data-testid='stChatInput'] textarea")
        box.fill("please write a note")
        box.press("Enter")

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
