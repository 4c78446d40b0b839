"""How stored messages look on a page."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from chat import attachments
from chat.display import (
    APPROVAL_QUESTION,
    DENIED_NOTE,
    call_label,
    context_dropped_note,
    ending,
    figures_line,
    sent_at,
    sent_note,
    thinking_body,
    thinking_label,
    thinking_live_label,
    truncated_note,
)
from chat.safe_text import escape_markdown, inert_markdown, plain_sentence
from chat.tool_loop import SHOWN_CHARS, CallRecord, shown

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
                  on_click=_draw_earlier, args=(key, drawn + EARLIER_STEP))
    return hidden


def _draw_earlier(key: str, drawn: int) -> None:
    """The "Show earlier messages" button: the conversation's window (``key``) grows to ``drawn`` messages."""
    st.session_state[key] = drawn


def message_body(content: str, *, help: str | None = None) -> None:
    """Markdown, never HTML (st.markdown escapes it), and no remote images. Shown whole, however long.
    ``help``: hover text (plain words of ours, such as when it was sent)."""
    st.markdown(inert_markdown(content), help=help)


def thinking(row: dict) -> None:
    """A stored reply's Thinking section, collapsed ("Thought for 42 s"), when the reply reasoned."""
    label = thinking_label(row)
    if label:
        with st.expander(label, icon=":material/psychology:"):
            message_body(thinking_body(row))


class LiveThinking:
    """The Thinking section of a reply while it streams: open and filling with the reasoning (or a live
    "Thinking for N s…" when none comes), collapsed to "Thought for N s" once the answer starts. Everything
    it shows is read from the turn (``turn.reasoning``, ``turn.thinking_seconds``), so whoever streams the
    turn can draw it. Drawn lazily: a reply that never reasons shows only the waiting caption."""

    def __init__(self, turn) -> None:
        self.turn = turn
        self.slot = st.empty()
        self.slot.caption("Thinking…")
        self._status = None
        self._body = None
        self._version = -1
        self._label = ""
        self._done = False
        self.note: str | None = None  # shown instead of the waiting caption (e.g. "busy; retrying…")

    def update(self) -> None:
        """Redraw what changed; call on every chunk (cheap when nothing did)."""
        if self._done:
            return
        turn = self.turn
        if turn.answering:
            self.finish()
            return
        reasoning = turn.reasoning
        label = thinking_live_label(turn.thinking_seconds)
        if not reasoning and not turn.reasoning_hidden:
            label = self.note or label
            if label != self._label:
                self.slot.caption(label)
                self._label = label
            return
        if self._status is None:
            self._status = self.slot.status(label, expanded=True)
            self._body = self._status.empty()
            self._label = label
        elif label != self._label:
            # expanded=True: an update without it sends the section collapsed (Streamlit clears the field),
            # which hid the reasoning from the first "Thinking for 1 s…" on; its body is drawn again below
            self._status.update(label=label, expanded=True)
            self._label = label
            self._version = -1
        if turn.reasoning_version != self._version:
            self._version = turn.reasoning_version
            self._body.markdown(inert_markdown(reasoning) if reasoning
                                else "*The reasoning is hidden by the provider.*")

    def finish(self) -> None:
        """The answer started (or the reply ended): collapse the section to its duration, or remove it."""
        if self._done:
            return
        self._done = True
        turn = self.turn
        if self._status is None and not turn.reasoning and not turn.reasoning_hidden:
            self.slot.empty()
            return
        seconds = turn.thinking_seconds or 0.0
        label = thinking_label({"reasoning": turn.reasoning or None, "reasoning_hidden": turn.reasoning_hidden,
                                "ttft": seconds}) or "Thought"
        if self._status is None:
            self._status = self.slot.status(label, expanded=False, state="complete")
            self._body = self._status.empty()
        else:
            self._status.update(label=label, expanded=False, state="complete")  # drawn empty: body again
        self._body.markdown(inert_markdown(turn.reasoning) if turn.reasoning
                            else "*The reasoning is hidden by the provider.*")


def attached(files: list[dict], load: Callable[[str], bytes] | None = None) -> None:
    """A message's files: image thumbnails (st.image's enlarge button opens them larger) and a chip per
    document (name, size, pages). Names are escaped; nothing in a file is rendered as HTML or run."""
    if not files:
        return
    images = [f for f in files if f["media_type"].startswith("image/")]
    if images and load is not None:
        cols = st.columns(min(4, len(images)))
        for i, meta in enumerate(images):
            with cols[i % len(cols)]:
                try:
                    st.image(attachments.preview(meta["sha256"], load), caption=escape_markdown(meta["name"]),
                             width=160)
                except Exception:  # a file no longer stored, or unreadable now: its chip still says what it was
                    st.caption(f":material/image: {escape_markdown(attachments.chip(meta))} (not available)")
    for meta in files:
        if meta["media_type"].startswith("image/") and load is not None:
            continue
        icon = ":material/picture_as_pdf:" if meta["media_type"] == attachments.PDF else (
            ":material/image:" if meta["media_type"].startswith("image/") else ":material/description:")
        st.caption(f"{icon} {escape_markdown(attachments.chip(meta))}")


def unsent(out) -> None:
    """A message (an ``outbox.Outgoing``) whose reply has not started: saved and waiting, or the database
    fault (or why a file cannot go) in one sentence, with its words and files."""
    if out.saved:
        st.info("Your message is saved; its reply has not been asked for yet.", icon=":material/info:")
        return
    st.error(plain_sentence(out.problem or "The chat database did not take your message."), icon=":material/error:")
    with st.chat_message("user"):
        by_sha = {f.sha256: f.data for f in out.files}
        attached([f.meta() for f in out.files], by_sha.__getitem__)
        if out.prompt:
            message_body(out.prompt)


def viewer_timezone() -> str | None:
    """The browser's time zone (an IANA name), None when unknown (tests, scripts)."""
    try:
        return st.context.timezone
    except Exception:  # no browser session behind this run
        return None


_CALL_STATE = {"waiting": "running", "running": "running", "failed": "error", "stopped": "error",
               "denied": "error", "skipped": "error"}


def tool_call(call: dict, *, on_decide: Callable[[str, bool], None] | None = None) -> None:
    """One tool call as a collapsible status block: tool, state, duration, the arguments, and the result or
    error shown inert (as code, never markdown or HTML), truncated with the whole kept. A call waiting for
    approval (and ``on_decide`` given, i.e. live) opens with Approve / Deny."""
    status = call.get("status")
    waiting = status == "waiting" and on_decide is not None
    with st.status(call_label(call), state=_CALL_STATE.get(status, "complete"), expanded=waiting):
        st.caption("Arguments")
        st.code(CallRecord(**call).arguments_shown if call.get("arguments") else "{}", language="json")
        if waiting:
            st.caption(APPROVAL_QUESTION)
            left, right = st.columns(2)
            left.button("Approve", key=f"approve-{call['id']}", icon=":material/check:", type="primary",
                        on_click=on_decide, args=(call["id"], True))
            right.button("Deny", key=f"deny-{call['id']}", icon=":material/block:",
                         on_click=on_decide, args=(call["id"], False))
        if status == "denied":
            st.caption(DENIED_NOTE)
        if call.get("result") is not None:
            text, cut = shown(call["result"])
            st.caption("Result")
            st.code(text, language=None, wrap_lines=True)
            if cut:
                st.caption(truncated_note(SHOWN_CHARS, len(call["result"])))
        if call.get("error") and call.get("error") != call.get("result"):
            st.caption("Error")
            st.code(call["error"], language=None, wrap_lines=True)


def tool_steps(steps: list[dict], *, on_decide: Callable[[str, bool], None] | None = None) -> None:
    """A reply that used tools, step by step: the model's text, then the calls it asked for; the last
    step's text is the answer."""
    for step in steps:
        if (step.get("text") or "").strip():
            message_body(step["text"])
        for call in step.get("calls") or []:
            tool_call(call, on_decide=on_decide)


def message(row: dict, load: Callable[[str], bytes] | None = None, *, tz: str | None = None) -> None:
    """A stored message; ``load(sha256) -> bytes`` reads attached files for their thumbnails."""
    with st.chat_message(row["role"]):
        if row["role"] == "assistant":
            thinking(row)
        attached(row.get("attachments") or [], load)
        if row.get("tool_steps"):
            tool_steps(row["tool_steps"])
        elif row["content"]:
            message_body(row["content"], help=sent_note(row, tz) if row["role"] == "user" else None)
        if row["role"] == "assistant":
            assistant_footer(row, tz=tz)


def assistant_footer(row: dict, *, tz: str | None = None) -> None:
    dropped = (row.get("settings") or {}).get("context_dropped")
    if dropped:
        st.caption(context_dropped_note(dropped))
    ending_notice(row)
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.caption(figures_line(row, when=sent_at(row.get("created_at"), tz)), width="content")
        if (row.get("content") or "").strip() and row.get("status") != "streaming" and row.get("id") is not None:
            copy_button(row["content"], key=f"copy-{row['id']}")


# ---------------------------------------------------------------- copy a reply as Markdown
# A small component: a button whose script puts the reply's Markdown on the clipboard. The text travels as
# the component's data and is only ever handed to the clipboard (a textarea's value in the fallback), never
# put into the page as HTML.
_COPY_JS = """
export default function ({ parentElement, data }) {
  const button = parentElement.querySelector("button");
  const text = typeof data === "string" ? data : "";
  button.onclick = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {  // not a secure context (plain http to another host): the older way
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.textContent = "Copied";
    button.dataset.copied = "true";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  };
}
"""
_COPY_CSS = """
button { background: none; border: none; padding: 0 0.25rem; margin: 0; cursor: pointer; font: inherit;
         font-size: 0.875rem; color: var(--st-text-color); opacity: 0.6; }
button:hover, button:focus-visible { opacity: 1; color: var(--st-primary-color); }
"""
_copy_component = None


def copy_button(text: str, *, key: str) -> None:
    """One click puts ``text`` (a reply's Markdown) on the clipboard."""
    global _copy_component
    if _copy_component is None:
        _copy_component = st.components.v2.component(
            "chat_copy_markdown", html='<button type="button" title="Copy this reply as Markdown">Copy</button>',
            css=_COPY_CSS, js=_COPY_JS)
    _copy_component(data=text, key=key, width="content")


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


# ---------------------------------------------------------------- bring something into view
# A component with no content of its own: mounted at a place on the page, its script scrolls that place to the
# top of the window once. It is given no text at all.
_SCROLL_JS = """
export default function ({ parentElement }) {
  const here = parentElement.host || parentElement;
  requestAnimationFrame(() => here.scrollIntoView({ block: "start" }));
}
"""
_scroll_component = None


def scroll_here(key: str) -> None:
    """Scroll the window so that this point of the page is at its top (draw it once, where it should)."""
    global _scroll_component
    if _scroll_component is None:
        _scroll_component = st.components.v2.component("chat_scroll_here", html="<span></span>", js=_SCROLL_JS)
    _scroll_component(key=key, width="stretch")


# ---------------------------------------------------------------- keep the newest message in view
# Streamlit follows the bottom of the page only while its chat input is drawn at the page's top level; the chat
# page draws its input from a fragment (so a send redraws only the new turn), so it follows the bottom itself:
# opening a conversation shows its latest messages, and a growing reply stays in view unless the user scrolled
# up. Given no text at all: only the open conversation's id, to start at the bottom when it changes.
_FOLLOW_JS = """
export default function ({ data }) {
  const opened = data[0];
  const content = document.querySelector('[data-testid="stMainBlockContainer"]');
  if (!content) return;
  let scroller = content.parentElement;
  while (scroller && scroller !== document.body && !/(auto|scroll)/.test(getComputedStyle(scroller).overflowY)) {
    scroller = scroller.parentElement;
  }
  if (!scroller || scroller === document.body) scroller = document.scrollingElement;
  const state = scroller.__chatFollow || (scroller.__chatFollow = { stick: true, opened: undefined });
  const toBottom = () => { if (state.stick) scroller.scrollTop = scroller.scrollHeight; };
  if (!state.installed) {
    state.installed = true;
    scroller.addEventListener("scroll", () => {
      state.stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
    }, { passive: true });
    new ResizeObserver(toBottom).observe(content);
  }
  if (state.opened !== opened) {
    state.opened = opened;
    state.stick = true;
  }
  requestAnimationFrame(toBottom);
}
"""
_follow_component = None


def follow_bottom(opened: str | None) -> None:
    """Keep the page's bottom in view (see above); ``opened``: the open conversation's id."""
    global _follow_component
    if _follow_component is None:
        _follow_component = st.components.v2.component("chat_follow_bottom", html="<span></span>", js=_FOLLOW_JS)
    _follow_component(data=[opened or ""], key="follow-bottom", width="stretch")
