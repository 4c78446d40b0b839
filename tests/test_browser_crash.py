"""Crash safety: the server process is killed (SIGKILL) while a reply streams, then restarted."""

from __future__ import annotations

import sqlite3
import time

import pytest

from e2e_support import AppProcess, FakeProviderProcess, app_env, launch_chromium, wait_idle

pytestmark = pytest.mark.browser


def test_a_reply_cut_by_a_server_crash_is_kept_up_to_the_last_second_and_marked_interrupted(tmp_path):
    from playwright.sync_api import sync_playwright

    provider = FakeProviderProcess(log=tmp_path / "provider.log")
    db_path = tmp_path / "chat.db"
    env = app_env(provider.url, db_path)
    app = AppProcess(env, log=tmp_path / "app.log")
    restarted = None
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp_path / "profile")
            page = browser.new_page()
            page.goto(app.url)
            wait_idle(page)
            provider.set_scenario(None, words=400, tokens_per_second=20)
            box = page.locator("[data-testid='stChatInput'] textarea")
            box.fill("crash during this")
            box.press("Enter")
            page.wait_for_url("**/?c=*")
            url = page.url
            provider.wait_for("chunk", timeout=10, count=50)  # 2.5 s in: two checkpoints have happened
            sent_before_kill = len(provider.events("chunk"))
            app.kill()  # SIGKILL: no finally blocks run

            con = sqlite3.connect(db_path)
            status, content = con.execute(
                "select status, content from messages where role='assistant'").fetchone()
            user = con.execute("select content from messages where role='user'").fetchone()[0]
            con.close()
            assert user == "crash during this"
            assert status == "streaming"  # as the crash left it
            kept = len(content.split())
            assert kept >= sent_before_kill - 20 - 2  # at most about a second (20 chunks) lost

            restarted = AppProcess(env, log=tmp_path / "app2.log")
            page2 = browser.new_page()
            # A reply is taken for a crashed one once it has not been written for a few seconds (live ones
            # are written every second): reload until then.
            deadline = time.monotonic() + 15
            while True:
                page2.goto(url.replace(app.url, restarted.url))
                wait_idle(page2)
                reply = page2.locator("[data-testid='stChatMessage']").nth(1)
                reply.wait_for()
                if "interrupted" in reply.inner_text() or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert "interrupted" in reply.inner_text()
            assert " ".join(content.split()[:6]) in " ".join(reply.inner_text().split())
            con = sqlite3.connect(db_path)
            assert con.execute("select status from messages where role='assistant'").fetchone()[0] == "interrupted"
            con.close()
            browser.close()
    finally:
        app.stop()
        if restarted is not None:
            restarted.stop()
        provider.stop()

