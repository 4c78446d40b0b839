"""Shared pieces of the benchmarks: the processes (from tests/e2e_support.py), browser timing marks."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from e2e_support import (  # noqa: E402,F401
    AppProcess,
    FakeProviderProcess,
    Proc,
    app_env,
    free_port,
    launch_chromium,
    open_sessions,
    wait_http,
    wait_idle,
)

# Records, in the page, when the last chat message first shows `first` and when it first shows `last`
# (Date.now(), the same clock as the provider's time.time() on this machine).
OBSERVER_JS = """
([first, last]) => {
  window.__marks = {};
  const check = () => {
    const msgs = document.querySelectorAll('[data-testid="stChatMessage"]');
    if (!msgs.length) return;
    const text = msgs[msgs.length - 1].innerText;
    const now = Date.now();
    if (!window.__marks.first && text.includes(first)) window.__marks.first = now;
    if (!window.__marks.last && text.includes(last)) window.__marks.last = now;
  };
  window.__observer && window.__observer.disconnect();
  window.__observer = new MutationObserver(check);
  window.__observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def send(page, text: str) -> None:
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(text)
    box.press("Enter")


def warm_up(browser, app, provider) -> None:
    """One full turn, then a pause: the server loads the SDKs, token encodings and prices in the background
    after its first page run (seconds of CPU on this machine), and the figures are for a server past that.
    The start-up benchmark measures the cold start on its own."""
    page = browser.new_page()
    page.goto(app.url)
    wait_idle(page)
    provider.reset()
    provider.set_scenario(None, text="warm ZZWARM", tokens_per_second=0)
    send(page, "warm up")
    page.locator("[data-testid='stChatMessage']", has_text="ZZWARM").wait_for(timeout=60_000)
    wait_idle(page)
    page.close()
    time.sleep(2)


def over_websockets(coroutine):
    """Runs an asyncio client (ws_session.py) in its own thread: Playwright's sync API holds this thread's
    event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
