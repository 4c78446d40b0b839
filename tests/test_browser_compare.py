"""The compare page in a real headless Chromium against `streamlit run` on loopback: the columns stream in
parallel, and Stop disconnects every upstream stream."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from e2e_support import running_stack, wait_idle

pytestmark = pytest.mark.browser


# The first three targets the page picks: the default model, then the next ones of the list.
MODELS = ("fast", "medium", "slow")
ENDS = ("complete", "disconnect", "status_error", "drop", "midstream_error")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-compare")
    with running_stack(tmp, OPENAI_MODELS=",".join(MODELS), CHAT_DEFAULT_MODEL="openai:fast") as parts:
        yield parts


@pytest.fixture(scope="module")
def compare_tab(stack):
    """One browser tab on the compare page, shared by the tests (a first page load costs seconds)."""
    _, app, browser, _ = stack
    page = browser.new_page()
    # A deep link as the server's very first request: the app's own navigation, not a folder listing
    # (a folder named pages/ would switch Streamlit into its legacy multipage mode here).
    page.goto(app.url + "/compare")
    wait_idle(page)
    nav = page.locator("[data-testid='stSidebarNav']").inner_text().split()
    assert [w for w in nav if w[0].isupper()] == ["Chat", "Compare", "History"], nav  # words are icons
    page.locator(".st-key-cmp_prompt textarea").wait_for()
    yield page
    page.close()


@pytest.fixture
def page(stack, compare_tab):
    stack[0].reset()
    wait_idle(compare_tab)
    return compare_tab


def three_targets(page) -> None:
    page.locator(".st-key-cmp_count label").filter(has_text="3").click()
    wait_idle(page)
    page.locator(".st-key-cmp_model_2").wait_for()


def run_prompt(page, text: str) -> None:
    box = page.locator(".st-key-cmp_prompt textarea")
    box.fill(text)
    box.press("Control+Enter")  # commit the text before the click
    wait_idle(page)
    page.locator(".st-key-cmp_run button").click()


def spans(log: list[dict]) -> dict[str, tuple[float, float]]:
    """model -> (request arrived, stream ended), from the fake provider's log."""
    starts = {e["request"]: e for e in log if e["kind"] == "request"}
    ends = {e["request"]: e["t"] for e in log if e["kind"] in ENDS}
    return {starts[r]["model"]: (starts[r]["t"], ends[r]) for r in starts if r in ends}


def replies(db_path: Path) -> list[tuple]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute(
            "select c.compare_run_id, m.model, m.status, m.content from messages m "
            "join conversations c on c.id = m.conversation_id "
            "where m.role = 'assistant' and c.source = 'compare' order by m.id").fetchall()
    finally:
        con.close()


def test_three_targets_stream_side_by_side_each_stream_open_while_the_others_are(stack, page):
    provider, _, _, db_path = stack
    for model, rate in zip(MODELS, (60, 40, 30), strict=True):  # 24 words: ~0.4 s, ~0.6 s, ~0.8 s
        provider.set_scenario(model, words=24, tokens_per_second=rate)
    three_targets(page)
    run_prompt(page, "race")
    provider.wait_for("complete", timeout=15, count=3)
    page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=15_000)  # the summary after the rerun
    wait_idle(page)
    timing = spans(provider.log())
    assert set(timing) == set(MODELS)
    # In parallel, not one after another: every request arrived before the first stream ended (in series the
    # second would only be asked for after the first had finished). No clock limit: the machine may be slow.
    assert max(a for a, _ in timing.values()) < min(b for _, b in timing.values()), timing
    # every column shows its full reply, with its figures
    for label, model in zip("ABC", MODELS, strict=True):
        column = page.locator("[data-testid='stColumn']", has_text=f"{label}: openai:{model}").last
        assert "Echo: race" in column.inner_text()
        assert "24 out" in column.inner_text()
    # the ranking names the column whose stored time was shortest (the fast model's, unless the machine
    # stalled it: the page is checked against what was measured, not against the machine's speed)
    con = sqlite3.connect(db_path)
    try:
        durations = dict(con.execute("select model, duration from messages where role = 'assistant'").fetchall())
    finally:
        con.close()
    fastest = "ABC"[MODELS.index(min(durations, key=durations.get))]
    summary = page.locator("[data-testid='stMarkdown']", has_text="Fastest reply").inner_text()
    assert f"Fastest reply: {fastest}" in summary, (summary, durations)


def test_stop_disconnects_every_stream_and_keeps_each_partial_reply_as_stopped(stack, page):
    provider, _, _, db_path = stack
    for model in MODELS:
        provider.set_scenario(model, words=400, tokens_per_second=30)
    three_targets(page)
    run_prompt(page, "never ending")
    deadline = time.monotonic() + 15
    while {e["model"] for e in provider.events("chunk") if e["n"] >= 5} != set(MODELS):
        assert time.monotonic() < deadline, "the three streams did not all start"
        time.sleep(0.05)
    clicked = time.time()
    page.locator(".st-key-cmp_stop button").click()
    disconnects = provider.wait_for("disconnect", timeout=5, count=3)
    assert {d["model"] for d in disconnects} == set(MODELS)
    assert all(d["chunks"] < 400 for d in disconnects)
    assert max(d["wall"] for d in disconnects) - clicked < 1.5
    assert not provider.events("complete")
    settled = time.monotonic() + 5  # the provider sees the disconnect before each reply thread writes its row
    while any(r[2] == "streaming" for r in replies(db_path)[-3:]) and time.monotonic() < settled:
        time.sleep(0.05)
    rows = replies(db_path)[-3:]
    assert [r[2] for r in rows] == ["stopped"] * 3
    assert all(r[3].startswith("Echo: never ending") for r in rows)
    # each column keeps its partial text, marked stopped, drawn by the Stop click's own run
    page.locator("[data-testid='stCaptionContainer']", has_text="stopped by you").nth(2).wait_for(timeout=5_000)
    for label in "ABC":
        column = page.locator("[data-testid='stColumn']", has_text=f"{label}: openai:").last
        assert "Echo: never ending" in column.inner_text() and "stopped by you" in column.inner_text()


def test_one_columns_stop_ends_only_that_column(stack, page):
    provider, _, _, db_path = stack
    three_targets(page)
    for model in MODELS:
        provider.set_scenario(model, words=120, tokens_per_second=40)
    run_prompt(page, "stop only the middle one")
    provider.wait_for("chunk", timeout=10, count=15)
    page.locator(".st-key-cmp_stop_B button").first.click()
    disconnect = provider.wait_for("disconnect", timeout=5)[0]
    assert disconnect["model"] == "medium"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(provider.events("complete")) < 2:
        time.sleep(0.1)
    completed = {e["model"] for e in provider.events("complete")}
    assert completed == {"fast", "slow"}
    wait_idle(page)
    statuses = {model: status for _, model, status, _ in replies(db_path)[-3:]}
    assert statuses == {"fast": "complete", "medium": "stopped", "slow": "complete"}
