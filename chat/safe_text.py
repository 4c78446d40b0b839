"""Text made safe where it is shown: model output made inert for Markdown (no image fetched from a URL the
model chose), user text escaped for Markdown labels, free text made safe for spreadsheets (CSV)."""

from __future__ import annotations

import re

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
_MARKDOWN_STRUCTURE = re.compile(r"([\\`*_\[\]<>!#|~$])")


def escape_markdown(text: str) -> str:
    """Text that Markdown shows as it is: every ASCII punctuation character backslash-escaped (CommonMark
    allows that for all of them), so no emphasis, link, image, HTML tag, math or directive can start. For
    user text in places Streamlit renders as markdown: labels, captions, titles."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def plain_sentence(text: str) -> str:
    """A sentence that may quote a server's words, for a markdown element: the characters that start
    emphasis, links, images, code, HTML, headings, tables or math are escaped; ordinary punctuation is left
    as it is, so the sentence reads the same."""
    return _MARKDOWN_STRUCTURE.sub(r"\\\1", text)


def csv_cell(text: str | None) -> str:
    """Free text made safe for spreadsheets: a cell starting like a formula gets a leading apostrophe
    (OWASP's advice against CSV injection)."""
    text = text or ""
    return "'" + text if text.startswith(_FORMULA_START) else text
