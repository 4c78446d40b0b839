"""History page speed: generate a large database, then time its queries next to the bare SQL, on SQLite and
on PostgreSQL (the same data, loaded into a throwaway server this script starts and stops).

    .venv/bin/python benchmarks/history_bench.py            # 100,000 conversations, 1,000,000 messages
    .venv/bin/python benchmarks/history_bench.py --small    # 5,000 / 50,000: a quick run
    .venv/bin/python benchmarks/history_bench.py --rebuild  # generate the database again
    .venv/bin/python benchmarks/history_bench.py --engine sqlite   # one engine (default: both)

The generated database is cached under ``benchmarks/data/`` (git-ignored) and migrated on open, so a new
migration (an index, say) is measured without generating again. Goals (issue 5): a search's first page
p95 <= 50 ms; the unfiltered table's first page and the analytics cards p95 <= 100 ms each.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from chat.history.analytics import summary, usage_by_model_and_day, usage_by_user  # noqa: E402
from chat.history.export import table_csv  # noqa: E402
from chat.history.listing import count_conversations, list_conversations  # noqa: E402
from chat.history.search import search  # noqa: E402
from chat.store import Filters, Store, open_store  # noqa: E402
from chat.store.search import plain_words  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
GENERATOR_VERSION = 3  # bump when the generated data changes shape

FULL = (100_000, 1_000_000)
SMALL = (5_000, 50_000)
DAYS = 365
LOCAL_USER = "local"
USERS = [LOCAL_USER, *(f"user{i:02d}" for i in range(1, 12))]
USER_WEIGHTS = [0.25, *([0.75 / 11] * 11)]
MODELS = [  # provider, model, USD per million input / output tokens (None: no known price)
    ("openai", "gpt-4o-mini", 0.15, 0.60),
    ("openai", "gpt-4.1", 2.0, 8.0),
    ("openai", "gpt-5-mini", 0.25, 2.0),
    ("anthropic", "claude-haiku-4-5", 1.0, 5.0),
    ("anthropic", "claude-sonnet-4-5", 3.0, 15.0),
    ("ollama", "llama3.2", None, None),
]
MODEL_WEIGHTS = [0.35, 0.1, 0.1, 0.25, 0.12, 0.08]
STATUSES = ["complete", "stopped", "error", "interrupted"]
SOURCE_NAMES = ["chat", "compare"]
STATUS_WEIGHTS = [0.95, 0.03, 0.015, 0.005]
COMMON_WORDS = (
    "the of and to a in is you that it for on with as this be are or by not can use from at your if "
    "an what will how which when there more all some one so each other about into then these than first "
    "also after should because only where most many like could would make over such new may any two time "
    "way need just work data code file value function error list table query user model answer question"
).split()
SYSTEM_PROMPTS = ["", "You are a helpful assistant.", "Answer briefly.", "You review Python code.",
                  "Reply in French."]


# ---------------------------------------------------------------- generating


def vocabulary(rng: np.random.Generator, size: int = 30_000) -> list[str]:
    """Common English words first, then made-up words of two to four syllables (Zipf-ranked)."""
    syllables = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"] + ["ex", "in", "or", "al", "en", "um"]
    words = list(dict.fromkeys(COMMON_WORDS))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(syllables, size=rng.integers(2, 5)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def iso(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> the store's ISO-8601 text ('...T..:..:..ffffffZ')."""
    stamps = np.datetime_as_string((seconds * 1e6).astype("datetime64[us]"), unit="us")
    return np.char.add(stamps, "Z")


def generate(path: Path, n_conversations: int, n_messages: int, seed: int = 5) -> None:
    """A database of ``n_conversations`` with ``n_messages`` in all (user and reply alternating), with
    the kept totals filled in and the full-text index populated. Written to a temporary file first."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    open_store(tmp).close()  # the schema, through the migrations
    words = np.array(vocabulary(rng))
    zipf = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    zipf_cdf = np.cumsum(zipf / zipf.sum())

    # Messages per conversation: even counts averaging n_messages / n_conversations, summing exactly
    turns = rng.integers(1, max(2, 2 * n_messages // n_conversations // 2), size=n_conversations)
    turns = np.maximum(1, np.round(turns * (n_messages / 2) / turns.sum()).astype(np.int64))
    while (short := n_messages // 2 - int(turns.sum())) != 0:  # spread the rounding over random conversations
        pool = np.flatnonzero(turns > 1) if short < 0 else n_conversations
        np.add.at(turns, rng.choice(pool, size=min(abs(short), 1000)), 1 if short > 0 else -1)
        turns = np.maximum(turns, 1)
    counts = turns * 2
    n = int(counts.sum())
    assert n == n_messages - n_messages % 2, (n, n_messages)

    now = time.time()
    conv_start = now - rng.uniform(0, DAYS * 86400, size=n_conversations)
    conv_user = rng.choice(len(USERS), size=n_conversations, p=USER_WEIGHTS)
    conv_source = np.where(rng.random(n_conversations) < 0.12, 1, 0)  # 1 = compare
    conv_model = rng.choice(len(MODELS), size=n_conversations, p=MODEL_WEIGHTS)
    conv_switch = np.where(rng.random(n_conversations) < 0.1, rng.choice(len(MODELS), size=n_conversations),
                           conv_model)  # one in ten switches model half-way
    conv_system = rng.integers(0, len(SYSTEM_PROMPTS), size=n_conversations)
    conv_deleted = rng.random(n_conversations) < 0.01

    # One row per message, in conversation order
    conv_of = np.repeat(np.arange(n_conversations), counts)
    first = np.cumsum(counts) - counts
    position = np.arange(n) - np.repeat(first, counts) + 1
    is_reply = position % 2 == 0
    gap = np.where(is_reply, rng.uniform(0.5, 20, size=n), rng.exponential(120, size=n))
    created = np.repeat(conv_start, counts) + np.cumsum(gap) - np.repeat(np.cumsum(gap)[first], counts)
    created = np.minimum(created, now)
    half = position > np.repeat(counts, counts) // 2
    model = np.where(half, conv_switch[conv_of], conv_model[conv_of])
    status = np.where(is_reply, rng.choice(len(STATUSES), size=n, p=STATUS_WEIGHTS), 0)
    length = np.where(is_reply, rng.integers(20, 100, size=n), rng.integers(5, 30, size=n))
    out_tokens = np.where(is_reply, (length * rng.uniform(1.2, 1.5, size=n)).astype(np.int64), 0)
    in_tokens = np.where(is_reply, 40 + position * 35 + rng.integers(0, 50, size=n), 0)
    cache_read = np.where(is_reply & (rng.random(n) < 0.2), in_tokens // 2, 0)
    price_in = np.array([p[2] if p[2] is not None else np.nan for p in MODELS])[model]
    price_out = np.array([p[3] if p[3] is not None else np.nan for p in MODELS])[model]
    stopped, failed = status == 1, status >= 2
    out_tokens = np.where(stopped | failed, out_tokens // 3, out_tokens)
    cost = (in_tokens * price_in + out_tokens * price_out + cache_read * price_in) / 1e6
    ttft = np.where(is_reply, rng.lognormal(-0.7, 0.5, size=n), np.nan)
    duration = ttft + out_tokens / rng.uniform(30, 120, size=n)

    # Ids follow time, as they do in a real database
    order = np.argsort(created, kind="stable")
    message_id = np.empty(n, dtype=np.int64)
    message_id[order] = np.arange(1, n + 1)
    stamps = iso(created)
    conv_ids = np.array([f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**63, size=(n_conversations, 2))])

    # Text: Zipf-distributed words, common English ones first
    total_words = int(length.sum())
    picks = words[np.searchsorted(zipf_cdf, rng.random(total_words))].tolist()
    ends = np.cumsum(length).tolist()
    texts = [" ".join(picks[start:end]) for start, end in zip([0, *ends[:-1]], ends, strict=True)]

    # Per-conversation totals, as chat.store.totals.refresh_totals keeps them
    reply = is_reply.astype(np.int64)
    counted_cost = np.where(np.isnan(cost), 0.0, cost) * reply
    totals = {
        "message_count": counts,
        "reply_count": counts // 2,
        "input_tokens": np.bincount(conv_of, in_tokens, n_conversations).astype(np.int64),
        "output_tokens": np.bincount(conv_of, out_tokens, n_conversations).astype(np.int64),
        "cache_read_tokens": np.bincount(conv_of, cache_read, n_conversations).astype(np.int64),
        "cost": np.bincount(conv_of, counted_cost, n_conversations),
        "unknown_cost_count": np.bincount(conv_of, (np.isnan(cost) & is_reply).astype(np.int64), n_conversations),
        "stopped_count": np.bincount(conv_of, (stopped & is_reply).astype(np.int64), n_conversations),
        "error_count": np.bincount(conv_of, (failed & is_reply).astype(np.int64), n_conversations),
    }
    last = np.cumsum(counts) - 1

    con = sqlite3.connect(tmp, isolation_level=None)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -512000")
    # Per-row full-text triggers flush FTS5's buffer at every statement (~7x slower): drop them and the
    # message indexes, load, then rebuild the index and put back the very same triggers and indexes.
    saved = con.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'messages' "
                        "AND type IN ('trigger', 'index') AND sql IS NOT NULL").fetchall()
    for kind, name, _ in saved:
        con.execute(f'DROP {kind.upper()} "{name}"')
    con.execute("BEGIN")

    runs: list[tuple] = []
    conv_run: list[str | None] = [None] * n_conversations
    for i in np.flatnonzero(conv_source == 1).tolist():
        if not runs or rng.random() < 0.5:  # two or three conversations per compare run
            runs.append((f"run{len(runs):08d}", USERS[conv_user[i]], texts[first[i]], "{}", None, 0,
                         str(stamps[first[i]])))
        conv_run[i] = runs[-1][0]
    con.executemany("INSERT INTO compare_runs (id, user, prompt, settings, vote, blind, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", runs)

    model_ids = [f"{p}:{m}" for p, m, *_ in MODELS]
    settings_text = {(m, k): json.dumps({"provider": MODELS[m][0], "model": MODELS[m][1], "system": system,
                                         "temperature": 0.7, "max_tokens": None})
                     for m in range(len(MODELS)) for k, system in enumerate(SYSTEM_PROMPTS)}
    conv = {name: array.tolist() for name, array in {
        "id": conv_ids, "user": conv_user, "source": conv_source, "model": conv_model, "switch": conv_switch,
        "system": conv_system, "deleted": conv_deleted, "count": counts, "first": first, "last": last,
        **totals}.items()}
    stamps_l = stamps.tolist()

    def conversation_rows():
        c = conv
        for i in range(n_conversations):
            # replies in the first half use the conversation's model, the later ones the one switched to
            used = (c["model"][i], c["switch"][i]) if c["count"][i] > 2 else (c["switch"][i],)
            yield (c["id"][i], USERS[c["user"][i]], " ".join(texts[c["first"][i]].split()[:8]),
                   SOURCE_NAMES[c["source"][i]], conv_run[i], stamps_l[c["first"][i]], stamps_l[c["last"][i]],
                   stamps_l[c["last"][i]] if c["deleted"][i] else None, settings_text[c["switch"][i], c["system"][i]],
                   c["message_count"][i], c["reply_count"][i], c["input_tokens"][i], c["output_tokens"][i],
                   c["cache_read_tokens"][i], c["cost"][i], c["unknown_cost_count"][i],
                   json.dumps(list(dict.fromkeys(model_ids[m] for m in used))), c["stopped_count"][i],
                   c["error_count"][i])

    con.executemany(
        "INSERT INTO conversations (id, user, title, source, compare_run_id, created_at, updated_at, deleted_at, "
        "settings, message_count, reply_count, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, "
        "cost, unknown_cost_count, models, stopped_count, error_count) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
        conversation_rows(),
    )

    msg = {name: array.tolist() for name, array in {
        "id": message_id, "position": position, "reply": is_reply, "model": model, "status": status,
        "in": in_tokens, "out": out_tokens, "read": cache_read, "ttft": ttft, "duration": duration,
        "conv": conv_of}.items()}
    costs = [None if c != c else c for c in cost.tolist()]  # NaN: no known price

    def message_rows():
        m_, c = msg, conv
        for k in order.tolist():  # in id order: tables and indexes are appended to, not shuffled
            i = m_["conv"][k]
            if not m_["reply"][k]:
                yield (m_["id"][k], c["id"][i], m_["position"][k], "user", texts[k], "complete", None, None, None,
                       None, None, None, None, None, 0, 0, None, None, None, None, 0, stamps_l[k], stamps_l[k])
                continue
            m = m_["model"][k]
            status_name = STATUSES[m_["status"][k]]
            done = int(status_name == "complete")
            yield (m_["id"][k], c["id"][i], m_["position"][k], "assistant", texts[k], status_name,
                   "The provider returned an error." if status_name == "error" else None, MODELS[m][0],
                   MODELS[m][1], settings_text[m, c["system"][i]], m_["in"][k], m_["out"][k], m_["read"][k], 0,
                   done, done, costs[k], m_["ttft"][k], m_["duration"][k], "stop" if done else None, 0,
                   stamps_l[k], stamps_l[k])

    con.executemany(
        "INSERT INTO messages (id, conversation_id, position, role, content, status, error, provider, model, "
        "settings, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, input_exact, output_exact, "
        "cost, ttft, duration, finish_reason, superseded, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        message_rows(),
    )
    con.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
    for _, _, sql in sorted(saved, key=lambda item: item[0] == "trigger"):  # indexes first, then triggers
        con.execute(sql)
    con.execute("COMMIT")
    con.execute("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    os.replace(tmp, path)
    print(f"generated {n_conversations:,} conversations and {n:,} messages in {time.perf_counter() - started:.0f} s "
          f"({path.stat().st_size / 1e6:,.0f} MB): {path}", flush=True)


def database(n_conversations: int, n_messages: int, *, rebuild: bool = False) -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"history-{n_conversations}-{n_messages}-v{GENERATOR_VERSION}.db"
    if rebuild or not path.exists():
        generate(path, n_conversations, n_messages)
    return path


# ---------------------------------------------------------------- measuring


def timed(fn, runs: int, budget_s: float | None = None) -> list[float]:
    """Milliseconds per call, after one warm-up call; stops early (after 3 runs at least) past the budget."""
    fn()
    times: list[float] = []
    started = time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        if budget_s is not None and len(times) >= 3 and time.perf_counter() - started > budget_s:
            break
    return times


def pct(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cell(times: list[float] | None) -> str:
    if not times:
        return f"{'':>8}{'':>8}"
    note = "" if len(times) >= 10 else f" (n={len(times)})"
    return f"{pct(times, 0.5):8.1f}{pct(times, 0.95):8.1f}{note}"


# ---------------------------------------------------------------- PostgreSQL: the same data


def load_postgres(server, sqlite_path: Path) -> str:
    """The generated SQLite database copied into a new database on ``server`` (COPY, with the secondary
    indexes and foreign-key triggers off while loading, then rebuilt and analysed); returns its URL."""
    import psycopg

    started = time.perf_counter()
    url = server.new_database()
    open_store(url, pool_size=1).close()  # the schema, through the PostgreSQL migrations
    source = sqlite3.connect(f"{sqlite_path.resolve().as_uri()}?mode=ro", uri=True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('messages', "
                               "'conversations') AND indexname NOT LIKE '%pkey' AND indexdef NOT LIKE '%(rowid)'"
                               ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        for table in ("compare_runs", "conversations", "messages"):
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
            selected = [f"t.{c}" for c in columns]
            joined = ""
            if table == "messages":  # the copies PostgreSQL's triggers keep (off while loading)
                columns += ["owner", "conversation_deleted"]
                selected += ["c.user", "c.deleted_at IS NOT NULL"]
                joined = " JOIN conversations c ON c.id = t.conversation_id"
            quoted = ", ".join(f'"{c}"' for c in columns)
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
            with conn.cursor().copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                cursor = source.execute(f"SELECT {', '.join(selected)} FROM {table} t{joined} ORDER BY t.rowid")
                while rows := cursor.fetchmany(20_000):
                    for row in rows:
                        copy.write_row(row)
            conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        conn.execute("SELECT setval(pg_get_serial_sequence('messages', 'id'), (SELECT MAX(id) FROM messages))")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("VACUUM ANALYZE")
    source.close()
    print(f"loaded into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def run(store: Store, runs: int) -> tuple[int, dict[str, list[float]]]:
    words = vocabulary(np.random.default_rng(5))  # the generator's first use of its seed: the same words
    medium, rare = words[150], words[3000]
    searches = [
        ("a rare word", rare),
        ("a medium word", medium),
        ("the most common word", "the"),
        ("two words", f"{medium} {rare}"),
        ("a question of common words", "how to use the data in this file"),
        ("a phrase", '"of the"'),
        ("a prefix", medium[:4] + "*"),
        ("unparseable text", f'"{medium} AND ('),
    ]
    scopes = [("everyone", None), (f"one user ({LOCAL_USER!r})", LOCAL_USER)]
    results: list[tuple[str, list[float], float | None]] = []

    sqlite = store.engine == "sqlite"

    def bare(sql: str, params: list):
        def call():
            with store.db() as db:
                db.execute(sql, params).fetchall()
        return call

    with store.db() as db:
        n_conv = db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
        n_msg = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
    print(f"\nHistory benchmark on {store.engine}: {n_conv:,} conversations, {n_msg:,} messages; {runs} runs per "
          "case.\n'bare SQL' (SQLite only) is the one straightforward statement for the same answer, run without our "
          "code:\n"
          "  search: FTS5 MATCH joined to messages and conversations, ORDER BY bm25() LIMIT 50 (no window);\n"
          "  table: SELECT * ... WHERE deleted_at IS NULL ORDER BY updated_at DESC LIMIT 50;\n"
          "  cards: the SUM over conversations' kept totals.\n")
    width = 96
    print(f"{'':<{width}}{'ours':>16}    {'bare SQL':>16}")
    print(f"{'case':<{width}}{'p50 ms':>8}{'p95 ms':>8}    {'p50 ms':>8}{'p95 ms':>8}   goal p95", flush=True)
    failed = 0

    def report(label: str, ours: list[float], baseline: list[float] | None = None, goal: float | None = None):
        nonlocal failed
        verdict = ""
        if goal is not None:
            ok = pct(ours, 0.95) <= goal
            failed += not ok
            verdict = f"<= {goal:g} ms {'ok' if ok else 'MISSED'}"
        print(f"{label:<{width}}{cell(ours)}    {cell(baseline)}   {verdict}", flush=True)
        results.append((label, ours, goal))

    for scope_name, user in scopes:
        filters = Filters(user=user)
        where, params = store.filter_sql(filters)
        for label, text in searches:
            ours = timed(lambda text=text, filters=filters: search(store, text, filters), runs)
            match = text if label != "unparseable text" else " ".join(plain_words(text))
            baseline = timed(bare(
                "SELECT m.*, c.title, bm25(messages_fts) AS score FROM messages_fts "
                "JOIN messages m ON m.id = messages_fts.rowid JOIN conversations c ON c.id = m.conversation_id "
                f"WHERE messages_fts MATCH ? AND m.superseded = 0 AND {where} ORDER BY score LIMIT 50",
                [match, *params]), runs, budget_s=5) if sqlite else None
            report(f"search {label} [{text}], {scope_name}", ours, baseline, 50)
        ours = timed(lambda filters=filters: (list_conversations(store, filters),
                                              count_conversations(store, filters)), runs)
        baseline = timed(bare(f"SELECT c.* FROM conversations c WHERE {where} "
                              "ORDER BY c.updated_at DESC LIMIT 50", params), runs) if sqlite else None
        report(f"table, first page and page count, {scope_name}", ours, baseline, 100)
        ours = timed(lambda filters=filters: summary(store, filters), runs)
        baseline = timed(bare(
            "SELECT COUNT(*), SUM(message_count), SUM(reply_count), SUM(input_tokens + output_tokens + "
            f"cache_read_tokens + cache_write_tokens), TOTAL(cost), SUM(unknown_cost_count) FROM conversations c "
            f"WHERE {where}", params), runs) if sqlite else None
        report(f"analytics cards, {scope_name}", ours, baseline, 100)

    print("\nNot under a goal: the rest of the page at this size", flush=True)
    today = date.today()
    for label, filters in [
        ("table filtered: provider anthropic", Filters(provider="anthropic")),
        ("table filtered: has failed replies", Filters(status="failed")),
        ("table filtered: last 7 days", Filters(since=today - timedelta(days=7))),
        ("table filtered: compare, one user", Filters(source="compare", user=LOCAL_USER)),
    ]:
        report(label, timed(lambda f=filters: (list_conversations(store, f),
                                               count_conversations(store, f)), runs))
    for label, text, filters in [
        ("search 'the', compare conversations only", "the", Filters(source="compare")),
        ("search 'the', last 30 days", "the", Filters(since=today - timedelta(days=30))),
        ("search a medium word, last activity 180+ days ago", medium,
         Filters(until=today - timedelta(days=180))),
        ("search 'the', deleted conversations", "the", Filters(deleted=True)),
    ]:
        report(label, timed(lambda f=filters, t=text: search(store, t, f), 10, budget_s=10))
    for scope_name, user in scopes:
        f = Filters(user=user)
        report(f"analytics charts and tables, {scope_name}",
               timed(lambda f=f: (usage_by_model_and_day(store, f), usage_by_user(store, f)), 5))
    f = Filters(user=LOCAL_USER)
    report(f"CSV of the whole table, {scopes[1][0]}",
           timed(lambda: table_csv(list_conversations(store, f, limit=None)), 3))

    print()
    groups: dict[str, list[float]] = {}
    for kind, goal in (("search", 50), ("table", 100), ("analytics cards", 100)):
        times = [t for label, ours, g in results if g is not None and label.startswith(kind) for t in ours]
        groups[kind] = times
        print(f"all {kind} runs under a goal on {store.engine}: p50 {pct(times, 0.5):.1f} ms, "
              f"p95 {pct(times, 0.95):.1f} ms (goal <= {goal} ms)")
    return failed, groups


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="5,000 conversations / 50,000 messages")
    parser.add_argument("--rebuild", action="store_true", help="generate the database again")
    parser.add_argument("--runs", type=int, default=50, help="runs per case (default 50)")
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    size = SMALL if args.small else FULL
    path = database(*size, rebuild=args.rebuild)
    failed = 0
    summaries: dict[str, dict[str, list[float]]] = {}
    if args.engine in ("sqlite", "both"):
        store = open_store(path)  # migrates the cached database if a migration was added since it was generated
        try:
            missed, summaries["sqlite"] = run(store, args.runs)
            failed += missed
        finally:
            store.close()
    if args.engine in ("postgresql", "both"):
        from pg_support import PostgresServer

        settings = {"shared_buffers": "1GB", "work_mem": "16MB", "effective_cache_size": "8GB",
                    "max_wal_size": "8GB", "random_page_cost": "1.1", "jit": "off"}
        with PostgresServer(settings=settings) as server:
            store = open_store(load_postgres(server, path))
            try:
                missed, summaries["postgresql"] = run(store, args.runs)
                failed += missed
            finally:
                store.close()
    if len(summaries) == 2:
        print("\nboth engines, every run under a goal, p95 ms:  " + "   ".join(
            f"{kind}: SQLite {pct(summaries['sqlite'][kind], 0.95):.1f} / PostgreSQL "
            f"{pct(summaries['postgresql'][kind], 0.95):.1f}" for kind in summaries["sqlite"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
