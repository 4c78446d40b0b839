"""Compare page speed: wall time of one comparison with 2, 3 and 4 targets against the slowest target alone.

    .venv/bin/python benchmarks/compare_bench.py              # the real page in headless Chromium + threads
    .venv/bin/python benchmarks/compare_bench.py --no-browser # only the logic level (chat.compare.runs.stream_all)
    .venv/bin/python benchmarks/compare_bench.py --repeat 5

The fake provider (tests/fake_provider.py, a subprocess) serves four models at different speeds; every
comparison includes the slowest one. "Wall" is measured from the fake provider's log: first request arrived
to last stream ended. "Page" is what the browser sees: Run click to the summary table on screen (it includes
saving the run, the rerun that draws the summary, and Streamlit's own overhead). If the columns ran one after
the other, wall would be the sum of the targets' times; in parallel it is about the slowest one. Last, the
Stop button with four targets streaming: click to every upstream disconnected, and to the marks on screen.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from e2e_support import CHROMIUM, AppProcess, FakeProviderProcess, app_env, launch_chromium, wait_idle  # noqa: E402

WORDS = 60
# model -> tokens per second; 60 words: 1.5 s, 1.0 s, 0.67 s, 0.5 s
SPEEDS = {"slow": 40, "medium": 60, "quick": 90, "fast": 120}
MODELS = list(SPEEDS)  # the page's default targets, in order: the default model first, then the list
ENDS = ("complete", "disconnect", "status_error", "drop", "midstream_error")


def spans(log: list[dict]) -> list[tuple[float, float]]:
    starts = {e["request"]: e["t"] for e in log if e["kind"] == "request"}
    ends = {e["request"]: e["t"] for e in log if e["kind"] in ENDS}
    return [(starts[r], ends[r]) for r in starts if r in ends]


def wall_of(log: list[dict]) -> tuple[float, float]:
    """(wall, sum of the streams' own times) of the requests in the log."""
    pairs = spans(log)
    return max(b for _, b in pairs) - min(a for a, _ in pairs), sum(b - a for a, b in pairs)


def logic_level(provider: FakeProviderProcess, repeat: int) -> dict:
    """chat.compare.runs.start_run + stream_all in threads, no Streamlit; and the slowest target alone."""
    import openai

    from chat import turns
    from chat.compare.runs import start_run, stream_all
    from chat.config import ModelId
    from chat.pricing import Pricer
    from chat.providers.base import Params
    from chat.providers.openai import OpenAIProvider
    from chat.store import open_store

    client = openai.OpenAI(base_url=provider.url + "/v1", api_key="test-key", max_retries=0, timeout=10)
    providers = {"openai": OpenAIProvider("openai", client)}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "bench.db")
        alone = []
        for _ in range(repeat):
            provider.reset()
            set_speeds(provider)
            cid = store.create_conversation(user="bench", settings={})
            turn = turns.send(turns.TurnContext(store, providers["openai"], Pricer()), cid, "bench prompt",
                              turns.TurnSettings(ModelId("openai", "slow"), params=Params()))
            for _ in turn.stream():
                pass
            alone.append(wall_of(provider.log())[0])
        results["alone"] = statistics.median(alone)
        for n in (2, 3, 4):
            walls, sums = [], []
            for _ in range(repeat):
                provider.reset()
                set_speeds(provider)
                live = start_run(turns.TurnContexts(store, providers, Pricer(), user="bench"), "bench prompt",
                                 [turns.TurnSettings.parse(f"openai:{m}") for m in MODELS[:n]])
                stream_all(live)
                wall, total = wall_of(provider.log())
                walls.append(wall)
                sums.append(total)
            results[n] = (statistics.median(walls), statistics.median(sums))
        store.close()
    client.close()
    return results


def set_speeds(provider: FakeProviderProcess) -> None:
    for model, rate in SPEEDS.items():
        provider.set_scenario(model, words=WORDS, tokens_per_second=rate)


def page_level(provider: FakeProviderProcess, repeat: int, tmp: Path) -> dict:
    """The real page: `streamlit run` + Chromium, one Run click per comparison."""
    from playwright.sync_api import sync_playwright

    app = AppProcess(app_env(provider.url, tmp / "chat.db", OPENAI_MODELS=",".join(MODELS),
                             CHAT_DEFAULT_MODEL=f"openai:{MODELS[0]}"), log=tmp / "app.log")
    results: dict = {}
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, tmp / "profile")
            try:
                page = browser.new_page()
                page.goto(app.url)
                wait_idle(page)
                page.locator("[data-testid='stSidebarNav'] a", has_text="Compare").click()
                page.wait_for_url("**/compare*")
                wait_idle(page)
                box = page.locator(".st-key-cmp_prompt textarea")
                box.fill("bench prompt")
                box.press("Control+Enter")
                wait_idle(page)
                for n in (2, 3, 4):
                    page.locator(".st-key-cmp_count label").filter(has_text=str(n)).click()
                    wait_idle(page)
                    walls, sums, seen, before, after = [], [], [], [], []
                    for _ in range(repeat + 1):  # the first one warms up (imports, connections)
                        provider.reset()
                        set_speeds(provider)
                        clicked_wall = time.time()
                        page.locator(".st-key-cmp_run button").click()
                        provider.wait_for("complete", timeout=30, count=n)
                        page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=30_000)
                        shown = time.time()
                        wait_idle(page)
                        seen.append(shown - clicked_wall)
                        log = provider.log()
                        before.append(min(e["wall"] for e in log if e["kind"] == "request") - clicked_wall)
                        after.append(shown - max(e["wall"] for e in log if e["kind"] in ENDS))
                        wall, total = wall_of(provider.log())
                        walls.append(wall)
                        sums.append(total)
                    results[n] = tuple(statistics.median(v[1:]) for v in (walls, sums, seen, before, after))
                # Stop with 4 targets streaming: click -> every upstream disconnected, and -> marks on screen
                disconnected, marked = [], []
                for _ in range(repeat):
                    provider.reset()
                    provider.set_scenario(None, words=400, tokens_per_second=30)
                    page.locator(".st-key-cmp_run button").click()
                    provider.wait_for("chunk", timeout=30, count=40)
                    clicked_wall = time.time()
                    page.locator(".st-key-cmp_stop button").click()
                    gone = provider.wait_for("disconnect", timeout=10, count=4)
                    disconnected.append(max(e["wall"] for e in gone) - clicked_wall)
                    page.locator("[data-testid='stCaptionContainer']", has_text="stopped by you").nth(3).wait_for(
                        timeout=10_000)
                    marked.append(time.time() - clicked_wall)
                    wait_idle(page)
                results["stop"] = (statistics.median(disconnected), statistics.median(marked))
            finally:
                browser.close()
    finally:
        app.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        provider = FakeProviderProcess(log=tmp / "provider.log")
        try:
            logic = logic_level(provider, args.repeat)
            page = None
            if not args.no_browser and Path(CHROMIUM).exists():
                page = page_level(provider, args.repeat, tmp)
        finally:
            provider.stop()

    print(f"{WORDS} words per reply; target speeds (tok/s): "
          + ", ".join(f"{m} {r}" for m, r in SPEEDS.items()) + f"; median of {args.repeat}")
    print(f"slowest target alone (one Turn): {logic['alone']:.2f} s")
    print()
    print("targets | logic wall | sum of streams | wall / slowest alone"
          + (" | page wall | page sum | click -> summary (-> 1st request, last end -> table)" if page else ""))
    for n in (2, 3, 4):
        wall, total = logic[n]
        line = f"{n:>7} | {wall:>8.2f} s | {total:>12.2f} s | {wall / logic['alone']:>20.2f}"
        if page:
            pwall, psum, seen, before, after = page[n]
            line += f" | {pwall:>7.2f} s | {psum:>6.2f} s | {seen:.2f} s ({before:.2f} s, {after:.2f} s)"
        print(line)
    if page:
        gone, marked = page["stop"]
        print(f"\nStop with 4 targets streaming: every upstream disconnected {gone:.2f} s after the click; "
              f"all four marked \"stopped by you\" on screen after {marked:.2f} s")
    if page is None and not args.no_browser:
        print(f"(no Chromium at {CHROMIUM}: page-level figures skipped)")


if __name__ == "__main__":
    main()
