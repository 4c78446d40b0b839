"""Stop latency, page rerun time, load, and start-up, each next to a baseline measured in the same run.

    .venv/bin/python benchmarks/app_bench.py [--quick] [--only stop,rerun,load,startup]
"""

from __future__ import annotations

import argparse
import asyncio
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
    open_sessions,
    over_websockets,
    send,
    table,
    wait_idle,
    warm_up,
)
from chat_bench import END, reply_text, seed_conversation
from ws_session import WsSession


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
BARE = """
import sqlite3, os, streamlit as st
cid = st.query_params.get("c")
con = sqlite3.connect(os.environ["CHAT_DB"])
for role, content in con.execute("select role, content from messages where conversation_id=? order by position",
                                 [cid]):
    with st.chat_message(role):
        st.markdown(content)
st.chat_input("Ask anything")
"""

RERUN_JS = """
() => { window.__rerun = new Promise((resolve) => {
  const app = document.querySelector("[data-testid='stApp']");
  const start = performance.now();
  let seenRunning = false;
  const obs = new MutationObserver(() => {
    const state = app.getAttribute("data-test-script-state");
    if (state === "running") seenRunning = true;
    if (seenRunning && state === "notRunning") { obs.disconnect(); resolve(performance.now() - start); }
  });
  obs.observe(app, {attributes: true});
}); }
"""


def rerun_ms(page) -> float:
    """Press R (Streamlit's rerun shortcut) and time until the run has finished, in the page's clock."""
    page.evaluate(RERUN_JS)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.keyboard.press("r")
    return page.evaluate("() => Promise.race([window.__rerun, new Promise(r => setTimeout(() => r(NaN), 5000))])")


def bench_rerun(browser, app, provider, db: Path, tmp: Path, reps: int) -> list[str]:
    from _support import Proc, free_port, wait_http

    from chat.store import open_store

    open_store(db).close()  # the schema, before seeding
    bare_file = tmp / "bare.py"
    bare_file.write_text(BARE)
    port = free_port()
    bare = Proc([sys.executable, "-m", "streamlit", "run", str(bare_file), "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--server.headless", "true"],
                env=app_env(provider.url, db))
    rows = []
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health")
        page = browser.new_page()
        for n in (10, 100, 1000):
            cid = seed_conversation(db, n)
            times = {}
            for name, url in (("bare", f"http://127.0.0.1:{port}/?c={cid}"), ("ours", f"{app.url}/?c={cid}")):
                page.goto(url)
                wait_idle(page)
                page.locator("[data-testid='stChatMessage']", has_text=f"Message {n - 1}:").wait_for()
                rerun_ms(page)  # warm
                samples = []
                for _ in range(3 * reps):  # a keypress that lands while the page is busy is lost: retry
                    value = rerun_ms(page)
                    if value == value:  # not NaN
                        samples.append(value)
                    if len(samples) == reps:
                        break
                times[name] = median(samples)
            rows.append([n, f"{times['bare']:.0f}", f"{times['ours']:.0f}", f"{times['ours'] / times['bare']:.2f}"])
        page.close()
    finally:
        bare.stop()
    return ["Page rerun in the browser (keypress R -> run finished): chat page vs a bare st.chat_message loop "
            f"over the same messages (median of {reps})",
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


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has been busy so far, over all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICK  # minus idle and iowait


class CpuShare:
    """How much of the machine's busy CPU time, between start and stop, was the server's."""

    def __init__(self, pid: int):
        self.pid = pid
        self.server, self.machine, self.wall = cpu_s(pid), machine_cpu_s(), time.monotonic()

    def stop(self) -> str:
        server, machine = cpu_s(self.pid) - self.server, machine_cpu_s() - self.machine
        wall = time.monotonic() - self.wall
        cores = os.cpu_count()
        return f"{server:.1f} s of {machine:.1f} s busy ({machine / wall / cores:.0%} of {cores} cores)"


def stream_in(page, provider, prompt: str, words: int, tag: str) -> None:
    page.evaluate(OBSERVER_JS, [f"Echo{tag}:", f"{END}{tag}"])
    send(page, prompt)


def rate_of(page, words: int) -> float:
    page.wait_for_function("() => window.__marks.last", timeout=180_000)
    marks = page.evaluate("() => window.__marks")
    return (words + 1) / max((marks["last"] - marks["first"]) / 1000, 1e-6)


def load_in_tabs(browser, app, provider, sessions: int, words: int, rate: int) -> tuple[float, list[float], str]:
    """(solo rate, per-session rates, CPU use) with real Chromium tabs: what users see, but the tabs'
    renderers share the machine's CPU with the server."""
    tag = uuid.uuid4().hex[:6]
    provider.reset()
    provider.set_scenario(None, text=reply_text(words, tag), tokens_per_second=rate)
    solo_page = browser.new_page()
    solo_page.goto(app.url)
    wait_idle(solo_page)
    stream_in(solo_page, provider, "solo", words, tag)
    solo = rate_of(solo_page, words)
    solo_page.close()

    pages = open_sessions(browser, app.url, sessions)
    time.sleep(1)
    tag = uuid.uuid4().hex[:6]
    provider.reset()
    provider.set_scenario(None, text=reply_text(words, tag), tokens_per_second=rate)
    cpu = CpuShare(app.pid)
    for i, page in enumerate(pages):
        stream_in(page, provider, f"load {i}", words, tag)
    rates = [rate_of(page, words) for page in pages]
    used = cpu.stop()
    for page in pages:
        page.close()
    return solo, rates, used


def load_over_websockets(app, provider, sessions: int, words: int, rate: int) -> tuple[float, list[float], str]:
    """(solo rate, per-session rates, CPU use) with browser-less sessions speaking Streamlit's websocket
    protocol: the server alone, timed when it sends each update."""
    async def reply_rate(session: WsSession, tag: str) -> float:
        first, last = await session.stream_reply(f"load {tag}", f"Echo{tag}:", f"{END}{tag}")
        return (words + 1) / max(last - first, 1e-6)

    async def run() -> tuple[float, list[float], str]:
        tag = uuid.uuid4().hex[:6]
        provider.reset()
        provider.set_scenario(None, text=reply_text(words, tag), tokens_per_second=rate)
        solo_session = WsSession(app.url)
        await solo_session.connect()
        solo = await reply_rate(solo_session, tag)
        await solo_session.close()
        clients = [WsSession(app.url) for _ in range(sessions)]
        await asyncio.gather(*(c.connect() for c in clients))
        await asyncio.sleep(1)
        tag = uuid.uuid4().hex[:6]
        provider.reset()
        provider.set_scenario(None, text=reply_text(words, tag), tokens_per_second=rate)
        cpu = CpuShare(app.pid)
        rates = await asyncio.gather(*(reply_rate(c, tag) for c in clients))
        used = cpu.stop()
        await asyncio.gather(*(c.close() for c in clients))
        return solo, list(rates), used

    return over_websockets(run())


def idle_session_kb(app, sessions: int) -> float:
    """Server memory per idle session, at the margin: RSS growth from `sessions` to twice as many connected
    (each page drawn once), per session. The first batch absorbs one-off costs (lazy imports of page code,
    the allocator's warm-up, memory freed by earlier runs) that made a plain before/after swing from -90 to
    +90 KB between runs."""
    async def connect(count: int) -> list[WsSession]:
        clients = [WsSession(app.url) for _ in range(count)]
        for i in range(0, count, 10):
            await asyncio.gather(*(c.connect() for c in clients[i:i + 10]))
        await asyncio.sleep(2)
        return clients

    async def run() -> float:
        first = await connect(sessions)
        before = rss_kb(app.pid)
        second = await connect(sessions)
        after = rss_kb(app.pid)
        await asyncio.gather(*(c.close() for c in first + second))
        return (after - before) / sessions

    return over_websockets(run())


def bench_load(browser, app, provider, sessions: int) -> list[str]:
    words, rate = 100, 20
    idle = 100
    per_session = idle_session_kb(app, idle)
    rows = []
    for label, (solo, rates, used) in (
        ("websocket clients (the server alone)", load_over_websockets(app, provider, sessions, words, rate)),
        (f"Chromium tabs ({sessions} renderers too)", load_in_tabs(browser, app, provider, sessions, words, rate)),
    ):
        rows.append([label, f"{solo:.1f}", f"{statistics.median(rates):.1f}", f"{min(rates):.1f}",
                     f"{min(rates) / solo:.2f}", used])
    return [
        f"Load: {sessions} sessions streaming at once at {rate} tok/s each, against one session alone",
        table(["sessions", "solo tok/s", "median tok/s", "worst tok/s", "worst / solo",
               "CPU while streaming: server's of the machine's"], rows),
        f"Server memory per idle session (RSS growth from {idle} to {2 * idle} sessions connected, each page drawn "
        f"once): {per_session:.0f} KB",
    ]


# ---------------------------------------------------------------- 7. start-up
BARE_PAGE = 'import streamlit as st\nst.chat_input("Your message")\n'


def _bare_app(tmp: Path, env: dict[str, str]):
    """`streamlit run` on a page that draws only a chat input: what Streamlit's own start costs."""
    from _support import Proc, free_port, wait_http

    script = tmp / "bare_page.py"
    script.write_text(BARE_PAGE)
    port = free_port()
    proc = Proc([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--server.headless", "true"], env=env)
    proc.url = f"http://127.0.0.1:{port}"
    wait_http(proc.url + "/_stcore/health", timeout=60, proc=proc.proc)
    return proc


def _painted(browser, start_app) -> tuple[float, float, object, object]:
    """Seconds from `streamlit run` to the chat input painted in a fresh tab and to the server answering its
    health check (the tab is opened then), with the app and the tab."""
    started = time.time()
    app = start_app()
    up = time.time() - started
    page = browser.new_page()
    page.goto(app.url)
    page.wait_for_selector("[data-testid='stChatInput'] textarea", timeout=60_000)
    return time.time() - started, up, app, page


def bench_startup(provider, tmp: Path, reps: int) -> list[str]:
    """Row 7: a cold `streamlit run app.py` to the chat input painted, next to a bare page's (one chat input)
    started the same way in the same run; then, on the same cold server, Enter -> the first token on screen
    (the first reply pays what was left out of the first paint)."""
    from playwright.sync_api import sync_playwright

    paints, bare_paints, first_tokens, ups, bare_ups = [], [], [], [], []
    with sync_playwright() as pw:
        browser = launch_chromium(pw, tmp / "startup-profile")
        for i in range(reps):
            env = app_env(provider.url, tmp / f"startup-{i}.db")
            seconds, up, app, page = _painted(browser, lambda env=env: _bare_app(tmp, env))
            bare_paints.append(seconds)
            bare_ups.append(up)
            page.close()
            app.stop()
            seconds, up, app, page = _painted(browser, lambda env=env: AppProcess(env))
            paints.append(seconds)
            ups.append(up)
            try:
                provider.set_scenario(None, text=f"cold ZZCOLD{i}", tokens_per_second=0)
                wait_idle(page)
                send(page, f"cold {i}")
                sent = time.time()
                page.locator("[data-testid='stChatMessage']", has_text=f"ZZCOLD{i}").wait_for(timeout=60_000)
                first_tokens.append(time.time() - sent)
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
    page_imports = import_time("import streamlit, chat.history, chat.live, chat.outbox, chat.turns, "
                               "chat.tool_loop, ui.render, ui.stream, ui.resources")
    everything = import_time("import streamlit, chat.turns, chat.store, chat.providers.openai, "
                             "chat.providers.anthropic, ui.render")
    paint, bare_paint = median(paints), median(bare_paints)
    tab = [p - u for p, u in zip(paints, ups, strict=True)]
    bare_tab = [p - u for p, u in zip(bare_paints, bare_ups, strict=True)]
    return [
        f"Start-up (median of {reps}; each app start next to a bare page's started just before it)",
        table(["streamlit run -> chat input painted s", "bare page s", "ratio", "cold Enter -> first token s"],
              [[f"{paint:.2f}", f"{bare_paint:.2f}", f"{paint / bare_paint:.2f}", f"{median(first_tokens):.2f}"]]),
        table(["of it: server up (health) s", "bare page's s", "tab opened -> chat input painted s", "bare page's s"],
              [[f"{median(ups):.2f}", f"{median(bare_ups):.2f}", f"{median(tab):.2f}", f"{median(bare_tab):.2f}"]]),
        table(["import streamlit s", "+ what the chat page imports s", "+ both SDKs and the adapters s"],
              [[f"{bare:.2f}", f"{page_imports - bare:.2f}", f"{everything - bare:.2f}"]]),
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
        if only & {"stop", "load", "rerun"}:
            app = AppProcess(app_env(provider.url, tmp / "chat.db"), log=tmp / "app.log")
            try:
                with sync_playwright() as pw:
                    browser = launch_chromium(pw, tmp / "profile")
                    warm_up(browser, app, provider)
                    if "rerun" in only:
                        out += bench_rerun(browser, app, provider, tmp / "chat.db", tmp,
                                           3 if args.quick else 7) + [""]
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
