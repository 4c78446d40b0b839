"""Plain-text figures shown under replies and in lists. Pure functions over stored rows."""

from __future__ import annotations

import re

from chat.pricing import format_cost, format_tokens

STATUS_WORDS = {
    "stopped": "stopped by you",
    "error": "failed",
    "interrupted": "interrupted",
    "streaming": "streaming…",
}


def tokens_per_second(row: dict) -> float | None:
    out, duration, ttft = row.get("output_tokens"), row.get("duration"), row.get("ttft")
    if not out or duration is None:
        return None
    generating = duration - (ttft or 0.0)
    if generating <= 0.05:  # a single burst: no meaningful rate
        return None
    return out / generating


def figures_line(row: dict) -> str:
    """model · in · out · cost · first token · speed · status, with "≈" on estimates."""
    parts = [row.get("model") or "unknown model"]
    estimated = (row.get("input_tokens") is not None and not row.get("input_exact")) or (
        row.get("output_tokens") is not None and not row.get("output_exact"))
    if row.get("input_tokens") is not None:
        parts.append(f"{format_tokens(row['input_tokens'], estimated=not row.get('input_exact'))} in")
    if row.get("output_tokens") is not None:
        parts.append(f"{format_tokens(row['output_tokens'], estimated=not row.get('output_exact'))} out")
    if row.get("status") != "streaming":
        parts.append(format_cost(row.get("cost"), estimated=estimated))
    if row.get("ttft") is not None:
        parts.append(f"{row['ttft']:.2f} s to first token")
    rate = tokens_per_second(row)
    if rate is not None:
        parts.append(f"{rate:,.0f} tok/s")
    word = STATUS_WORDS.get(row.get("status") or "")
    if word:
        parts.append(word)
    return " · ".join(parts)


def totals_line(totals: dict) -> str:
    tokens = sum(totals.get(k) or 0 for k in ("input_tokens", "output_tokens", "cache_read_tokens",
                                               "cache_write_tokens"))
    cost = totals.get("cost")
    unknown = totals.get("unknown_cost_count") or 0
    if unknown and not cost:
        cost_text = "cost unknown"
    else:
        cost_text = format_cost(cost or 0.0)
        if unknown:
            cost_text += f" + {unknown} repl{'y' if unknown == 1 else 'ies'} of unknown cost"
    return f"{format_tokens(tokens)} tokens · {cost_text}"


# ---------------------------------------------------------------- model output made inert for display
# Markdown images in model output would make the browser fetch any URL the model (or a prompt injection)
# chose: a tracking pixel, or data smuggled out in the query string. They are shown as text instead:
# a zero-width space between "!" and "[" breaks the image syntax and looks the same. Display only; the
# stored text is untouched. (HTML needs nothing: st.markdown escapes it.)
_ZWSP = "\u200b"


def inert_markdown(text: str) -> str:
    return text.replace("![", "!" + _ZWSP + "[")


class InertStream:
    """The same for a stream of chunks, where "!" and "[" may arrive in different chunks."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = inert_markdown(self._held + chunk)
        self._held = ""
        if text.endswith("!"):
            text, self._held = text[:-1], "!"
        return text

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


# ---------------------------------------------------------------- user text in labels and spreadsheets
_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_markdown(text: str) -> str:
    """Text that Markdown shows as it is: every ASCII punctuation character backslash-escaped (CommonMark
    allows that for all of them), so no emphasis, link, image, HTML tag, math or directive can start. For
    user text in places Streamlit renders as markdown: labels, captions, titles."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def csv_cell(text: str | None) -> str:
    """Free text made safe for spreadsheets: a cell starting like a formula gets a leading apostrophe
    (OWASP's advice against CSV injection)."""
    text = text or ""
    return "'" + text if text.startswith(_FORMULA_START) else text
