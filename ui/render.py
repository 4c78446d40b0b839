"""How stored messages look on a page."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from chat.display import ending, figures_line, inert_markdown, plain_sentence

RECENT_MESSAGES = 60  # messages drawn when a conversation opens (Chat page and History transcripts)
EARLIER_STEP = 200  # more drawn per "Show earlier messages" click


def earlier_messages(count: int, key: str) -> int:
    """How many of a conversation's first ``count`` messages to leave undrawn, with a button that draws
    EARLIER_STEP more. Every element on a page costs the browser time at each run, so a long conversation
    opens on its latest RECENT_MESSAGES. ``key`` names the conversation's window in session state."""
    drawn = st.session_state.setdefault(key, RECENT_MESSAGES)
    hidden = max(0, count - drawn)
    if hidden:
        more = min(hidden, EARLIER_STEP)
        st.button(f"Show {more:,} earlier message{'s' if more != 1 else ''} ({hidden:,} hidden)",
                  icon=":material/expand_less:", type="tertiary",
                  on_click=lambda: st.session_state.update({key: drawn + EARLIER_STEP}))
    return hidden


def message_body(content: str) -> None:
    """Markdown, never HTML (st.markdown escapes it), and no remote images. Shown whole, however long."""
    st.markdown(inert_markdown(content))


def message(row: dict) -> None:
    with st.chat_message(row["role"]):
        if row["content"]:
            message_body(row["content"])
        if row["role"] == "assistant":
            assistant_footer(row)


def assistant_footer(row: dict) -> None:
    dropped = (row.get("settings") or {}).get("context_dropped")
    if dropped:
        st.caption(f"{dropped} older message{'s were' if dropped != 1 else ' was'} left out of this request "
                   "to fit the model's context window.")
    ending_notice(row)
    st.caption(figures_line(row))


_NOTICE = {"error": (st.error, ":material/error:"), "warning": (st.warning, ":material/warning:"),
           "info": (st.info, ":material/info:")}


def ending_notice(row: dict, *, anonymise: Callable[[str], str] | None = None) -> None:
    """The one sentence on how a reply ended (cut, refused, unfinished, failed…), when there is one. It may
    quote the server's own words, so it is shown as plain text."""
    end = ending(row)
    if not end.notice:
        return
    text = anonymise(end.notice) if anonymise else end.notice
    show, icon = _NOTICE[end.tone]
    show(plain_sentence(text), icon=icon)
