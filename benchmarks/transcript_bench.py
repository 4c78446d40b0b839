"""Opening a long conversation's transcript on the History page (AppTest, server side only).

    python benchmarks/transcript_bench.py [--runs N]

A conversation of 10,000 messages is opened with ``?open=<id>``, beside a 60-message one (the page's first
window) as the baseline from the same run. The figure is the median script-run time of the page over N runs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.providers.base import Usage  # noqa: E402
from chat.store import Store, open_store  # noqa: E402


def conversation(store: Store, messages: int) -> str:
    cid = store.create_conversation(user="local", settings={"provider": "openai", "model": "gpt-4o-mini"})
    for i in range(messages // 2):
        store.add_user_message(cid, f"Question {i}: how does the thing number {i} work, in a few words?")
        reply = store.start_reply(cid, provider="openai", model="gpt-4o-mini")
        store.finish_reply(reply, content=f"Answer {i}. " + "It works like this, step by step. " * 8,
                           status="complete", cost=0.0001, ttft=0.3, duration=1.2,
                           usage=Usage(120, 80, input_exact=True, output_exact=True))
    return cid


def open_times(cid: str, runs: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(runs):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page("app_pages/history.py")
        at.query_params["open"] = cid
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        assert not at.exception, at.exception
    return times


def main(argv: list[str]) -> int:
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 5
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "chat.db"
        os.environ.update(CHAT_DB=str(db_path), OPENAI_API_KEY="test-key")
        store = open_store(db_path)
        started = time.perf_counter()
        long_id = conversation(store, 10_000)
        short_id = conversation(store, 60)
        print(f"built 10,000 + 60 messages in {time.perf_counter() - started:.1f} s")
        store.close()
        open_times(short_id, 1)  # warm: imports, the first page run
        short = statistics.median(open_times(short_id, runs))
        long = statistics.median(open_times(long_id, runs))
    print(f"History transcript open, median of {runs} runs:")
    print(f"  10,000 messages: {long * 1000:,.0f} ms")
    print(f"  60 messages (baseline, same run): {short * 1000:,.0f} ms  ->  {long / short:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
