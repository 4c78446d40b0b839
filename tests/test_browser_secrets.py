"""API keys never reach the database, logs, exports, error messages or the page.

A full session in a real browser (chats on two providers and a named endpoint, an authentication
failure that echoes the key, a comparison, History with its exports), then every artifact is searched
for the keys."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from e2e_support import AppProcess, FakeProviderProcess, app_env, launch_chromium, wait_idle

pytestmark = pytest.mark.browser


KEYS = {
    "OPENAI_API_KEY": "oa-live-7f3a9c2e51d84b6f",
    "ANTHROPIC_API_KEY": "an-live-9e8d7c6b5a4f3e2d",
    "endpoint": "gw-live-1a2b3c4d5e6f7a8b",
}


def chat(page, text: str) -> None:
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(text)
    box.press("Enter")
    page.locator("[data-testid='stChatMessage']", has_text=text).first.wait_for()
    # settled: the reply's figures line is drawn (after the page's rerun)
    page.locator("[data-testid='stChatMessage']").last.locator("[data-testid='stCaptionContainer']",
                                                               has_text=" · ").wait_for()
    wait_idle(page)


def pick_model(page, model_id: str) -> None:
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
    page.get_by_role("option", name=model_id).click()
    wait_idle(page)


def test_no_artifact_of_a_full_session_contains_an_api_key(tmp_path):
    from playwright.sync_api import sync_playwright

    provider = FakeProviderProcess(log=tmp_path / "provider.log")
    db_path = tmp_path / "chat.db"
    endpoints = {"gateway": {"base_url": provider.url + "/v1", "api_key": KEYS["endpoint"], "models": ["gw-model"]}}
    env = app_env(provider.url, db_path, OPENAI_API_KEY=KEYS["OPENAI_API_KEY"],
                  ANTHROPIC_API_KEY=KEYS["ANTHROPIC_API_KEY"], CHAT_ENDPOINTS=json.dumps(endpoints))
    app = AppProcess(env, log=tmp_path / "app.log")
    artifacts: dict[str, bytes] = {}
    try:
        provider.set_scenario(None, api_key=None)  # accept any key
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp_path / "profile")
            page = browser.new_page()
            page.goto(app.url)
            wait_idle(page)
            chat(page, "hello openai")
            provider.set_scenario(None, api_key="not-the-key-you-sent")  # a 401 that echoes the key it got
            chat(page, "this one fails")
            page.locator("[data-testid='stAlert']", has_text="rejected the API key").first.wait_for()
            artifacts["chat page, OpenAI 401"] = page.content().encode()
            pick_model(page, "anthropic:claude-haiku-4-5")
            chat(page, "hello anthropic, failing")
            page.locator("[data-testid='stAlert']", has_text="rejected the API key").last.wait_for()
            artifacts["chat page, Anthropic 401"] = page.content().encode()
            provider.set_scenario(None, api_key=None)
            pick_model(page, "gateway:gw-model")
            chat(page, "hello gateway")
            artifacts["chat page"] = page.content().encode()

            page.goto(app.url + "/compare")
            wait_idle(page)
            provider.reset()
            provider.set_scenario(None, api_key=None)
            box = page.locator(".st-key-cmp_prompt textarea")
            box.fill("compare this")
            box.press("Control+Enter")
            wait_idle(page)
            page.locator(".st-key-cmp_run button").click()
            provider.wait_for("complete", timeout=15, count=2)
            page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=15_000)
            wait_idle(page)
            artifacts["compare page"] = page.content().encode()

            con = sqlite3.connect(db_path)
            cid = con.execute("select id from conversations where source='chat' order by created_at limit 1"
                              ).fetchone()[0]
            con.close()
            page.goto(f"{app.url}/history?open={cid}")
            wait_idle(page)
            page.locator("[data-testid='stChatMessage']").first.wait_for()
            for label in ("Export Markdown", "Export JSON", "Download table (CSV)"):
                with page.expect_download() as download:
                    page.get_by_role("button", name=label).click()
                artifacts[label] = Path(download.value.path()).read_bytes()
            page.goto(f"{app.url}/history?tab=analytics")
            wait_idle(page)
            artifacts["history pages"] = page.content().encode()
            browser.close()
    finally:
        app.stop()
        provider.stop()

    for suffix in ("", "-wal", "-shm"):
        path = Path(str(db_path) + suffix)
        if path.exists():
            artifacts[path.name] = path.read_bytes()
    artifacts["app log"] = (tmp_path / "app.log").read_bytes()
    assert b"hello gateway" in artifacts["chat.db"] + artifacts.get("chat.db-wal", b"")  # the session happened
    assert all(len(a) > 100 for a in artifacts.values()), {k: len(v) for k, v in artifacts.items()}
    for name, content in artifacts.items():
        for key in KEYS.values():
            assert key.encode() not in content, f"{key} found in {name}"
