"""Identity through a trusted proxy header, in a real browser: each user sees only their own chats."""

from __future__ import annotations

import pytest

from e2e_support import AppProcess, FakeProviderProcess, app_env, launch_chromium, wait_idle

pytestmark = pytest.mark.browser


def open_as(browser, url: str, email: str | None):
    page = browser.new_page()
    if email:
        page.set_extra_http_headers({"X-Forwarded-Email": email})
    page.goto(url)
    wait_idle(page)
    return page


def test_users_behind_the_proxy_see_only_their_own_conversations(tmp_path):
    from playwright.sync_api import sync_playwright

    provider = FakeProviderProcess()
    env = app_env(provider.url, tmp_path / "chat.db", CHAT_AUTH="header", CHAT_DAILY_LIMIT_USD="0.000001")
    app = AppProcess(env, log=tmp_path / "app.log")
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp_path / "profile")
            alice = open_as(browser, app.url, "alice@example.com")
            assert "Signed in as alice@example.com" in alice.locator("[data-testid='stSidebar']").inner_text()
            box = alice.locator("[data-testid='stChatInput'] textarea")
            box.fill("alice's secret plan")
            box.press("Enter")
            alice.wait_for_url("**/?c=*")
            alice.locator("[data-testid='stChatMessage']", has_text=" out").first.wait_for()
            link = alice.url

            # The daily limit (a millionth of a dollar) is now spent: the next turn is refused, clearly.
            box.fill("one more")
            box.press("Enter")
            alice.locator("[data-testid='stChatMessage']", has_text="daily limit").first.wait_for()
            assert len(provider.events("request")) == 1

            bob = open_as(browser, link, "bob@example.com")
            assert "not found" in bob.locator("[data-testid='stMainBlockContainer']").inner_text()
            assert "secret plan" not in bob.content()

            nobody = open_as(browser, app.url, None)
            assert "X-Forwarded-Email" in nobody.locator("[data-testid='stMainBlockContainer']").inner_text()
            assert not nobody.locator("[data-testid='stChatInput']").count()
            browser.close()
    finally:
        app.stop()
        provider.stop()
