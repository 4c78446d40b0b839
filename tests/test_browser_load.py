"""Load: twenty browser sessions streaming at once against one server lose and mix up nothing.

(Per-session speed under this load is measured in benchmarks/, not asserted here.)"""

from __future__ import annotations

import sqlite3

import pytest

from e2e_support import AppProcess, FakeProviderProcess, app_env, launch_chromium, open_sessions

pytestmark = pytest.mark.browser


SESSIONS = 20


def test_twenty_sessions_streaming_at_once_each_get_their_own_complete_turn(tmp_path):
    from playwright.sync_api import sync_playwright

    provider = FakeProviderProcess(log=tmp_path / "provider.log")
    db_path = tmp_path / "chat.db"
    app = AppProcess(app_env(provider.url, db_path), log=tmp_path / "app.log")
    try:
        provider.set_scenario(None, words=60, tokens_per_second=20)
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp_path / "profile")
            pages = open_sessions(browser, app.url, SESSIONS)
            for i, page in enumerate(pages):
                box = page.locator("[data-testid='stChatInput'] textarea")
                box.fill(f"session {i} asks")
                box.press("Enter")
            provider.wait_for("complete", timeout=60, count=SESSIONS)
            for i, page in enumerate(pages):
                try:
                    page.locator("[data-testid='stChatMessage']", has_text="60 out").wait_for(timeout=90_000)
                except Exception:
                    page.screenshot(path=str(tmp_path / f"load-{i}.png"))
                    print(i, page.locator("[data-testid='stChatMessage']").all_inner_texts())
                    raise
                text = page.locator("[data-testid='stChatMessage']").nth(1).inner_text()
                assert f"Echo: session {i} asks" in text
            browser.close()
        con = sqlite3.connect(db_path)
        conversations = con.execute("select id, message_count from conversations").fetchall()
        messages = con.execute("select conversation_id, role, status, content from messages").fetchall()
        con.close()
        assert len(conversations) == SESSIONS and all(n == 2 for _, n in conversations)
        by_conversation: dict[str, list] = {}
        for cid, role, status, content in messages:
            by_conversation.setdefault(cid, []).append((role, status, content))
        for turn in by_conversation.values():
            (user_role, _, asked), (reply_role, status, answer) = turn
            assert (user_role, reply_role, status) == ("user", "assistant", "complete")
            assert answer.startswith(f"Echo: {asked}")
        log = (tmp_path / "app.log").read_text()
        assert "database is locked" not in log and "Traceback" not in log
    finally:
        app.stop()
        provider.stop()
