"""What the text typed in a search box means, for both engines: the size bounds, the syntax (words,
"phrases", OR, NOT, AND, prefix*, parentheses) and the errors a search can end in. No SQL here: each
engine turns a parsed query into its own match expression (FTS5 on SQLite, tsquery on PostgreSQL)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SEARCH_MAX_CHARS = 500
SEARCH_MAX_TERMS = 20  # words and quoted phrases
SEARCH_MAX_PREFIXES = 3  # terms ending in * (each merges the index's lists of every word it starts)
SEARCH_MIN_PREFIX = 2  # characters before the *
SEARCH_TIME_LIMIT = 2.0  # seconds a search may run before the database abandons it
HIGHLIGHT_START, HIGHLIGHT_END = "\x02", "\x03"  # snippet markers, turned into **bold** after escaping
SNIPPET_TOKENS = 16


class SearchError(Exception):
    """A search that cannot run; the message is for the user and says what to do."""


class SearchTooLarge(SearchError):
    """Too long, too many words, or too many (or too short) prefixes."""


class SearchTooSlow(SearchError):
    """Abandoned after its time limit."""

    def __init__(self, seconds: float):
        super().__init__(f"The search took longer than {seconds:g} s and was stopped. Use fewer or rarer words, "
                         "or narrow the dates.")


class SearchIndexDamaged(SearchError):
    """The full-text index cannot be read."""


def check_search_size(text: str, terms: list[str] | tuple[str, ...]) -> None:
    """Refuse a search too big to run cheaply. ``terms`` are its words and quoted phrases as typed, a
    prefix ending in ``*``."""
    if len(text) > SEARCH_MAX_CHARS:
        raise SearchTooLarge(f"Search takes at most {SEARCH_MAX_CHARS} characters; shorten it.")
    if len(terms) > SEARCH_MAX_TERMS:
        raise SearchTooLarge(f"Search takes at most {SEARCH_MAX_TERMS} words; shorten it.")
    prefixes = [t for t in terms if t.endswith("*")]
    if len(prefixes) > SEARCH_MAX_PREFIXES:
        raise SearchTooLarge(f"Search takes at most {SEARCH_MAX_PREFIXES} words ending in *; use fewer.")
    if any(len(t.rstrip("*").strip('"')) < SEARCH_MIN_PREFIX for t in prefixes):
        raise SearchTooLarge(f"A word ending in * needs at least {SEARCH_MIN_PREFIX} letters before the *, "
                             "as in kube*.")


@dataclass(frozen=True)
class Query:
    """A parsed search, in one engine's terms."""

    expr: str  # the engine's match expression (FTS5 MATCH text, or tsquery text)
    phrases: tuple[str, ...] | None  # the terms it ANDs (engine expressions), or None when it uses operators
    labels: tuple[str, ...]  # each of ``phrases`` as the user typed it (for "left out" notes)
    plain: bool  # the text was not valid syntax and is searched as plain words


TOKEN = re.compile(r'\s+|"(?:[^"]|"")*"\*?|[\w\x80-\U0010ffff]+\*?|.', re.UNICODE)
WORD = re.compile(r"[\w\x80-\U0010ffff]+\*?")
OPERATORS = {"AND", "OR", "NOT", "NEAR"}
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: str) -> str:
    """Control characters are never part of a word (and FTS5 reads a NUL as the end of the query)."""
    return CONTROL.sub(" ", text).strip()


def terms(text: str) -> list[str]:
    """The words and quoted phrases of a query as typed (operators and punctuation left out)."""
    return [t for t in TOKEN.findall(text) if t.startswith('"') and len(t) > 1
            or WORD.fullmatch(t) and t.rstrip("*") not in OPERATORS]


def phrase_terms(text: str) -> tuple[str, ...] | None:
    """The terms of a query that is only words and quoted phrases (implicitly ANDed), each as an FTS5
    phrase (``"word"``, ``"a phrase"``, ``"pre"*``); None when it has operators or punctuation."""
    phrases = []
    for token in TOKEN.findall(text):
        if token.isspace():
            continue
        if token.startswith('"') and len(token) > 1 and token.rstrip("*").endswith('"'):
            phrases.append(token)
        elif WORD.fullmatch(token) and token.rstrip("*") not in OPERATORS:
            prefix = token.endswith("*")
            phrases.append('"' + token.rstrip("*") + '"' + ("*" if prefix else ""))
        else:
            return None
    return tuple(phrases)


def plain_words(text: str) -> tuple[str, ...]:
    """Whitespace-separated chunks that hold a letter or digit, each as a quoted FTS5 phrase."""
    return tuple('"' + chunk.replace('"', '""') + '"' for chunk in text.split() if re.search(r"\w", chunk))


def label(phrase: str) -> str:
    """An FTS5 phrase (``"word"``, ``"pre"*``) as the user typed it."""
    return phrase.strip('"*').replace('""', '"')


# ---------------------------------------------------------------- the operator syntax, as a tree
# A term is ("term", text, prefix); the others ("and", [nodes]), ("or", [nodes]), ("not", kept, dropped).
# Precedence as in FTS5: NOT binds tightest, then AND (or nothing), then OR.


class _Unparsable(Exception):
    pass


def parse_tree(text: str) -> tuple | None:
    """The query as a tree; None when it is not valid syntax (unbalanced quotes or parentheses, a dangling
    operator, punctuation, NEAR)."""
    tokens = [t for t in TOKEN.findall(text) if not t.isspace()]
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def primary():
        token = peek()
        if token is None:
            raise _Unparsable
        if token == "(":
            take()
            node = or_expr()
            if peek() != ")":
                raise _Unparsable
            take()
            return node
        if token.startswith('"') and len(token) > 1 and token.rstrip("*").endswith('"'):
            take()
            prefix = token.endswith("*")
            return ("term", token.rstrip("*")[1:-1].replace('""', '"'), prefix)
        if WORD.fullmatch(token) and token.rstrip("*") not in OPERATORS:
            take()
            return ("term", token.rstrip("*"), token.endswith("*"))
        raise _Unparsable

    def not_expr():
        node = primary()
        while peek() == "NOT":
            take()
            node = ("not", node, primary())
        return node

    def and_expr():
        nodes = [not_expr()]
        while (token := peek()) is not None and token not in (")", "OR"):
            if token == "AND":
                take()
            nodes.append(not_expr())
        return nodes[0] if len(nodes) == 1 else ("and", nodes)

    def or_expr():
        nodes = [and_expr()]
        while peek() == "OR":
            take()
            nodes.append(and_expr())
        return nodes[0] if len(nodes) == 1 else ("or", nodes)

    try:
        tree = or_expr()
    except (_Unparsable, RecursionError):
        return None
    return tree if pos == len(tokens) else None


def leaves(tree: tuple) -> list[tuple]:
    """The tree's terms, left to right."""
    if tree[0] == "term":
        return [tree]
    if tree[0] == "not":
        return leaves(tree[1]) + leaves(tree[2])
    return [leaf for node in tree[1] for leaf in leaves(node)]
