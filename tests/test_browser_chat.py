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


def stop_button(page):
    """The Stop button of the reply being written (not the toolbar's Stop)."""
    return page.locator("[class*='st-key-stop-'] button").first


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
    stop_button(page).click()
    disconnect = provider.wait_for("disconnect", timeout=5)[0]
    assert disconnect["chunks"] < 400  # cut off (the time it takes is a benchmark figure)
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


# ---------------------------------------------------------------- a reply belongs to its conversation


def conversation_url(page) -> str:
    page.wait_for_url("**/?c=*")
    return page.url


def test_a_reply_goes_on_when_the_user_leaves_and_is_followed_again_on_return(stack, page):
    provider, _, _, db_path = stack
    provider.set_scenario(None, words=120, tokens_per_second=40)
    send(page, "leave and come back")
    provider.wait_for("chunk", timeout=10, count=10)
    url = conversation_url(page)
    page.get_by_role("button", name="New chat").click()  # leave mid-reply
    page.wait_for_function("() => !location.search.includes('c=')")
    provider.wait_for("chunk", timeout=10, count=40)
    assert rows(db_path)[-1][1] == "streaming" and not provider.events("disconnect")
    page.goto(url)  # come back: the reply is still being written, from where it is
    wait_message(page, "leave and come back")
    stop_button(page).wait_for(timeout=5_000)
    assert len(reply_text(page).split()) >= 30
    wait_message(page, "120 out")  # then it completes, with its figures
    assert rows(db_path)[-1][1] == "complete" and not provider.events("disconnect")


def test_stop_during_regenerate_closes_the_upstream_and_the_page_settles_without_another_click(stack, page):
    provider, _, _, db_path = stack
    provider.set_scenario(None, words=10)
    send(page, "regenerate me")
    wait_message(page, "10 out")
    provider.set_scenario(None, words=400, tokens_per_second=40)
    page.get_by_role("button", name="Regenerate", exact=True).click()
    provider.wait_for("chunk", timeout=10, count=12)
    stop_button(page).click()
    disconnect = provider.wait_for("disconnect", timeout=5)[0]
    assert disconnect["chunks"] < 400  # the upstream was cut off (the time it takes is a benchmark figure)
    # settled: the partial text, its figures marked "stopped by you", and Retry, with no further click
    page.locator("[data-testid='stChatMessage']", has_text="stopped by you").wait_for(timeout=2_000)
    page.get_by_role("button", name="Retry", exact=True).wait_for(timeout=2_000)
    assert stop_button(page).count() == 0
    assert rows(db_path)[-1][1] == "stopped"


def test_a_40000_character_reply_is_readable_to_its_last_word_after_a_refresh(stack, page):
    provider, _, _, _ = stack
    provider.set_scenario(None, text="lorem ipsum dolor " * 2_222 + "THE-VERY-LAST-WORD")
    send(page, "a very long answer")
    wait_message(page, "THE-VERY-LAST-WORD")
    page.reload()
    wait_idle(page)
    last = wait_message(page, "THE-VERY-LAST-WORD")
    assert len(last.inner_text()) > 40_000


def test_two_tabs_on_one_conversation_see_the_same_live_reply(stack, page):
    provider, _, browser, db_path = stack
    provider.set_scenario(None, words=600, tokens_per_second=40)  # 15 s: time for a second tab to load
    send(page, "watch together")
    provider.wait_for("chunk", timeout=10, count=5)
    other = browser.new_page()
    try:
        other.goto(conversation_url(page))
        stop_button(other).wait_for(timeout=10_000)  # the second tab follows the same reply live
        other.wait_for_function(  # the pinned input says so (drawn in its own container: allow it to catch up)
            "() => document.querySelector(\"[data-testid='stChatInput'] textarea\")"
            "?.placeholder.includes('A reply is being written')", timeout=10_000)
        for tab in (page, other):
            tab.locator("[data-testid='stChatMessage']", has_text="600 out").wait_for(timeout=60_000)
        assert reply_text(page) == reply_text(other)
        assert len(provider.events("request")) == 1  # one reply, not two
    finally:
        other.close()


def test_a_reopened_conversation_shows_its_latest_messages_with_the_input_pinned_in_view(stack, page):
    provider, _, _, _ = stack
    provider.set_scenario(None, words=150)
    for i in range(4):
        send(page, f"message number {i}")
        wait_message(page, f"Echo: message number {i}")
        page.wait_for_function("() => !document.querySelector(\"[class*='st-key-stop-']\")")
    page.reload()
    wait_idle(page)
    wait_message(page, "Echo: message number 3")
    page.wait_for_timeout(500)
    box = page.locator("[data-testid='stChatInput']").bounding_box()
    viewport = page.viewport_size
    assert box["y"] + box["height"] <= viewport["height"] + 1  # the input is on screen, at the bottom
    last = page.locator("[data-testid='stChatMessage']").last.bounding_box()
    assert last["y"] < viewport["height"]  # and the latest message is in view, not the first


def test_a_reply_written_by_another_app_process_is_followed_from_its_checkpoints(stack, page, tmp_path):
    from e2e_support import AppProcess, app_env

    provider, _, browser, db_path = stack
    second = AppProcess(app_env(provider.url, db_path), log=tmp_path / "second.log")  # a replica, same store
    other = browser.new_page()
    try:
        provider.set_scenario(None, words=300, tokens_per_second=20)
        send(page, "seen from the other replica")
        provider.wait_for("chunk", timeout=10, count=5)
        cid = conversation_url(page).split("c=")[1]
        other.goto(f"{second.url}/?c={cid}")
        other.get_by_text("Being written by another app server", exact=False).wait_for(timeout=60_000)
        other.wait_for_function(
            "() => document.querySelector(\"[data-testid='stChatInput'] textarea\")"
            "?.placeholder.includes('A reply is being written')", timeout=10_000)
        other.locator("[data-testid='stChatMessage']", has_text="300 out").wait_for(timeout=60_000)  # settled
        assert "Echo: seen from the other replica" in reply_text(other)
        assert len(provider.events("request")) == 1
    finally:
        other.close()
        second.stop()


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

    from playwright.sync_api import expect

    send(page, "helo")
    wait_message(page, "20 out")
    wait_idle(page)
    assert re.search(r" · \d\d:\d\d$", reply_text(page).strip())  # the browser's own time zone: no "UTC"
    page.get_by_role("button", name="Edit").click()
    box = page.get_by_label("Your last message")
    box.fill("hello")
    page.get_by_role("button", name="Resend").click()
    wait_message(page, "Echo: hello lorem")
    expect(page.get_by_label("Your last message")).to_be_hidden()  # closed, not left open over the new reply


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


SCROLLER_JS = """() => {
  let el = document.querySelector('[data-testid="stMainBlockContainer"]').parentElement;
  while (el && !/(auto|scroll)/.test(getComputedStyle(el).overflowY)) el = el.parentElement;
  return el;
}"""


def gap_below(page) -> float:
    """How far the page is scrolled from its bottom, in pixels."""
    return page.evaluate(f"() => {{ const s = ({SCROLLER_JS})(); "
                         "return s.scrollHeight - s.scrollTop - s.clientHeight; }")


def test_the_view_follows_a_streaming_reply_until_the_user_scrolls_up(stack, page):
    provider, _, _, _ = stack
    provider.set_scenario(None, text="\n\n".join(f"Paragraph {i}." for i in range(80)), tokens_per_second=2000)
    send(page, "a first long reply")
    wait_message(page, "Paragraph 79.")
    provider.set_scenario(None, words=600, tokens_per_second=60)
    send(page, "a reply to follow")
    provider.wait_for("chunk", timeout=10, count=150)
    # the growing reply is followed: the page is back at its bottom after each growth (a loaded machine may
    # draw a chunk before it scrolls, so the gap is sampled until it closes; unfollowed, it only grows)
    gaps = []
    for _ in range(40):
        gaps.append(gap_below(page))
        if gaps[-1] < 60:
            break
        page.wait_for_timeout(50)
    assert gaps[-1] < 60, gaps
    page.mouse.move(640, 300)
    page.mouse.wheel(0, -3000)  # the user scrolls up to read
    page.wait_for_timeout(300)
    left_at = gap_below(page)
    assert left_at > 200
    provider.wait_for("chunk", timeout=20, count=400)  # the reply grows on below
    page.wait_for_timeout(300)
    assert gap_below(page) > left_at  # left where the user put it: the new text is below the view
    stop_button(page).click()
