"""The History page's logic: list, search, analyse and export past conversations. Pure functions over a Store.

Listing and the analytics cards read the per-conversation totals the store keeps, never ``messages``.

Search runs FTS5 with bm25 ranking. Ranking every match of a common word costs seconds at a million messages
(FTS5 scores each match and counts every row holding each word), so a search ranks a window:

- the newest :data:`WINDOW` matching messages that pass the filters are the candidates (FTS5 walks its
  index newest first and stops there), and bm25 orders them; conversations are ranked by their best message.
  Older matches count only once the filters (a date range, say) bring them into the window.
- a word found in more than :data:`COMMON_SHARE` of recent messages (judged from how close together its
  newest matches are) is too common to search by, like a stop word: when the search has rarer words it is
  ignored (neither required nor ranked nor highlighted); requiring it would cost FTS5 tens of milliseconds
  of intersecting long lists, and its bm25 weight is next to nothing. When every word is that common, all
  are required and the candidates are shown newest first.

Text that FTS5 cannot parse (an unbalanced quote, a dangling operator, stray punctuation) is searched as
plain words: each whitespace-separated chunk holding a letter or digit becomes a quoted phrase.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import sqlite3
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from chat.attachments import chip
from chat.display import csv_cell, ending, escape_markdown, figures_line, thinking_body, thinking_label, totals_line
from chat.migrations import now
from chat.pricing import format_cost
from chat.store import SEARCH_TIME_LIMIT, SOURCES, SearchError, Store, check_search_size, search_guard, title_from

PAGE_SIZE = 50
WINDOW = 1000  # newest matching messages ranked by a search
COMMON_SHARE = 0.1  # a word in a larger share of recent messages is ignored when the search has rarer words
COMMON_PROBE = 64  # a word needs at least this many matches to count as common; its newest ones give its share
STATUSES = {  # status filter -> the condition on the kept totals
    "stopped": "c.stopped_count > 0",
    "failed": "c.error_count > 0",
    "stopped or failed": "(c.stopped_count > 0 OR c.error_count > 0)",
}
HIGHLIGHT_START, HIGHLIGHT_END = "\x02", "\x03"  # snippet() markers, turned into **bold** after escaping
SNIPPET_TOKENS = 16
EXPORT_FORMAT = "chat-workbench/conversation@1"
_SECRET_KEY = re.compile(r"key|secret|password|auth", re.IGNORECASE)

__all__ = [
    "CSV_COLUMNS",
    "PAGE_SIZE",
    "STATUSES",
    "WINDOW",
    "Filters",
    "Ranked",
    "SearchPage",
    "conversation_json",
    "conversation_markdown",
    "cost_text",
    "count_conversations",
    "day_bounds",
    "escape_markdown",
    "filter_options",
    "get_conversation",
    "highlight_markdown",
    "list_conversations",
    "rank",
    "search",
    "search_page",
    "settings_lines",
    "summary",
    "table_csv",
    "usage_by_model_and_day",
    "usage_by_user",
]


# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """Which conversations: every field None (or False) means "any". Dates are UTC days, inclusive, on the
    conversation's last activity. ``model`` is a ``provider:model`` id. ``deleted`` True shows only the
    deleted conversations (to restore them); otherwise deleted ones are hidden."""

    user: str | None = None
    since: date | None = None
    until: date | None = None
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    source: str | None = None
    deleted: bool = False

    def __post_init__(self):
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {tuple(STATUSES)}, not {self.status!r}")
        if self.source is not None and self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")

    def totals_source(self) -> str:
        """``conversations c`` for sums and counts: live conversations are read from the index that holds
        their totals (SQLite would otherwise read every row; see migration m002)."""
        return "conversations c" if self.deleted else "conversations c INDEXED BY idx_conversations_live_totals"

    def sql(self) -> tuple[str, list[Any]]:
        """A condition on ``conversations c`` and its parameters."""
        where = ["c.deleted_at IS NOT NULL" if self.deleted else "c.deleted_at IS NULL"]
        params: list[Any] = []
        if self.user is not None:
            where.append("c.user = ?")
            params.append(self.user)
        if self.source is not None:
            where.append("c.source = ?")
            params.append(self.source)
        if self.since is not None:
            where.append("c.updated_at >= ?")
            params.append(self.since.isoformat())
        if self.until is not None:
            where.append("c.updated_at < ?")
            params.append((self.until + timedelta(days=1)).isoformat())
        # `models` is the JSON list the store keeps, e.g. ["openai:gpt-4o"]: match the JSON-encoded text
        if self.provider:
            where.append("instr(c.models, ?) > 0")
            params.append(json.dumps(f"{self.provider}:")[:-1])  # '"openai:' (no closing quote: a prefix)
        if self.model:
            where.append("instr(c.models, ?) > 0")
            params.append(json.dumps(self.model))
        if self.status is not None:
            where.append(STATUSES[self.status])
        return " AND ".join(where), params


# ---------------------------------------------------------------- listing


def _conversation(row: dict) -> dict:
    row["models"] = json.loads(row.get("models") or "[]")
    row["settings"] = json.loads(row.get("settings") or "{}")
    row["tokens"] = sum(row.get(k) or 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                   "cache_write_tokens"))
    return row


def _rows(db, sql: str, params: Any = ()) -> list[dict]:
    cursor = db.execute(sql, params)
    keys = [d[0] for d in cursor.description]
    return [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]


def _name_untitled(db, rows: list[dict]) -> None:
    """A conversation with no title is named after its first message."""
    for row in rows:
        if not (row.get("title") or "").strip():
            first = db.execute("SELECT content FROM messages WHERE conversation_id = ? AND superseded = 0 "
                               "ORDER BY position LIMIT 1", [row["id"]]).fetchone()
            row["title"] = title_from(first[0]) if first else ""


def list_conversations(store: Store, filters: Filters, *, limit: int | None = PAGE_SIZE,
                       offset: int = 0) -> list[dict]:
    """Conversations matching ``filters``, last active first. Each row has the kept totals, ``models`` as a
    list, ``settings`` as a dict, ``tokens`` (all kinds) and a ``title`` (the first message when untitled)."""
    where, params = filters.sql()
    sql = f"SELECT c.* FROM conversations c WHERE {where} ORDER BY c.updated_at DESC, c.rowid DESC"
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    with store.db() as db:
        rows = [_conversation(row) for row in _rows(db, sql, params)]
        _name_untitled(db, rows)
    return rows


def count_conversations(store: Store, filters: Filters) -> int:
    where, params = filters.sql()
    with store.db() as db:
        return db.execute(f"SELECT COUNT(*) FROM {filters.totals_source()} WHERE {where}", params).fetchone()[0]


def filter_options(store: Store, user: str | None) -> dict[str, list[str]]:
    """The providers, ``provider:model`` ids and users seen in ``user``'s conversations (None: everyone's)."""
    filters = Filters(user=user)
    where, params = filters.sql()
    with store.db() as db:
        model_lists = [row[0] for row in db.execute(
            f"SELECT DISTINCT c.models FROM {filters.totals_source()} WHERE {where}", params)]
        users = [row[0] for row in db.execute(
            f"SELECT DISTINCT c.user FROM {filters.totals_source()} WHERE {where} ORDER BY 1", params)]
    models = sorted({m for text in model_lists for m in json.loads(text or "[]")})
    providers = sorted({m.partition(":")[0] for m in models})
    return {"providers": providers, "models": models, "users": users}


def get_conversation(store: Store, conversation_id: str, *, user: str | None) -> dict | None:
    """One conversation, deleted or not, if ``user`` may see it (None: anyone's)."""
    conversation = store.get_conversation(conversation_id, include_deleted=True)
    if conversation is None or (user is not None and conversation["user"] != user):
        return None
    conversation["tokens"] = sum(conversation.get(k) or 0 for k in (
        "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"))
    return conversation


# ---------------------------------------------------------------- search


@dataclass(frozen=True)
class Query:
    expr: str  # the FTS5 MATCH expression
    phrases: tuple[str, ...] | None  # the phrases it ANDs, or None when it uses operators
    plain: bool  # the text was not valid FTS5 syntax and is searched as plain words


@dataclass
class SearchPage:
    rows: list[dict]  # this page's conversations, best first; each has snippet, match_id, hits
    total: int  # conversations found among the ranked matches
    windowed: bool  # more messages matched than were ranked (the newest WINDOW)
    plain: bool  # searched as plain words
    ranked_by: str  # "relevance" or "recency" (every word very common)
    ignored: tuple[str, ...] = ()  # very common words left out of the search
    problem: str | None = None  # why the search did not run, for the user (see Ranked)


_TOKEN = re.compile(r'\s+|"(?:[^"]|"")*"\*?|[\w\x80-\U0010ffff]+\*?|.', re.UNICODE)
_OPERATORS = {"AND", "OR", "NOT", "NEAR"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _phrases(text: str) -> tuple[str, ...] | None:
    """The phrases of a query that is only phrases (implicitly ANDed), each as MATCH text; None otherwise."""
    phrases = []
    for token in _TOKEN.findall(text):
        if token.isspace():
            continue
        if token.startswith('"') and len(token) > 1 and token.rstrip("*").endswith('"'):
            phrases.append(token)
        elif re.fullmatch(r"[\w\x80-\U0010ffff]+\*?", token) and token.rstrip("*") not in _OPERATORS:
            prefix = token.endswith("*")
            phrases.append('"' + token.rstrip("*") + '"' + ("*" if prefix else ""))
        else:
            return None
    return tuple(phrases)


def plain_words(text: str) -> tuple[str, ...]:
    """Whitespace-separated chunks that hold a letter or digit, each as a quoted FTS5 phrase."""
    return tuple('"' + chunk.replace('"', '""') + '"' for chunk in text.split() if re.search(r"\w", chunk))


def _terms(text: str) -> list[str]:
    """The words and quoted phrases of a query as typed (operators and punctuation left out)."""
    return [t for t in _TOKEN.findall(text) if t.startswith('"') and len(t) > 1
            or re.fullmatch(r"[\w\x80-\U0010ffff]+\*?", t) and t.rstrip("*") not in _OPERATORS]


def parse_query(db, text: str) -> Query | None:
    """The MATCH expression for what the user typed; None when there is nothing to search for. Raises
    SearchTooLarge past the size limits (chat.store.check_search_size)."""
    # Control characters are never part of a word, and FTS5 reads a NUL as the end of the query.
    text = _CONTROL.sub(" ", text).strip()
    if not text:
        return None
    check_search_size(text, _terms(text))
    phrases = _phrases(text)
    if phrases:  # words and quoted phrases only: valid FTS5 as they stand, written out one by one
        return Query(" ".join(phrases), phrases, plain=False)
    try:  # operators: let FTS5 judge (parsing a query costs no more than a prefix's word list)
        db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? LIMIT 1", [text]).fetchall()
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", "SQLITE_ERROR") != "SQLITE_ERROR":
            raise  # about the database, not the query
        words = plain_words(text)
        return Query(" ".join(words), words, plain=True) if words else None
    return Query(text, None, plain=False)


def _is_common(db, phrase: str, last_id: int) -> bool:
    """Whether ``phrase`` is in more than COMMON_SHARE of recent messages: its newest COMMON_PROBE matches
    span few enough message ids (ids follow time)."""
    row = db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC "
                     "LIMIT 1 OFFSET ?", [phrase, COMMON_PROBE - 1]).fetchone()
    return row is not None and COMMON_PROBE / (last_id - row[0] + 1) > COMMON_SHARE


# FTS5 sets a query up again for each value of `rowid IN (...)` (a prefix query merges its word lists again
# each time). One pass over the ids' range with `+rowid IN (...)` (the "+" keeps the list out of the virtual
# table's hands) sets it up once and runs snippet() only on the listed rows.
_ONLY_THESE = "rowid BETWEEN ? AND ? AND +rowid IN (SELECT value FROM json_each(?))"


def _only(ids: list[int]) -> list:
    return [min(ids), max(ids), json.dumps(ids)]


def _snippets(db, expr: str, message_ids: list[int]) -> dict[int, str]:
    if not message_ids:
        return {}
    return dict(db.execute(
        f"SELECT rowid, snippet(messages_fts, 0, ?, ?, '…', ?) FROM messages_fts "
        f"WHERE messages_fts MATCH ? AND {_ONLY_THESE}",
        [HIGHLIGHT_START, HIGHLIGHT_END, SNIPPET_TOKENS, expr, *_only(message_ids)]).fetchall())


@dataclass
class Ranked:
    """A search's matching conversations, best first, before any page of them is read."""

    hits: list[tuple[str, float, int, int]]  # conversation id, score (lower is better), best message id, hits
    highlight: str  # the MATCH expression the snippets highlight
    windowed: bool  # more messages matched than were ranked (the newest WINDOW)
    plain: bool  # searched as plain words
    ranked_by: str  # "relevance", or "recency" when every word is very common
    ignored: tuple[str, ...] = ()  # very common words left out of the search (see the module's docstring)
    problem: str | None = None  # why the search did not run (too large, too slow, damaged index), for the user


def rank(store: Store, text: str, filters: Filters, *, time_limit: float = SEARCH_TIME_LIMIT) -> Ranked:
    """The conversations whose visible messages match ``text`` within ``filters``, ranked by their best
    message (see the module's docstring for the window and the very common words). A search too large to
    run, one that runs past ``time_limit`` seconds, or a damaged index finds nothing, with ``problem``
    saying why (a chat.store.SearchError's message)."""
    try:
        return _rank(store, text, filters, time_limit)
    except SearchError as exc:
        return Ranked([], "", windowed=False, plain=False, ranked_by="relevance", problem=str(exc))


def _rank(store: Store, text: str, filters: Filters, time_limit: float) -> Ranked:
    with store.db() as db, search_guard(db, time_limit):
        query = parse_query(db, text)
        if query is None:
            return Ranked([], "", windowed=False, plain=True, ranked_by="relevance")
        expr, ignored, ranked_by = query.expr, (), "relevance"
        if query.phrases:
            last_id = db.execute("SELECT COALESCE(MAX(rowid), 0) FROM messages").fetchone()[0]
            common = tuple(p for p in query.phrases if _is_common(db, p, last_id))
            if len(common) == len(query.phrases):
                ranked_by = "recency"
            elif common:
                expr, ignored = " ".join(p for p in query.phrases if p not in common), common
        where, params = filters.sql()
        score = "bm25(messages_fts)" if ranked_by == "relevance" else "-messages_fts.rowid"
        candidates = db.execute(f"""
            SELECT messages_fts.rowid, m.conversation_id, {score}
            FROM messages_fts
            JOIN messages m ON m.id = messages_fts.rowid
            JOIN conversations c ON c.id = m.conversation_id
            WHERE messages_fts MATCH ? AND m.superseded = 0 AND {where}
            ORDER BY messages_fts.rowid DESC LIMIT ?""", [expr, *params, WINDOW + 1]).fetchall()
    windowed = len(candidates) > WINDOW
    candidates = candidates[:WINDOW]

    best: dict[str, list] = {}  # conversation id -> [score, best message id, hits]
    for message_id, conversation_id, message_score in candidates:
        entry = best.get(conversation_id)
        if entry is None:
            best[conversation_id] = [message_score, message_id, 1]
            continue
        entry[2] += 1
        if message_score < entry[0]:
            entry[0], entry[1] = message_score, message_id
    hits = sorted(((cid, score_, mid, n) for cid, (score_, mid, n) in best.items()), key=lambda h: (h[1], -h[2]))
    ignored_words = tuple(p.strip('"*').replace('""', '"') for p in ignored)
    return Ranked(hits, expr, windowed, query.plain, ranked_by, ignored_words)


def search_page(store: Store, ranked: Ranked, *, limit: int = PAGE_SIZE, offset: int = 0) -> list[dict]:
    """One page of a search's conversations (as :func:`list_conversations` gives them) with ``match_id``
    (the best message), ``hits`` (its matching messages among those ranked), ``score`` and ``snippet`` (the
    best message's passage, matched words between HIGHLIGHT_START and HIGHLIGHT_END)."""
    chosen = ranked.hits[offset:offset + limit]
    if not chosen:
        return []
    conversations: dict[str, dict] = {}
    with store.db() as db:
        ids = [h[0] for h in chosen]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in _rows(db, f"SELECT c.* FROM conversations c WHERE c.id IN ({marks})", chunk):
                conversations[row["id"]] = _conversation(row)
        snippets = _snippets(db, ranked.highlight, [h[2] for h in chosen])
        rows = []
        for conversation_id, score, message_id, hits in chosen:
            row = conversations.get(conversation_id)
            if row is None:  # deleted for good since it was ranked
                continue
            rows.append(row | {"match_id": message_id, "hits": hits, "score": score,
                               "snippet": snippets.get(message_id, "")})
        _name_untitled(db, rows)
    return rows


def search(store: Store, text: str, filters: Filters, *, limit: int = PAGE_SIZE, offset: int = 0) -> SearchPage:
    """:func:`rank`, then one page of it."""
    ranked = rank(store, text, filters)
    rows = search_page(store, ranked, limit=limit, offset=offset)
    return SearchPage(rows, len(ranked.hits), ranked.windowed, ranked.plain, ranked.ranked_by, ranked.ignored,
                      ranked.problem)


# ---------------------------------------------------------------- showing matches safely



def highlight_markdown(snippet: str) -> str:
    """A snippet as one line of Markdown: matched words in **bold**, everything else escaped."""
    parts = re.split(f"[{HIGHLIGHT_START}{HIGHLIGHT_END}]", " ".join(snippet.split()))
    out = []
    for i, part in enumerate(parts):
        core = part.strip()
        if i % 2 and core:  # bold markers must touch the words: keep the spaces outside them
            lead, trail = part[:len(part) - len(part.lstrip())], part[len(part.rstrip()):]
            out.append(f"{lead}**{escape_markdown(core)}**{trail}")
        else:
            out.append(escape_markdown(part))
    return "".join(out)


def plain_snippet(snippet: str) -> str:
    return " ".join(snippet.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "").split())


# ---------------------------------------------------------------- analytics


def summary(store: Store, filters: Filters) -> dict:
    """The cards: conversations, messages, replies, tokens, cost (known costs) and replies of unknown cost,
    from the kept totals."""
    where, params = filters.sql()
    with store.db() as db:
        row = _rows(db, f"""
            SELECT COUNT(*) AS conversations,
                   COALESCE(SUM(c.message_count), 0) AS messages,
                   COALESCE(SUM(c.reply_count), 0) AS replies,
                   COALESCE(SUM(c.input_tokens + c.output_tokens + c.cache_read_tokens + c.cache_write_tokens), 0)
                     AS tokens,
                   TOTAL(c.cost) AS cost,
                   COALESCE(SUM(c.unknown_cost_count), 0) AS unknown_cost_count
            FROM {filters.totals_source()} WHERE {where}""", params)[0]
    return row


def usage_by_model_and_day(store: Store, filters: Filters) -> tuple[list[dict], list[dict]]:
    """Every finished reply of the matching conversations, (superseded ones too, as in the totals), grouped:

    - by UTC day and model: ``day``, ``model``, ``replies``, ``tokens``, ``cost`` (known), ``unknown_cost``;
    - by model: the same plus ``median_ttft`` (s) and ``median_tokens_per_second`` (None without data).
    """
    where, params = filters.sql()
    # CROSS JOIN keeps conversations as the outer loop: the filters pick them, an index finds their replies.
    # The rate is chat.display.tokens_per_second, in SQL.
    sql = f"""
        SELECT substr(m.created_at, 1, 10),
               CASE WHEN m.provider IS NULL THEN COALESCE(m.model, 'unknown model')
                    ELSE m.provider || ':' || m.model END,
               COALESCE(m.input_tokens, 0) + COALESCE(m.output_tokens, 0) + COALESCE(m.cache_read_tokens, 0)
                 + COALESCE(m.cache_write_tokens, 0),
               m.cost, m.ttft,
               CASE WHEN m.output_tokens > 0 AND m.duration - COALESCE(m.ttft, 0) > 0.05
                    THEN m.output_tokens / (m.duration - COALESCE(m.ttft, 0)) END
        FROM conversations c CROSS JOIN messages m ON m.conversation_id = c.id
        WHERE {where} AND m.role = 'assistant' AND m.status != 'streaming'"""
    days: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, 0.0, 0])
    totals: dict[str, list] = defaultdict(lambda: [0, 0, 0.0, 0])
    ttfts: dict[str, list[float]] = defaultdict(list)
    rates: dict[str, list[float]] = defaultdict(list)
    with store.db() as db:
        cursor = db.execute(sql, params)
        while batch := cursor.fetchmany(10_000):
            for day, name, tokens, cost, ttft, rate in batch:
                entry = days[(day, name)]
                entry[0] += 1
                entry[1] += tokens
                if cost is None:
                    entry[3] += 1
                else:
                    entry[2] += cost
                if ttft is not None:
                    ttfts[name].append(ttft)
                if rate is not None:
                    rates[name].append(rate)
    for (_, name), (n, tokens, cost, unknown) in days.items():
        entry = totals[name]
        entry[0] += n
        entry[1] += tokens
        entry[2] += cost
        entry[3] += unknown
    by_day = [{"day": day, "model": name, "replies": n, "tokens": tokens, "cost": cost, "unknown_cost": unknown}
              for (day, name), (n, tokens, cost, unknown) in sorted(days.items())]
    by_model = [{"model": name, "replies": n, "tokens": tokens, "cost": cost, "unknown_cost": unknown,
                 "median_ttft": statistics.median(ttfts[name]) if ttfts[name] else None,
                 "median_tokens_per_second": statistics.median(rates[name]) if rates[name] else None}
                for name, (n, tokens, cost, unknown) in sorted(totals.items())]
    return by_day, by_model


def usage_by_user(store: Store, filters: Filters) -> list[dict]:
    where, params = filters.sql()
    with store.db() as db:
        return _rows(db, f"""
            SELECT c.user AS user, COUNT(*) AS conversations, SUM(c.message_count) AS messages,
                   SUM(c.input_tokens + c.output_tokens + c.cache_read_tokens + c.cache_write_tokens) AS tokens,
                   TOTAL(c.cost) AS cost, SUM(c.unknown_cost_count) AS unknown_cost_count
            FROM {filters.totals_source()} WHERE {where} GROUP BY c.user ORDER BY 1""", params)


def cost_text(cost: float | None, unknown: int) -> str:
    """A total cost that never shows an unknown as $0: "cost unknown" when nothing is priced,
    "$0.031 + 2 unknown" when part is."""
    if unknown and not cost:
        return "cost unknown"
    text = format_cost(cost or 0.0)
    return f"{text} + {unknown} unknown" if unknown else text


# ---------------------------------------------------------------- exports


def _public_settings(settings: dict | None) -> dict | None:
    """Settings without anything that looks like a credential (none are stored; this keeps it so)."""
    if settings is None:
        return None
    return {k: v for k, v in settings.items() if not _SECRET_KEY.search(str(k))}


def _stamp(value: str | None) -> str:
    return value[:16].replace("T", " ") + " UTC" if value else ""


def settings_lines(settings: dict) -> list[str]:
    """The settings as Markdown list items; the system prompt last, quoted."""
    lines = []
    if settings.get("provider") or settings.get("model"):
        lines.append(f"- Model: {settings.get('provider', '')}:{settings.get('model', '')}")
    for key, label in (("temperature", "Temperature"), ("max_tokens", "Max output tokens")):
        value = settings.get(key)
        lines.append(f"- {label}: {'model default' if value is None else value}")
    for key, value in settings.items():
        if key not in ("provider", "model", "system", "temperature", "max_tokens"):
            lines.append(f"- {key}: {value}")
    system = (settings.get("system") or "").strip()
    lines.append("- System prompt: " + ("(none)" if not system else ""))
    if system:
        lines += ["", *("> " + line for line in system.splitlines())]
    return lines


def conversation_markdown(conversation: dict, messages: list[dict]) -> str:
    """The transcript as Markdown: a header with the totals and settings, then each message; each reply
    with its figures line. Message text is included as written (it is Markdown already)."""
    settings = _public_settings(conversation.get("settings")) or {}
    title = conversation.get("title") or "Untitled conversation"
    lines = [
        f"# {title}",
        "",
        f"- Conversation: {conversation['id']}",
        f"- User: {conversation.get('user', '')}",
        f"- Source: {conversation.get('source', '')}",
        f"- Started: {_stamp(conversation.get('created_at'))}",
        f"- Last activity: {_stamp(conversation.get('updated_at'))}",
        f"- Models: {', '.join(conversation.get('models') or []) or 'none'}",
        f"- Totals: {totals_line(conversation)}",
    ]
    if conversation.get("deleted_at"):
        lines.append(f"- Deleted: {_stamp(conversation['deleted_at'])}")
    lines += ["", "## Settings last used", "", *settings_lines(settings), ""]
    for message in messages:
        if message.get("superseded"):
            continue
        lines.append("---")
        lines.append("")
        if message["role"] == "assistant":
            lines.append(f"### Assistant ({message.get('model') or 'unknown model'})")
        else:
            lines.append(f"### {'You' if message['role'] == 'user' else message['role'].title()}")
        lines.append("")
        label = thinking_label(message) if message["role"] == "assistant" else None
        if label:  # reasoning is marked as such, quoted apart from the answer
            lines += [f"**Reasoning** ({label}):", ""]
            lines += ["> " + line if line else ">" for line in thinking_body(message).splitlines()]
            lines.append("")
        if message.get("attachments"):  # named, not embedded
            lines += [f"- Attached: {chip(meta)} ({meta['media_type']})" for meta in message["attachments"]]
            lines.append("")
        if message.get("content"):
            lines += [message["content"], ""]
        if message["role"] == "assistant":
            end = ending(message)
            if end.notice:
                lines += [f"> {end.label.capitalize()}: {end.notice}", ""]
            lines += [f"*{figures_line(message)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


_MESSAGE_FIELDS = ("id", "position", "role", "content", "status", "error", "provider", "model", "input_tokens",
                   "output_tokens", "cache_read_tokens", "cache_write_tokens", "input_exact", "output_exact",
                   "cost", "cost_source", "ttft", "duration", "finish_reason", "tool_calls", "superseded",
                   "created_at", "updated_at", "reasoning", "reasoning_tokens", "reasoning_ttft", "reasoning_hidden")
_CONVERSATION_FIELDS = ("id", "title", "user", "source", "compare_run_id", "created_at", "updated_at",
                        "deleted_at", "models", "message_count", "reply_count", "input_tokens", "output_tokens",
                        "cache_read_tokens", "cache_write_tokens", "cost", "unknown_cost_count", "stopped_count",
                        "error_count")


def _files(message: dict, load: Callable[[str], bytes] | None) -> dict:
    """A message's ``attachments`` for the JSON export: name, media type, size, sha256, dimensions or pages;
    with ``load``, each file's bytes as ``data_base64`` too (a file no longer stored: null)."""
    if not message.get("attachments"):
        return {}
    out = []
    for meta in message["attachments"]:
        item = dict(meta)
        if load is not None:
            try:
                item["data_base64"] = base64.b64encode(load(meta["sha256"])).decode("ascii")
            except LookupError:
                item["data_base64"] = None
        out.append(item)
    return {"attachments": out}


def conversation_json(conversation: dict, messages: list[dict], load: Callable[[str], bytes] | None = None) -> str:
    """The conversation and all its messages (superseded ones flagged) as JSON. ``cost`` is null when
    unknown; the conversation's ``cost`` covers the priced replies and ``unknown_cost_count`` the rest.
    Attached files are described; with ``load(sha256) -> bytes`` their contents are included (base64)."""
    data = {
        "format": EXPORT_FORMAT,
        "exported_at": now(),
        "conversation": {k: conversation.get(k) for k in _CONVERSATION_FIELDS}
        | {"settings": _public_settings(conversation.get("settings")) or {}},
        "messages": [{k: message.get(k) for k in _MESSAGE_FIELDS}
                     | {"settings": _public_settings(message.get("settings"))}
                     | _files(message, load)
                     | ({"ending": ending(message).label} if message["role"] == "assistant" else {})
                     for message in messages],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


CSV_COLUMNS = ("id", "title", "user", "source", "models", "messages", "replies", "input_tokens", "output_tokens",
               "cache_read_tokens", "cache_write_tokens", "total_tokens", "cost_usd", "replies_of_unknown_cost",
               "stopped_replies", "failed_replies", "created_at", "last_activity")


def table_csv(rows: list[dict], *, with_match: bool = False) -> str:
    """Conversations (as listed or searched) as CSV, one row each. ``cost_usd`` is the priced part and is
    empty when no reply has a known price; ``replies_of_unknown_cost`` says how many are unpriced."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, *(("match",) if with_match else ())])
    for row in rows:
        unknown = row.get("unknown_cost_count") or 0
        cost = row.get("cost") or 0.0
        priced = not (unknown and not cost)
        values = [
            row["id"], csv_cell(row.get("title", "")), csv_cell(row.get("user", "")), row.get("source", ""),
            " ".join(row.get("models") or []), row.get("message_count", 0), row.get("reply_count", 0),
            row.get("input_tokens", 0), row.get("output_tokens", 0), row.get("cache_read_tokens", 0),
            row.get("cache_write_tokens", 0), row.get("tokens", 0), f"{cost:.6f}" if priced else "", unknown,
            row.get("stopped_count", 0), row.get("error_count", 0), row.get("created_at", ""),
            row.get("updated_at", ""),
        ]
        if with_match:
            values.append(csv_cell(plain_snippet(row.get("snippet", ""))))
        writer.writerow(values)
    return out.getvalue()


def day_bounds(values: tuple[date | None, date | None]) -> tuple[date | None, date | None]:
    """(since, until) with the two swapped if given the wrong way round."""
    since, until = values
    if since and until and since > until:
        return until, since
    return since, until
