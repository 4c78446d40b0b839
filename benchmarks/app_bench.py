"""Stop latency, page rerun time, load, and start-up, each next to a baseline measured in the same run.

    .venv/bin/python benchmarks/app_bench.py [--quick] [--only stop,rerun,load,startup]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _support import (
    OBSERVER_JS,
    ROOT,
    AppProcess,
    FakeProviderProcess,
    app_env,
    launch_chromium,
    median,
    table,
    wait_idle,
)
from chat_bench import END, reply_text, seed_conversation


def send(page, text: str) -> None:
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(text)
    box.press("Enter")


# ---------------------------------------------------------------- 2. stop latency
def bench_stop(page, app, provider, runs: int) -> list[str]:
    latencies = []
    for i in range(runs):
        page.goto(app.url)
        wait_idle(page)
        provider.reset()
        provider.set_scenario(None, words=2000, tokens_per_second=50)
        send(page, f"stop run {i}")
        provider.wait_for("chunk", timeout=10, count=10)
        button = page.locator("[data-testid='stChatInput'] button")
        clicked = time.time()
        button.click()
        disconnect = provider.wait_for("disconnect", timeout=5)[0]
        latencies.append((disconnect["wall"] - clicked) * 1000)
    return [
        f"Stop: click -> upstream disconnect over {runs} runs (provider streaming at 50 tok/s)",
        table(["median ms", "worst ms", "best ms"],
              [[f"{median(latencies):.0f}", f"{max(latencies):.0f}", f"{min(latencies):.0f}"]]),
    ]


# ---------------------------------------------------------------- 3. rerun time vs a bare loop
BARE = '''
import sqlite3, streamlit as st
con = sqlite3.connect({db!r})
for role, content in con.execute("select role, content from messages where conversation_id=? order by position",
                                 [{cid!r}]):
    with st.chat_message(role):
        st.markdown(content)
st.chat_input("Ask anything")
'''


def bench_rerun(provider, tmp: Path, reps: int) -> list[str]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    db = tmp / "rerun.db"
    os.environ.update(app_env(provider.url, db))
    rows = []
    from chat.store import Store

    Store(db).close()
    for n in (10, 100, 1000):
        cid = seed_conversation(db, n)
        bare_file = tmp / f"bare_{n}.py"
        bare_file.write_text(BARE.format(db=str(db), cid=cid))
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        app.query_params["c"] = cid
        st.cache_resource.clear()
        app.run()  # warm: caches, imports
        bare = AppTest.from_file(str(bare_file), default_timeout=60)
        bare.run()
        ours, base = [], []
        for _ in range(reps):
            t = time.perf_counter()
            app.run()
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            bare.run()
            base.append(time.perf_counter() - t)
        rows.append([n, f"{median(base) * 1000:.0f}", f"{median(ours) * 1000:.0f}",
                     f"{median(ours) / median(base):.2f}"])
    return ["Page rerun (server, AppTest): chat page vs a bare st.chat_message loop over the same messages "
            f"(median of {reps})",
            table(["messages", "bare loop ms", "chat page ms", "ratio"], rows)]


# ---------------------------------------------------------------- 6. load
def rss_kb(pid: int) -> int:
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


def stream_in(page, provider, prompt: str, words: int, tag: str) -> None:
    page.evaluate(OBSERVER_JS, [f"Echo{tag}:", f"{END}{tag}"])
    send(page, prompt)


def rate_of(page, words: int) -> float:
    page.wait_for_function("() => window.__marks.last", timeout=180_000)
    marks = page.evaluate("() => window.__marks")
    return (words + 1) / max((marks["last"] - marks["first"]) / 1000, 1e-6)


def bench_load(browser, app, provider, sessions: int) -> list[str]:
    words, rate = 100, 20
    tag = uuid.uuid4().hex[:6]
    provider.reset()
    provider.set_scenario(None, text=reply_text(words, tag), tokens_per_second=rate)
    solo_page = browser.new_page()
    solo_page.goto(app.url)
    wait_idle(solo_page)
    stream_in(solo_page, provider, "solo", words, tag)
    solo = rate_of(solo_page, words)
    solo_page.close()

    rss_before = rss_kb(app.pid)
    pages = []
    for _ in range(sessions):
        page = browser.new_page()
        page.goto(app.url)
        pages.append(page)
    for page in pages:
        wait_idle(page)
        page.wait_for_selector("[data-testid='stChatInput'] textarea")
    time.sleep(1)
    rss_idle = rss_kb(app.pid)
    tag = uuid.uuid4().hex[:6]
    provider.reset()
    provider.set_scenario(None, text=reply_text(words, tag), tokens_per_second=rate)
    for i, page in enumerate(pages):
        stream_in(page, provider, f"load {i}", words, tag)
    rates = [rate_of(page, words) for page in pages]
    for page in pages:
        page.close()
    per_session_mb = (rss_idle - rss_before) / 1024 / sessions
    return [
        f"Load: {sessions} sessions streaming at once at {rate} tok/s each, against one session alone",
        table(["solo tok/s", "median tok/s", "worst tok/s", "worst / solo", "server MB per idle session"],
              [[f"{solo:.1f}", f"{statistics.median(rates):.1f}", f"{min(rates):.1f}", f"{min(rates) / solo:.2f}",
                f"{per_session_mb:.1f}"]]),
    ]


# ---------------------------------------------------------------- 7. start-up
def bench_startup(provider, tmp: Path, reps: int) -> list[str]:
    from playwright.sync_api import sync_playwright

    paints = []
    with sync_playwright() as pw:
        browser = launch_chromium(pw, tmp / "startup-profile")
        for i in range(reps):
            started = time.time()
            app = AppProcess(app_env(provider.url, tmp / f"startup-{i}.db"))
            try:
                page = browser.new_page()
                page.goto(app.url)
                page.wait_for_selector("[data-testid='stChatInput'] textarea", timeout=60_000)
                paints.append(time.time() - started)
                page.close()
            finally:
                app.stop()
        browser.close()

    def import_time(code: str) -> float:
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
            times.append(time.perf_counter() - t)
        return median(times)

    bare = import_time("import streamlit")
    ours = import_time("import streamlit, chat.turns, chat.store, chat.providers.openai, "
                       "chat.providers.anthropic, ui.render")
    return [
        f"Start-up (median of {reps})",
        table(["streamlit run -> chat input painted s", "import streamlit s", "+ chat s", "chat's own s"],
              [[f"{median(paints):.2f}", f"{bare:.2f}", f"{ours:.2f}", f"{ours - bare:.2f}"]]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="stop,rerun,load,startup")
    args = ap.parse_args()
    only = set(args.only.split(","))
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="app-bench-"))
    provider = FakeProviderProcess()
    out: list[str] = []
    try:
        if "rerun" in only:
            out += bench_rerun(provider, tmp, 3 if args.quick else 7) + [""]
        if only & {"stop", "load"}:
            app = AppProcess(app_env(provider.url, tmp / "chat.db"), log=tmp / "app.log")
            try:
                with sync_playwright() as pw:
                    browser = launch_chromium(pw, tmp / "profile")
                    page = browser.new_page()
                    if "stop" in only:
                        out += bench_stop(page, app, provider, 5 if args.quick else 20) + [""]
                    page.close()
                    if "load" in only:
                        out += bench_load(browser, app, provider, 20) + [""]
                    browser.close()
            finally:
                app.stop()
        if "startup" in only:
            out += bench_startup(provider, tmp, 2 if args.quick else 5)
    finally:
        provider.stop()
    print("\n".join(out))


if __name__ == "__main__":
    main()
