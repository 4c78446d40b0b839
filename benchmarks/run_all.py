"""Run every benchmark, print its figures, and keep the raw output in benchmarks/results/.

    python3 dev.py bench            # everything (about 15 minutes; the history database is built once)
    python3 dev.py bench --quick    # fewer repetitions, the small history database
    python3 dev.py bench --only chat,app   # some of them: chat, app, compare, history, transcript, reasoning,
                                           # cache, attach, replicas

Each script starts what it needs (the fake provider, `streamlit run` on loopback, headless Chromium) and
prints figures next to a baseline measured in the same run. Nothing here passes or fails.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    runs = [
        ("chat", ["chat_bench.py", *(["--quick"] if quick else [])]),
        ("app", ["app_bench.py", *(["--quick"] if quick else [])]),
        ("compare", ["compare_bench.py", "--repeat", "2" if quick else "3"]),
        ("history", ["history_bench.py", *(["--small", "--runs", "20"] if quick else [])]),
        ("transcript", ["transcript_bench.py", "--runs", "3" if quick else "5"]),
        ("reasoning", ["reasoning_bench.py", *(["--quick"] if quick else [])]),
        ("cache", ["cache_bench.py"]),
        ("attach", ["attach_bench.py", "--runs", "3" if quick else "5"]),
        ("replicas", ["replicas_bench.py", *(["--quick"] if quick else [])]),
    ]
    if "--only" in argv:
        names = {name for name, _ in runs}
        at = argv.index("--only") + 1
        wanted = set(argv[at].split(",")) if at < len(argv) else set()
        if not wanted or wanted - names:
            print(f"--only takes a comma-separated list of: {', '.join(sorted(names))}", file=sys.stderr)
            return 2
        runs = [run for run in runs if run[0] in wanted]
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed = 0
    for name, args in runs:
        print(f"\n=== {name} ({' '.join(args)})", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], cwd=HERE.parent,
                              capture_output=True, text=True)
        output = proc.stdout.rstrip()
        print(output)
        if proc.returncode:
            failed += 1
            print(proc.stderr[-3000:], file=sys.stderr)
        took = time.monotonic() - started
        (RESULTS / f"{name}.txt").write_text(f"# {stamp}, {' '.join(args)}, {took:.0f} s, exit {proc.returncode}\n"
                                            f"{output}\n")
    print(f"\nRaw output kept in {RESULTS.relative_to(HERE.parent)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
