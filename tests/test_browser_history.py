"""The History page in a real headless Chromium against `streamlit run` on loopback: search, then open."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chat.providers.base import Usage
from chat.store import open_store
from e2e_support import AppProcess, app_env, launch_chromium, wait_idle

pytestmark = pytest.mark.browser


NO_PROVIDER = "http://127.0.0.1:9"  # the History page never calls a provider


def seed(db_path: Path) -> str:
    store = open_store(db_path)
    try:
        target = None
        for question, answer in [("How do I bake bread?", "Flour, water, salt and time."),
                                 ("Which animal smiles the most?", "The quokka, a small marsupial, looks like "
                                                                   "it is always smiling."),
                                 ("Best way to learn SQL?", "Write queries every day.")]:
            cid = store.create_conversation(user="local", settings={"provider": "openai", "model": "gpt-4o-mini",
                                                                    "system": "Be kind."})
            store.add_user_message(cid, question)
            reply = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
            store.finish_reply(reply, content=answer, status="complete", cost=0.0025, ttft=0.41, duration=1.41,
                               usage=Usage(1234, 256, input_exact=True, output_exact=True))
            if "quokka" in answer:
                target = cid
        return target
    finally:
        store.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("browser-history")
    db_path = tmp / "chat.db"
    target = seed(db_path)
    app = AppProcess(app_env(NO_PROVIDER, db_path), log=tmp / "app.log")
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp / "profile")
            try:
                yield app, browser, target
            finally:
                browser.close()
    finally:
        app.stop()


def test_searching_then_opening_a_conversation_shows_its_transcript_and_a_shareable_link(stack):
    from playwright.sync_api import expect

    app, browser, target = stack
    page = browser.new_page()
    try:
        page.goto(app.url + "/history")
        wait_idle(page)
        page.get_by_text("3 conversations").wait_for()

        box = page.get_by_placeholder("Search every message", exact=False)
        box.fill("quokka")
        box.press("Enter")
        page.wait_for_url(re.compile(r"[?&]q=quokka"))
        wait_idle(page)
        page.get_by_text("1 conversation found").wait_for()
        page.locator("strong", has_text=re.compile("^quokka$", re.IGNORECASE)).first.wait_for()  # highlighted

        page.locator(f".st-key-open-{target} button").click()
        page.wait_for_url(re.compile(rf"[?&]open={target}"))
        wait_idle(page)
        reply = page.locator("[data-testid='stChatMessage']", has_text="always smiling")
        reply.wait_for()
        assert "1,234 in · 256 out · $0.0025" in reply.inner_text()
        assert page.locator("[data-testid='stChatMessage']").count() == 2

        shared = browser.new_page()  # the link opens the same view
        try:
            shared.goto(page.url)
            wait_idle(shared)
            shared.locator("[data-testid='stChatMessage']", has_text="always smiling").wait_for()
            shared.get_by_text("1 conversation found").wait_for()
            expect(shared.get_by_placeholder("Search every message", exact=False)).to_have_value("quokka")
        finally:
            shared.close()

        page.get_by_role("button", name="Continue in chat").click()
        page.wait_for_url(re.compile(rf"[?&]c={target}"))
        wait_idle(page)
        page.locator("[data-testid='stChatMessage']", has_text="Which animal smiles the most?").wait_for()
        page.locator("[data-testid='stChatInput'] textarea").wait_for()
    finally:
        page.close()


def test_open_brings_the_transcript_into_view(stack):
    from playwright.sync_api import expect

    app, browser, target = stack
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": 1280, "height": 600})
        page.goto(app.url + "/history?q=quokka")
        wait_idle(page)
        page.get_by_text("1 conversation found").wait_for()
        page.locator(f".st-key-open-{target} button").click()
        page.wait_for_url(re.compile(rf"[?&]open={target}"))
        wait_idle(page)
        heading = page.get_by_role("heading", name="Which animal smiles the most?")
        heading.wait_for()
        expect(heading).to_be_in_viewport()
        expect(page.get_by_text("1 conversation found")).not_to_be_in_viewport()  # it scrolled to get there
    finally:
        page.close()
