"""Two `streamlit run` replicas on different ports sharing one PostgreSQL database, driven in headless Chromium:
what one replica stored is listed, searched and continued on the other, and a replica killed mid-reply leaves
its partial reply, marked interrupted by the survivor."""

from __future__ import annotations

import re
import time

import pytest

from chat.store import open_store
from e2e_support import AppProcess, FakeProviderProcess, app_env, launch_chromium, wait_idle

pytestmark = pytest.mark.browser


def send(page, text: str) -> None:
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(text)
    box.press("Enter")


def conversation_id(page) -> str:
    page.wait_for_url(re.compile(r"[?&]c=[0-9a-f]{32}"))
    return re.search(r"[?&]c=([0-9a-f]{32})", page.url).group(1)


def test_two_replicas_share_conversations_and_a_crashed_replicas_reply_is_marked_by_the_other(tmp_path, pg_server):
    from playwright.sync_api import sync_playwright

    url = pg_server.new_database(template="chat_template")
    provider = FakeProviderProcess(log=tmp_path / "provider.log")
    env = app_env(provider.url, url)  # type: ignore[arg-type]  (CHAT_DB is the URL)
    first = second = None
    try:
        first = AppProcess(env, log=tmp_path / "first.log")
        second = AppProcess(env, log=tmp_path / "second.log")
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp_path / "profile")
            try:
                # started on the first replica
                page = browser.new_page()
                page.goto(first.url)
                wait_idle(page)
                send(page, "replica handoff walrus")
                cid = conversation_id(page)
                page.locator("[data-testid='stChatMessage']", has_text="Echo: replica handoff walrus").wait_for()
                provider.wait_for("complete", timeout=10)

                # listed and found on the second
                other = browser.new_page()
                other.goto(second.url + "/history")
                wait_idle(other)
                other.locator("[role='gridcell']", has_text="replica handoff walrus").first.wait_for(
                    state="attached")  # a cell of the table (drawn on a canvas)
                box = other.get_by_placeholder("Search every message", exact=False)
                box.fill("walrus")
                box.press("Enter")
                wait_idle(other)
                other.get_by_text("1 conversation found").wait_for()

                # continued on the second
                other.goto(f"{second.url}/?c={cid}")
                wait_idle(other)
                other.locator("[data-testid='stChatMessage']", has_text="replica handoff walrus").first.wait_for()
                send(other, "and a follow-up from the other replica")
                other.locator("[data-testid='stChatMessage']",
                              has_text="Echo: and a follow-up from the other replica").wait_for()
                provider.wait_for("complete", timeout=10, count=2)

                # the first replica killed while a reply streams
                provider.reset()  # the log counts this reply's chunks only
                provider.set_scenario(None, words=400, tokens_per_second=20)
                page.goto(first.url)
                wait_idle(page)
                send(page, "crash while answering this")
                crashed = conversation_id(page)
                provider.wait_for("chunk", timeout=15, count=50)  # 2.5 s in: checkpoints have been written
                first.kill()  # SIGKILL: no finally block runs

                deadline = time.monotonic() + 20  # stale after 5 s without a checkpoint: reload until then
                while True:
                    other.goto(f"{second.url}/?c={crashed}")
                    wait_idle(other)
                    reply = other.locator("[data-testid='stChatMessage']").nth(1)
                    reply.wait_for()
                    if "interrupted" in reply.inner_text() or time.monotonic() > deadline:
                        break
                    time.sleep(1)
                assert "interrupted" in reply.inner_text()
                assert "Echo: crash while answering" in " ".join(reply.inner_text().split())
            finally:
                browser.close()

        store = open_store(url)
        try:
            rows = store.messages(cid)
            assert [(m["position"], m["role"], m["status"]) for m in rows] == [
                (1, "user", "complete"), (2, "assistant", "complete"), (3, "user", "complete"),
                (4, "assistant", "complete")]
            partial = store.messages(crashed)[-1]
            assert partial["status"] == "interrupted" and len(partial["content"].split()) >= 20
            assert store.get_conversation(crashed)["error_count"] == 1
        finally:
            store.close()
    finally:
        for app in (first, second):
            if app is not None:
                app.stop()
        provider.stop()
