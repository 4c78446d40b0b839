"""The History page's logic: list, search, analyse and export past conversations. Pure functions over a Store,
whichever engine it runs on; the SQL is the store's (chat/store/).

Listing and the analytics cards read the per-conversation totals the store keeps, never ``messages``.

Search is ranked full text (FTS5 with bm25 on SQLite, tsvector with ts_rank on PostgreSQL). Ranking every
match of a common word costs seconds at a million messages, so a search ranks a window:

- the newest :data:`WINDOW` matching messages that pass the filters are the candidates (the index is walked
  newest first and stops there), and they are ranked; conversations are ranked by their best message.
  Older matches count only once the filters (a date range, say) bring them into the window.
- a word found in more than :data:`COMMON_SHARE` of recent messages (judged from how close together its
  newest matches are) is too common to search by, like a stop word: when the search has rarer words it is
  ignored (neither required nor ranked nor highlighted); requiring it would cost tens of milliseconds of
  intersecting long lists, and its ranking weight is next to nothing. When every word is that common, all
  are required and the candidates are shown newest first.

Text that is not valid query syntax (an unbalanced quote, a dangling operator, stray punctuation) is searched
as plain words: each whitespace-separated chunk holding a letter or digit becomes a quoted phrase.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from chat.attachments import chip
from chat.display import (
    call_label,
    csv_cell,
    ending,
    escape_markdown,
    figures_line,
    thinking_body,
    thinking_label,
    totals_line,
)
from chat.pricing import format_cost
from chat.store import SEARCH_TIME_LIMIT, STATUSES, Filters, SearchError, Store, now
from chat.store.search import HIGHLIGHT_END, HIGHLIGHT_START, SNIPPET_TOKENS, plain_words
from chat.tool_loop import CallRecord

PAGE_SIZE = 50
WINDOW = 1000  # newest matching messages ranked by a search
COMMON_SHARE = 0.1  # a word in a larger share of recent messages is ignored when the search has rarer words
COMMON_PROBE = 64  # a word needs at least this many matches to count as common; its newest ones give its share
EXPORT_FORMAT = "chat-workbench/conversation@1"
_SECRET_KEY = re.compile(r"key|secret|password|auth", re.IGNORECASE)

__all__ = [
    "CSV_COLUMNS",
    "HIGHLIGHT_END",
    "HIGHLIGHT_START",
    "PAGE_SIZE",
    "SNIPPET_TOKENS",
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
    "plain_words",
    "rank",
    "search",
    "search_page",
    "settings_lines",
    "summary",
    "table_csv",
    "usage_by_model_and_day",
    "usage_by_user",
]


# ---------------------------------------------------------------- listing


def _with_tokens(row: dict) -> dict:
    row["tokens"] = sum(row.get(k) or 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                   "cache_write_tokens"))
    return row


def list_conversations(store: Store, filters: Filters, *, limit: int | None = PAGE_SIZE,
                       offset: int = 0) -> list[dict]:
    """Conversations matching ``filters``, last active first. Each row has the kept totals, ``models`` as a
    list, ``settings`` as a dict, ``tokens`` (all kinds) and a ``title`` (the first message when untitled)."""
    return [_with_tokens(row) for row in store.list_conversations(filters, limit=limit, offset=offset)]


def count_conversations(store: Store, filters: Filters) -> int:
    return store.count_conversations(filters)


def filter_options(store: Store, user: str | None) -> dict[str, list[str]]:
    """The providers, ``provider:model`` ids and users seen in ``user``'s conversations (None: everyone's)."""
    model_lists, users = store.filter_values(Filters(user=user))
    models = sorted({m for models in model_lists for m in models})
    providers = sorted({m.partition(":")[0] for m in models})
    return {"providers": providers, "models": models, "users": users}


def get_conversation(store: Store, conversation_id: str, *, user: str | None) -> dict | None:
    """One conversation, deleted or not, if ``user`` may see it (None: anyone's)."""
    conversation = store.get_conversation(conversation_id, include_deleted=True)
    if conversation is None or (user is not None and conversation["user"] != user):
        return None
    return _with_tokens(conversation)


# ---------------------------------------------------------------- search


@dataclass
class SearchPage:
    rows: list[dict]  # this page's conversations, best first; each has snippet, match_id, hits
    total: int  # conversations found among the ranked matches
    windowed: bool  # more messages matched than were ranked (the newest WINDOW)
    plain: bool  # searched as plain words
    ranked_by: str  # "relevance" or "recency" (every word very common)
    ignored: tuple[str, ...] = ()  # very common words left out of the search
    problem: str | None = None  # why the search did not run, for the user (see Ranked)


@dataclass
class Ranked:
    """A search's matching conversations, best first, before any page of them is read."""

    hits: list[tuple[str, float, int, int]]  # conversation id, score (lower is better), best message id, hits
    highlight: str  # the engine's match expression the snippets highlight
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
    with store.search_session(time_limit) as session:
        query = session.parse(text)
        if query is None:
            return Ranked([], "", windowed=False, plain=True, ranked_by="relevance")
        expr, ignored, ranked_by = query.expr, (), "relevance"
        if query.phrases:
            last_id = session.last_id()

            def is_common(phrase: str) -> bool:
                """Whether ``phrase`` is in more than COMMON_SHARE of recent messages: its newest COMMON_PROBE
                matches span few enough message ids (ids follow time)."""
                oldest = session.newest_match(phrase, COMMON_PROBE - 1)
                return oldest is not None and COMMON_PROBE / (last_id - oldest + 1) > COMMON_SHARE

            common = tuple(i for i, p in enumerate(query.phrases) if is_common(p))
            if len(common) == len(query.phrases):
                ranked_by = "recency"
            elif common:
                expr = session.join(tuple(p for i, p in enumerate(query.phrases) if i not in common))
                ignored = tuple(query.labels[i] for i in common)
        candidates = session.candidates(expr, filters, by=ranked_by, limit=WINDOW + 1)
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
    return Ranked(hits, expr, windowed, query.plain, ranked_by, ignored)


def search_page(store: Store, ranked: Ranked, *, limit: int = PAGE_SIZE, offset: int = 0) -> list[dict]:
    """One page of a search's conversations (as :func:`list_conversations` gives them) with ``match_id``
    (the best message), ``hits`` (its matching messages among those ranked), ``score`` and ``snippet`` (the
    best message's passage, matched words between HIGHLIGHT_START and HIGHLIGHT_END)."""
    chosen = ranked.hits[offset:offset + limit]
    if not chosen:
        return []
    conversations = store.conversations_by_id([h[0] for h in chosen])
    snippets = store.snippets(ranked.highlight, [h[2] for h in chosen])
    rows = []
    for conversation_id, score, message_id, hits in chosen:
        row = conversations.get(conversation_id)
        if row is None:  # deleted for good since it was ranked
            continue
        rows.append(_with_tokens(row) | {"match_id": message_id, "hits": hits, "score": score,
                                         "snippet": snippets.get(message_id, "")})
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
    return store.summary(filters)


def usage_by_model_and_day(store: Store, filters: Filters) -> tuple[list[dict], list[dict]]:
    """Every finished reply of the matching conversations, (superseded ones too, as in the totals), grouped:

    - by UTC day and model: ``day``, ``model``, ``replies``, ``tokens``, ``cost`` (known), ``unknown_cost``;
    - by model: the same plus ``median_ttft`` (s) and ``median_tokens_per_second`` (None without data).
    """
    days: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, 0.0, 0])
    totals: dict[str, list] = defaultdict(lambda: [0, 0, 0.0, 0])
    ttfts: dict[str, list[float]] = defaultdict(list)
    rates: dict[str, list[float]] = defaultdict(list)
    for batch in store.reply_figures(filters):
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
    return store.usage_by_user(filters)


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


def _fenced(text: str, language: str = "") -> list[str]:
    """``text`` in a code fence longer than any run of backticks in it, so it stays inert text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + language, text, fence]


def _steps_markdown(steps: list[dict]) -> list[str]:
    """A reply that used tools: per step, the model's text, then each call with its arguments and its whole
    result (or error), fenced as data."""
    lines: list[str] = []
    for step in steps:
        if (step.get("text") or "").strip():
            lines += [step["text"], ""]
        for call in step.get("calls") or []:
            lines += [f"**Tool call:** {call_label(call)}", "", "Arguments:", "",
                      *_fenced(CallRecord(**call).arguments_shown, "json"), ""]
            if call.get("result") is not None:
                lines += ["Result:", "", *_fenced(call["result"]), ""]
            if call.get("error") and call.get("error") != call.get("result"):
                lines += ["Error:", "", *_fenced(call["error"]), ""]
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
        if message.get("tool_steps"):
            lines += _steps_markdown(message["tool_steps"])
        elif message.get("content"):
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
                   "created_at", "updated_at", "reasoning", "reasoning_tokens", "reasoning_ttft", "reasoning_hidden",
                   "tool_steps")
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
