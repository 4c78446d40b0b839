"""The chat page in a real headless Chromium against `streamlit run` on loopback."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from e2e_support import running_stack, wait_idle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("browser")) as parts:
        yield parts


@pytest.fixture
def page(stack):
    provider, app, browser, _ = stack
    provider.reset()
    page = browser.new_page()
    page.goto(app.url)
    wait_idle(page)
    page.wait_for_selector("[data-testid='stChatInput'] textarea")
    yield page
    page.close()


def send(page, text: str) -> None:
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(text)
    box.press("Enter")


def reply_text(page) -> str:
    messages = page.locator("[data-testid='stChatMessage']")
    if messages.count() < 2:
        return ""
    return messages.nth(messages.count() - 1).inner_text()


def wait_message(page, text: str):
    found = page.locator("[data-testid='stChatMessage']", has_text=text).first
    found.wait_for()
    return found


def rows(db_path: Path) -> list[tuple]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("select role, status, content from messages order by id").fetchall()
    finally:
        con.close()


def test_a_message_is_sent_and_the_reply_grows_while_it_streams(stack, page):
    provider, _, _, _ = stack
    provider.set_scenario(None, words=60, tokens_per_second=40)
    send(page, "grow please")
    wait_message(page, "grow please")
    lengths = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lengths.append(len(reply_text(page)))
        if provider.events("complete"):
            break
        time.sleep(0.15)
    assert len({n for n in lengths if n}) >= 3, lengths  # seen at several different lengths: it grew
    wait_message(page, "60 out")  # the figures line under the reply
    assert "Echo: grow please" in reply_text(page)


def test_stop_closes_the_upstream_stream_and_keeps_the_partial_reply_as_stopped(stack, page):
    provider, _, _, db_path = stack
    provider.set_scenario(None, words=400, tokens_per_second=30)
    send(page, "a long answer please")
    provider.wait_for("chunk", timeout=10, count=20)
    stop = page.locator("[data-testid='stChatInput'] button")
    clicked_at = time.time()
    stop.click()
    disconnect = provider.wait_for("disconnect", timeout=5)[0]
    assert disconnect["wall"] - clicked_at < 0.5, disconnect["wall"] - clicked_at
    assert disconnect["chunks"] < 400
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and rows(db_path)[-1][1] == "streaming":
        time.sleep(0.05)
    role, status, content = rows(db_path)[-1]
    assert (role, status) == ("assistant", "stopped")
    assert content.startswith("Echo: a long answer please")
    on_screen = page.locator("[data-testid='stChatMessage']").last.inner_text()
    assert on_screen.split("\n")[-1].strip() and content.split()[:5] == on_screen.split()[1:6]


def test_a_refresh_restores_the_conversation_with_its_figures(stack, page):
    send(page, "survive a refresh")
    page.wait_for_url("**/?c=*")
    wait_idle(page)
    wait_message(page, "20 out")
    page.reload()
    wait_idle(page)
    wait_message(page, "survive a refresh")
    assert "20 out" in reply_text(page)


def test_the_conversation_link_opens_in_a_fresh_page(stack, page):
    _, _, browser, _ = stack
    send(page, "share this link")
    page.wait_for_url("**/?c=*")
    wait_idle(page)
    wait_message(page, "20 out")
    fresh = browser.new_page()
    try:
        fresh.goto(page.url)
        wait_idle(fresh)
        wait_message(fresh, "share this link")
        assert "Echo: share this link" in reply_text(fresh)
    finally:
        fresh.close()


def test_html_script_and_remote_images_in_model_output_stay_inert_in_the_browser(stack, page):
    import http.server
    import threading

    hits = []

    class Pixel(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pixel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pixel = f"http://127.0.0.1:{server.server_address[1]}/p.png"
    provider, _, _, _ = stack
    provider.set_scenario(None, text=(f'Hi <script>window.__pwned = 1</script> <img src="{pixel}?html" '
                                      f'onerror="window.__pwned = 2"> and ![x]({pixel}?md) end'))
    try:
        send(page, "<b>not bold</b> <img src=x onerror='window.__pwned = 3'>")
        wait_message(page, " out")
        time_to_load = 1.0
        page.wait_for_timeout(time_to_load * 1000)
        assert page.evaluate("() => window.__pwned") is None
        assert hits == []
        assert "not bold" in page.locator("[data-testid='stChatMessage']").first.inner_text()
    finally:
        server.shutdown()


def test_a_reply_that_ends_before_the_provider_finished_it_is_marked_unfinished_on_screen_and_after_a_refresh(
        stack, page):
    provider, _, _, db_path = stack
    provider.set_scenario(None, words=40, end_after=7, tokens_per_second=50)
    send(page, "a reply that will stop short")
    notice = page.get_by_text("The reply ended before the provider finished it", exact=False)
    notice.wait_for(timeout=10_000)
    assert rows(db_path)[-1][1] == "unfinished"
    last = page.locator("[data-testid='stChatMessage']").last
    assert "Echo: a reply that will stop short" in last.inner_text() and "unfinished" in last.inner_text()
    assert page.get_by_role("button", name="Retry").count() == 1
    page.reload()
    wait_idle(page)
    page.get_by_text("The reply ended before the provider finished it", exact=False).wait_for()


# ---------------------------------------------------------------- what a daily user expects (issue 19)


def test_copy_puts_the_whole_reply_on_the_clipboard_as_markdown(stack, page):
    provider, app, browser, _ = stack
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=app.url)
    markdown = "# Plan\n\n- **first** step\n- `second` step"
    provider.set_scenario(None, text=markdown)
    send(page, "a plan please")
    wait_message(page, " out")
    wait_idle(page)
    reply = page.locator("[data-testid='stChatMessage']").last
    reply.get_by_role("button", name="Copy").click()
    reply.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == markdown


def test_each_message_shows_its_time_and_resend_closes_the_edit_popover(stack, page):
    import re

    send(page, "helo")
    wait_message(page, "20 out")
    wait_idle(page)
    assert re.search(r" · \d\d:\d\d$", reply_text(page).strip())  # the browser's own time zone: no "UTC"
    page.get_by_role("button", name="Edit").click()
    box = page.get_by_label("Your last message")
    box.fill("hello")
    page.get_by_role("button", name="Resend").click()
    wait_message(page, "Echo: hello lorem")
    wait_idle(page)
    assert not page.get_by_label("Your last message").is_visible()


def test_the_next_sends_estimate_sits_under_the_input_and_follows_the_model(stack, page):
    estimate = page.get_by_text("Next send to", exact=False)
    estimate.wait_for()
    assert "openai:gpt-4o-mini" in estimate.inner_text()
    box = page.locator("[data-testid='stChatInput']").bounding_box()
    assert estimate.bounding_box()["y"] > box["y"]  # below the input, where the eye is before Send
    page.get_by_label("Model").click()  # Streamlit's selectbox opens a list
    page.get_by_role("option", name="anthropic:claude-haiku-4-5").click()
    wait_idle(page)
    page.get_by_text("Next send to anthropic:claude-haiku-4-5", exact=False).wait_for()
