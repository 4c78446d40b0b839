"""Retries the SDKs make before streaming are visible ("retrying…") on the chat page."""

from __future__ import annotations

import pytest

from e2e_support import AppProcess, FakeProviderProcess, app_env, launch_chromium, wait_idle

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("knobs", [{"status": 503}, {"status": 502, "error_html": True},
                                   {"status": 524, "error_html": True}], ids=["503", "502-page", "524-page"])
def test_a_retry_before_streaming_is_shown_then_the_reply_arrives(tmp_path, knobs):
    from playwright.sync_api import sync_playwright

    provider = FakeProviderProcess()
    app = AppProcess(app_env(provider.url, tmp_path / "chat.db", CHAT_MAX_RETRIES="2"), log=tmp_path / "app.log")
    try:
        provider.set_scenario(None, fail_times=1, retry_after="2", **knobs)
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp_path / "profile")
            page = browser.new_page()
            page.goto(app.url)
            wait_idle(page)
            box = page.locator("[data-testid='stChatInput'] textarea")
            box.fill("are you there")
            box.press("Enter")
            page.get_by_text("retrying (attempt 2)", exact=False).wait_for(timeout=10_000)
            page.locator("[data-testid='stChatMessage']", has_text="Echo: are you there").first.wait_for()
            assert len(provider.events("request")) == 2
            browser.close()
    finally:
        app.stop()
        provider.stop()
