"""Two replicas under load: two `streamlit run` processes on one throwaway PostgreSQL database, with browser-less
sessions (ws_session.py) split between them, all streaming at once, against one session alone on the same
replicas in the same run. Afterwards the database is checked: every turn stored once, in its own
conversation, with its own text.

    .venv/bin/python benchmarks/replicas_bench.py            # 20 sessions, replies of 100 tokens at 20 tok/s
    .venv/bin/python benchmarks/replicas_bench.py --quick    # 6 sessions, 40 tokens: checks that it runs

Goal (issue 15): the worst session >= 0.8 of solo, zero lost or mixed turns. Each session sends a prompt of its
own and the fake provider echoes it ("Echo: <prompt>"), so a reply in the wrong conversation, or a turn
stored twice or not at all, shows in the stored text. The machine's load average is printed with the
figures: on shared cores they say as much about the neighbours as about the app.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

from _support import ROOT, AppProcess, FakeProviderProcess, app_env, over_websockets, table
from ws_session import WsSession

sys.path.insert(0, str(ROOT / "tests"))
from pg_support import PostgresServer  # noqa: E402

GOAL = 0.8


def prompt_for(run: str, session: str, words: int) -> tuple[str, str, str]:
    """(prompt, the reply's opening, the reply's last word) for one session: the reply echoes the prompt, so
    its text names the session that asked; ``words`` tokens are streamed between the two marks."""
    head, end = f"r{run}{session}", f"ZZEND{run}{session}"
    return " ".join([head, *(f"t{k}" for k in range(words)), end]), f"Echo: {head}", end


async def reply_rate(session: WsSession, prompt: str, first: str, last: str, words: int) -> float:
    """Tokens per second between the reply's first mark and its last, as the server sent them."""
    start, end = await session.stream_reply(prompt, first, last)
    return (words + 1) / max(end - start, 1e-6)


async def one_turn(url: str, run: str, name: str, words: int) -> tuple[str, float]:
    session = WsSession(url)
    await session.connect()
    prompt, first, last = prompt_for(run, name, words)
    try:
        return prompt, await reply_rate(session, prompt, first, last, words)
    finally:
        await session.close()


async def load(urls: list[str], run: str, sessions: int, words: int) -> tuple[list[str], list[float], list[int]]:
    """``sessions`` sessions, dealt to the replicas in turn, connected first, then all sending at once."""
    clients = [WsSession(urls[i % len(urls)]) for i in range(sessions)]
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.sleep(1)
    prompts = [prompt_for(run, f"s{i:02d}", words) for i in range(sessions)]
    rates = await asyncio.gather(*(reply_rate(c, *prompts[i], words) for i, c in enumerate(clients)))
    await asyncio.gather(*(c.close() for c in clients))
    return [p[0] for p in prompts], list(rates), [i % len(urls) for i in range(sessions)]


def check_turns(url: str, prompts: list[str]) -> list[str]:
    """What is wrong with the stored turns of ``prompts`` (empty when nothing is): each prompt stored once, as
    the first message of a conversation of its own holding that one exchange, answered with its own echo."""
    import psycopg

    problems = []
    with psycopg.connect(url, autocommit=True) as conn:
        for prompt in prompts:
            rows = conn.execute("SELECT conversation_id FROM messages WHERE role = 'user' AND content = %s",
                                [prompt]).fetchall()
            if len(rows) != 1:
                problems.append(f"{prompt.split()[0]}: stored {len(rows)} times")
                continue
            stored = conn.execute("SELECT position, role, content, status FROM messages WHERE conversation_id = %s "
                                  "ORDER BY position", [rows[0][0]]).fetchall()
            expected = [(1, "user", prompt, "complete"), (2, "assistant", f"Echo: {prompt}", "complete")]
            if stored != expected:
                shown = [(position, role, content.split()[:2], status) for position, role, content, status in stored]
                problems.append(f"{prompt.split()[0]}: its conversation holds {shown}")
        tags = [prompt.split()[0] for prompt in prompts]
        for tag in tags:  # no other conversation holds a word of this session's text
            found = conn.execute("SELECT COUNT(DISTINCT conversation_id) FROM messages WHERE strpos(content, %s) > 0",
                                 [tag + " "]).fetchone()[0]
            if found != 1:
                problems.append(f"{tag}: its text is in {found} conversations")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="6 sessions, replies of 40 tokens")
    parser.add_argument("--sessions", type=int, help="sessions streaming at once (default 20; 6 with --quick)")
    parser.add_argument("--rate", type=int, default=20, help="tokens per second the provider streams (20)")
    args = parser.parse_args(argv)
    sessions = args.sessions or (6 if args.quick else 20)
    words = 40 if args.quick else 100
    tmp = Path(tempfile.mkdtemp(prefix="replicas-bench-"))
    run = uuid.uuid4().hex[:6]
    provider = FakeProviderProcess(log=tmp / "provider.log")
    apps: list[AppProcess] = []
    try:
        with PostgresServer() as server:
            db = server.new_database()
            env = app_env(provider.url, db)  # type: ignore[arg-type]  (CHAT_DB is the URL)
            apps = [AppProcess(env, log=tmp / f"replica{i + 1}.log") for i in range(2)]
            urls = [app.url for app in apps]
            provider.reset()
            provider.set_scenario(None, tokens_per_second=args.rate, words=0)

            async def run_all():
                # each replica warmed by one whole turn (it loads the SDKs and prices after its first page)
                await asyncio.gather(*(one_turn(u, run, f"w{i}", 5) for i, u in enumerate(urls)))
                await asyncio.sleep(2)
                solo = [await one_turn(u, run, f"solo{i}", words) for i, u in enumerate(urls)]
                started = os.getloadavg()[0]
                prompts, rates, replica_of = await load(urls, run, sessions, words)
                return solo, started, prompts, rates, replica_of

            solo, load_before, prompts, rates, replica_of = over_websockets(run_all())
            load_after = os.getloadavg()[0]
            problems = check_turns(db, [p for p, _ in solo] + prompts)
    finally:
        for app in apps:
            app.stop()
        provider.stop()
    solo_rate = statistics.median(rate for _, rate in solo)
    worst = min(rates)
    rows = [[f"replica {r + 1}", sum(1 for x in replica_of if x == r),
             f"{statistics.median(x for x, y in zip(rates, replica_of, strict=True) if y == r):.1f}",
             f"{min(x for x, y in zip(rates, replica_of, strict=True) if y == r):.1f}"] for r in range(2)]
    print(f"Two replicas on one PostgreSQL: {sessions} sessions streaming at once at {args.rate} tok/s "
          f"({words + 1} tokens each), split between them; solo: one session alone on each replica")
    print(table(["replica", "sessions", "median tok/s", "worst tok/s"], rows))
    print(f"solo tok/s: {' / '.join(f'{rate:.1f}' for _, rate in solo)} (median {solo_rate:.1f})")
    print(f"worst session / solo: {worst / solo_rate:.2f} (goal >= {GOAL}) "
          f"{'ok' if worst / solo_rate >= GOAL else 'MISSED'}")
    print(f"turns checked in the database: {len(prompts) + len(solo)}; lost or mixed: {len(problems)}")
    for problem in problems:
        print(f"  {problem}")
    print(f"machine: load average {load_before:.2f} when the load started, {load_after:.2f} after; "
          f"{os.cpu_count()} cores")
    return 1 if problems or worst / solo_rate < GOAL else 0


if __name__ == "__main__":
    sys.exit(main())
