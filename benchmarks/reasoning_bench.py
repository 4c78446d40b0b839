"""Reasoning streamed, then the answer, in a real browser, next to the raw SDK reading the same stream.

The provider streams a reasoning summary (OpenAI's Responses API) and then the answer at 500 and 2,000 tokens/s;
the browser's rate is every output token (reasoning and answer) over the time from the first reasoning word on
screen (in the Thinking section) to the answer's last word. The baseline is the raw openai SDK loop over the
same stream, counting both kinds of delta.

    .venv/bin/python benchmarks/reasoning_bench.py [--quick]
"""

from __future__ import annotations

import argparse
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
    table,
    wait_idle,
    warm_up,
)

END = "ZZEND"
MODEL = "gpt-5-mini"


def scenario(provider: FakeProviderProcess, thoughts: int, words: int, rate: int, tag: str) -> None:
    provider.reset()
    provider.set_scenario(None, tokens_per_second=rate,
                          reasoning=f"Think{tag}: " + " ".join(f"r{i}" for i in range(thoughts)),
                          text=f"Echo{tag}: " + " ".join(f"w{i}" for i in range(words)) + f" {END}{tag}")


def raw_sdk(provider: FakeProviderProcess) -> float:
    """Output tokens/s (reasoning and answer deltas) for the bare SDK loop: the baseline."""
    import openai

    client = openai.OpenAI(base_url=provider.url + "/v1", api_key="test-key", max_retries=0)
    first = last = None
    n = 0
    with client.responses.create(model=MODEL, input=[{"role": "user", "content": "x"}], stream=True, store=False,
                                 reasoning={"summary": "auto"}) as stream:
        for event in stream:
            if event.type in ("response.reasoning_summary_text.delta", "response.output_text.delta"):
                n += 1
                last = time.time()
                first = first or last
    client.close()
    return (n - 1) / (last - first)


def browser(page, app, provider: FakeProviderProcess, thoughts: int, words: int, rate: int, prompt: str) -> float:
    tag = uuid.uuid4().hex[:8]
    scenario(provider, thoughts, words, rate, tag)
    page.goto(app.url)
    wait_idle(page)
    page.evaluate(OBSERVER_JS, [f"Think{tag}:", f"{END}{tag}"])
    box = page.locator("[data-testid='stChatInput'] textarea")
    box.fill(prompt)
    box.press("Enter")
    page.wait_for_function("() => window.__marks.last", timeout=120_000)
    marks = page.evaluate("() => window.__marks")
    wait_idle(page)
    return (thoughts + words + 2) / max((marks["last"] - marks["first"]) / 1000, 1e-6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    reps = 1 if args.quick else 3
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="reasoning-bench-"))
    provider = FakeProviderProcess()
    app = AppProcess(app_env(provider.url, tmp / "chat.db", CHAT_DEFAULT_MODEL=f"openai:{MODEL}"),
                     log=tmp / "app.log")
    rows = []
    try:
        with sync_playwright() as pw:
            chromium = launch_chromium(pw, tmp / "profile")
            warm_up(chromium, app, provider)
            page = chromium.new_page()
            for rate in (500, 2000):
                thoughts, words = rate, rate // 2  # about 1.5 s of streaming, two thirds of it thinking
                raw = []
                for _ in range(reps):
                    scenario(provider, thoughts, words, rate, "raw")
                    raw.append(raw_sdk(provider))
                seen = [browser(page, app, provider, thoughts, words, rate, f"think {rate} run {i}")
                        for i in range(reps)]
                raw_rate, seen_rate = median(raw), median(seen)
                rows.append([rate, f"{thoughts:,} + {words:,}", f"{raw_rate:,.0f}", f"{seen_rate:,.0f}",
                             f"{seen_rate / raw_rate:.2f}"])
            chromium.close()
    finally:
        app.stop()
        provider.stop()
    print(f"Reasoning then answer: browser vs raw SDK on the same Responses stream (median of {reps})")
    print(table(["provider tok/s", "reasoning + answer tokens", "raw SDK tok/s", "browser tok/s", "ratio"], rows))


if __name__ == "__main__":
    main()
