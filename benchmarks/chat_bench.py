"""Chat page speed in a real browser, each figure next to a baseline measured in the same run.

1. Streaming: tokens/s and first-token overhead seen in the browser at provider rates of 50, 500, 2,000 and
   5,000 tokens/s (6,000 tokens at the last), against the raw openai SDK reading the same stream.
2. Long conversations: Send -> first token in the browser at 10, 100 and 1,000 stored messages.
3. Stop: click -> upstream disconnect, and click -> the page settled ("stopped by you" and Retry drawn).
4. Long replies: a page opening on a 100,000-character reply, beside one opening on a 1,000-character one;
   and a reply left mid-stream (New chat) is stored complete.

    .venv/bin/python benchmarks/chat_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from _support import (
    OBSERVER_JS,
    AppProcess,
    FakeProviderProcess,
    app_env,
    launch_chromium,
    median,
    over_websockets,
    table,
    wait_idle,
    warm_up,
)
from ws_session import WsSession

END = "ZZEND"


def reply_text(words: int, tag: str = "") -> str:
    return f"Echo{tag}: " + " ".join(f"w{i}" for i in range(words)) + f" {END}{tag}"


def raw_sdk(provider: FakeProviderProcess, words: int) -> tuple[float, float]:
    """(tokens/s, first-token overhead s) for the bare SDK loop: the baseline."""
    import openai

    client = openai.OpenAI(base_url=provider.url + "/v1", api_key="test-key", max_retries=0)
    started = time.time()
    first = None
    n = 0
    with client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                        stream=True, stream_options={"include_usage": True}) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
                if first is None:
                    first = time.time()
    end = time.time()
    sent_first = provider.events("chunk")[0]["wall"]
    client.close()
    del started
    return (n - 1) / (end - first), first - sent_first


def browser_stream(page, provider: FakeProviderProcess, words: int, prompt: str, rate: int,
                   ) -> tuple[float, float, float]:
    """(tokens/s seen, first-token overhead s, Enter -> first text s) for one reply in the browser."""
    tag = uuid.uuid4().hex[:8]
    provider.reset()
    provider.set_scenario(None, text=reply_text(words, tag), tokens_per_second=rate)
    page.evaluate(OBSERVER_JS, [f"Echo{tag}:", f"{END}{tag}"])
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(prompt)
    pressed = time.time()
    box.press("Enter")
    page.wait_for_function("() => window.__marks.last", timeout=120_000)
    marks = page.evaluate("() => window.__marks")
    chunks = provider.events("chunk")
    first_sent = chunks[0]["wall"]
    last_sent = chunks[-1]["wall"]
    first_seen, last_seen = marks["first"] / 1000, marks["last"] / 1000
    rate_seen = (words + 1) / max(last_seen - first_seen, 1e-6)
    del last_sent
    wait_idle(page)
    return rate_seen, first_seen - first_sent, first_seen - pressed


def server_first_token(app, provider: FakeProviderProcess, runs: int) -> float:
    """Median first-token overhead (s) seen by a browser-less websocket session: the server's share."""
    async def run() -> list[float]:
        overheads = []
        for i in range(runs):
            session = WsSession(app.url)
            await session.connect()
            tag = uuid.uuid4().hex[:8]
            provider.reset()
            provider.set_scenario(None, text=reply_text(100, tag), tokens_per_second=500)
            first, _ = await session.stream_reply(f"server run {i}", f"Echo{tag}:", f"{END}{tag}")
            overheads.append(first - provider.events("chunk")[0]["wall"])
            await session.close()
        return overheads

    return median(over_websockets(run()))


def seed_conversation(db_path: Path, n_messages: int) -> str:
    """A conversation of n stored messages, written with plain SQL after the app created the schema."""
    cid = uuid.uuid4().hex
    now = "2026-11-21T00:00:00.000000Z"
    con = sqlite3.connect(db_path)
    with con:
        con.execute(
            "insert into conversations (id, user, title, source, created_at, updated_at, settings, message_count)"
            " values (?, 'local', 'long', 'chat', ?, ?, ?, ?)",
            (cid, now, now, json.dumps({"provider": "openai", "model": "gpt-4o-mini"}), n_messages))
        rows = []
        for i in range(n_messages):
            role = "user" if i % 2 == 0 else "assistant"
            text = f"Message {i}: " + ("some **markdown** text with a list\n\n- one\n- two\n" if role == "assistant"
                                       else f"a question about item {i}?")
            rows.append((cid, i + 1, role, text, "complete", "openai", "gpt-4o-mini", 10, 20, 1, 1, 0.0001,
                         now, now))
        con.executemany(
            "insert into messages (conversation_id, position, role, content, status, provider, model, input_tokens,"
            " output_tokens, input_exact, output_exact, cost, created_at, updated_at)"
            " values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.close()
    return cid


def stop_and_long_replies(page, app, provider: FakeProviderProcess, db_path: Path, reps: int) -> list[str]:
    stop_rows = []
    for i in range(reps + 2):
        page.goto(app.url)
        wait_idle(page)
        provider.reset()
        provider.set_scenario(None, words=2000, tokens_per_second=50)
        box = page.locator("[data-testid='stChatInput'] textarea")
        box.fill(f"stop run {i}")
        box.press("Enter")
        provider.wait_for("chunk", timeout=10, count=20)
        stop = page.locator("[class*='st-key-stop-'] button").first
        clicked = time.time()
        stop.click()
        page.locator("[data-testid='stChatMessage']", has_text="stopped by you").wait_for(timeout=10_000)
        page.get_by_role("button", name="Retry", exact=True).wait_for(timeout=10_000)
        settled = time.time()
        disconnect = provider.wait_for("disconnect", timeout=5)[0]["wall"]
        stop_rows.append((disconnect - clicked, settled - clicked))
    out = [f"Stop (median of {len(stop_rows)}): click -> upstream disconnect "
           f"{median([r[0] for r in stop_rows]) * 1000:.0f} ms (worst {max(r[0] for r in stop_rows) * 1000:.0f}); "
           f"click -> page settled {median([r[1] for r in stop_rows]) * 1000:.0f} ms "
           f"(worst {max(r[1] for r in stop_rows) * 1000:.0f})", ""]

    opened = {}
    for chars in (1_000, 100_000):
        provider.reset()
        provider.set_scenario(None, text="lorem ipsum dolor " * (chars // 18) + f"{END}{chars}")
        page.goto(app.url)
        wait_idle(page)
        box = page.locator("[data-testid='stChatInput'] textarea")
        box.fill(f"a reply of {chars:,} characters")
        box.press("Enter")
        page.locator("[data-testid='stChatMessage']", has_text=f"{END}{chars}").last.wait_for(timeout=60_000)
        page.wait_for_url("**/?c=*")
        wait_idle(page)
        url = page.url
        times = []
        for _ in range(reps):
            started = time.time()
            page.goto(url)
            page.locator("[data-testid='stChatMessage']", has_text=f"{END}{chars}").last.wait_for(timeout=60_000)
            times.append(time.time() - started)
        opened[chars] = median(times)
    out.append(f"Opening a conversation: with a 100,000-character reply {opened[100_000] * 1000:.0f} ms, with a "
               f"1,000-character one {opened[1_000] * 1000:.0f} ms ({opened[100_000] / opened[1_000]:.2f}x), "
               f"to the reply's last word on screen (median of {reps})")

    provider.reset()
    provider.set_scenario(None, words=200, tokens_per_second=100)
    page.goto(app.url)
    wait_idle(page)
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill("left mid-reply")
    box.press("Enter")
    provider.wait_for("chunk", timeout=10, count=20)
    page.get_by_role("button", name="New chat").click()
    provider.wait_for("complete", timeout=30)
    time.sleep(0.5)
    con = sqlite3.connect(db_path)
    status = con.execute("select status from messages where role = 'assistant' order by id desc limit 1").fetchone()
    con.close()
    out.append(f"New chat mid-reply: the reply was stored {status[0]}, disconnects: "
               f"{len(provider.events('disconnect'))}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    provider = FakeProviderProcess()
    db_path = tmp / "chat.db"
    app = AppProcess(app_env(provider.url, db_path), log=tmp / "app.log")
    out = []
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp / "profile")
            warm_up(browser, app, provider)
            page = browser.new_page()

            rows = []
            for rate, words in ((50, 100), (500, 1000), (2000, 3000), (5000, 6000)):
                raw = []
                for _ in range(reps):
                    provider.reset()
                    provider.set_scenario(None, text=reply_text(words), tokens_per_second=rate)
                    raw.append(raw_sdk(provider, words))
                seen = []
                for i in range(reps):
                    page.goto(app.url)
                    wait_idle(page)
                    seen.append(browser_stream(page, provider, words, f"rate {rate} run {i}", rate))
                raw_rate = median([r[0] for r in raw])
                seen_rate = median([s[0] for s in seen])
                rows.append([rate, f"{raw_rate:,.0f}", f"{seen_rate:,.0f}", f"{seen_rate / raw_rate:.2f}",
                             f"{median([r[1] for r in raw]) * 1000:.0f}", f"{median([s[1] for s in seen]) * 1000:.0f}"])
            server = server_first_token(app, provider, 5 if args.quick else 15)
            out.append(f"Streaming: browser vs raw SDK on the same stream (median of {reps})")
            out.append(table(["provider tok/s", "raw SDK tok/s", "browser tok/s", "ratio",
                              "raw 1st-token ms", "browser 1st-token overhead ms"], rows))
            out.append(f"The server's share of the first-token overhead (provider's first chunk -> the websocket "
                       f"message with that text, browser-less session, 500 tok/s): {server * 1000:.1f} ms")

            rows = []
            for n in (10, 100, 1000):
                cid = seed_conversation(db_path, n)
                firsts, enters = [], []
                for i in range(reps):
                    page.goto(f"{app.url}/?c={cid}")
                    wait_idle(page)
                    page.locator("[data-testid='stChatMessage']", has_text=f"Message {n - 1}:").wait_for()
                    _, first, enter = browser_stream(page, provider, 50, f"long {n} run {i}", 500)
                    firsts.append(first)
                    enters.append(enter)
                rows.append([n, f"{median(firsts) * 1000:.0f}", f"{median(enters) * 1000:.0f}"])
            out.append("")
            out.append(f"Long conversations: provider's first chunk -> first text in the browser (median of {reps})")
            out.append(table(["messages", "first-token overhead ms", "Enter -> first text ms"], rows))
            out.append("")
            out += stop_and_long_replies(page, app, provider, db_path, reps)
            browser.close()
    finally:
        app.stop()
        provider.stop()
    print("\n".join(out))


if __name__ == "__main__":
    main()
