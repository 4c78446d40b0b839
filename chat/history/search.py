"""Full-text search over past conversations, and its snippets made safe to show.

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

import re
from dataclasses import dataclass

from chat.history.listing import PAGE_SIZE, with_tokens
from chat.safe_text import escape_markdown
from chat.store import SEARCH_TIME_LIMIT, Filters, SearchError, Store
from chat.store.search import HIGHLIGHT_END, HIGHLIGHT_START

WINDOW = 1000  # newest matching messages ranked by a search
COMMON_SHARE = 0.1  # a word in a larger share of recent messages is ignored when the search has rarer words
COMMON_PROBE = 64  # a word needs at least this many matches to count as common; its newest ones give its share


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
        rows.append(with_tokens(row) | {"match_id": message_id, "hits": hits, "score": score,
                                         "snippet": snippets.get(message_id, "")})
    return rows


def search(store: Store, text: str, filters: Filters, *, limit: int = PAGE_SIZE, offset: int = 0) -> SearchPage:
    """:func:`rank`, then one page of it."""
    ranked = rank(store, text, filters)
    rows = search_page(store, ranked, limit=limit, offset=offset)
    return SearchPage(rows, len(ranked.hits), ranked.windowed, ranked.plain, ranked.ranked_by, ranked.ignored,
                      ranked.problem)


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

