"""The one streaming consumer of the pages: a reply followed live into an assistant bubble."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from chat import live
from chat.display import APPROVAL_ELSEWHERE, CONNECTING_TOOLS, WRITTEN_ELSEWHERE, retrying
from chat.live import HEARTBEAT, LiveReply
from chat.safe_text import InertStream, inert_markdown
from chat.store import Store, StoreError, is_dead
from chat.tool_loop import steps_to_json
from ui import render
from ui.render import LiveThinking

STORED_POLL = 0.5  # seconds between reads of a reply another process is writing (it checkpoints every second)
FIGURES_EVERY = 0.25  # seconds between redraws of a Compare column's live figures

RERUN_CHECK = "_heartbeat"  # a session-state key written while a reply is followed (see _let_a_rerun_in)


def _let_a_rerun_in() -> None:
    """Touch the session: a write to session state is where a rerun of this page interrupts the following."""
    st.session_state[RERUN_CHECK] = True


def _shown(chunks: Iterator[str], reply: LiveReply, thinking: LiveThinking,
           handed_over: Callable[[], bool] | None = None, on_tick: Callable[[], None] | None = None) -> Iterator[str]:
    """The chunks, made inert (no remote images), for ``st.write_stream``. Until the answer starts, the
    reply's Thinking section is kept up to date from its turn (and says so while the SDK retries). Empty
    chunks (heartbeats) touch the session, which is where a rerun of this page interrupts the stream.
    ``on_tick`` is called on every chunk and heartbeat; the chunks end early once ``handed_over()`` says a
    click is waiting for this run to end."""
    guard = InertStream()
    first = True
    for chunk in chunks:
        if handed_over is not None and handed_over():
            break
        if on_tick is not None:
            on_tick()
        if not chunk:
            _let_a_rerun_in()
            if first:
                thinking.note = _waiting_note(reply)
                thinking.update()
            continue
        if first:
            thinking.finish()
            first = False
        yield guard.feed(chunk)
    thinking.finish()
    yield guard.flush()


def _waiting_note(reply: LiveReply) -> str | None:
    """What the Thinking section says instead of "Thinking…" while nothing streams: the SDK's retries, or
    the tool servers still being listed."""
    turn = reply.turn
    if turn.reply is not None and turn.reply.failed_attempts:
        return retrying(turn.reply.failed_attempts)
    if turn.reply is None and turn.tools is not None and not turn.tools.ready():
        return CONNECTING_TOOLS
    return None


def clicked(interruption: BaseException, key: str) -> bool:
    """Whether the rerun that interrupts this run comes from a click on the button ``key``. A Stop then acts
    as soon as the click reaches the server (the interrupted run sees it within a heartbeat) instead of when
    the next run has started and run its callbacks; the callback still runs, harmlessly."""
    return _clicked_in(getattr(interruption, "rerun_data", None), key)


def waiting_rerun():
    """The rerun the user asked for while this run goes on, when Streamlit lets it wait instead of
    interrupting: a click inside the fragment that is running waits for that run to end. (A full rerun
    interrupts at the next heartbeat instead.) Read from the session's pending request, or None."""
    requests = getattr(get_script_run_ctx(), "script_requests", None)
    if getattr(requests, "_state", None) != ScriptRequestType.RERUN:
        return None
    return getattr(requests, "_rerun_data", None)


def _clicked_in(rerun_data, key: str) -> bool:
    states = getattr(rerun_data, "widget_states", None)
    for widget in getattr(states, "widgets", ()):
        if widget.id.endswith(f"-{key}") and widget.WhichOneof("value") == "trigger_value":
            return bool(widget.trigger_value)
    return False


def decide_call(conversation_id: str, call_id: str, approve: bool) -> None:
    """Approve / Deny: the decision goes to the conversation's live reply, which runs (or skips) the call."""
    running = live.replies.running(conversation_id)
    if running is not None:
        running.turn.decide(call_id, approve)


def _step_signature(turn) -> tuple:
    """What the drawn steps show: the steps and the state of each call (not the text, which streams)."""
    return tuple((len(step.calls), tuple(call.status for call in step.calls)) for step in list(turn.steps))


def _follow_steps(reply: LiveReply, steps_area, thinking: LiveThinking, handed_over: Callable[[], bool]) -> None:
    """A reply that may use tools: its steps so far drawn as they are (each call a status block; Approve /
    Deny on a call waiting for the user), then the text of the model call under way, as it streams. When a
    step or a call changes, this returns: the page reruns and draws the steps anew (widgets are drawn once
    per run), while the reply goes on in its thread."""
    turn = reply.turn
    signature = _step_signature(turn)
    if turn.steps:
        thinking.finish()
        with steps_area:
            render.tool_steps(steps_to_json(list(turn.steps)),
                              on_decide=functools.partial(decide_call, reply.conversation_id))
    current = st.empty()
    drawn = None
    for _chunk in reply.follow():
        _let_a_rerun_in()
        if _step_signature(turn) != signature or handed_over():
            return
        text = turn.text_after_steps
        if not text and not turn.steps:
            thinking.note = _waiting_note(reply)
            thinking.update()
            continue
        if text != drawn:
            thinking.finish()
            current.markdown(inert_markdown(text))
            drawn = text
    thinking.finish()


def follow_reply(reply: LiveReply, *, on_stop: Callable[[str], None]) -> bool:
    """Draw a live reply as it is written, with a Stop button, until it is done (True), or until a click
    waits for this run to end (False: a fragment's run is not interrupted by clicks inside it, so it ends
    itself). Leaving the page (any rerun) ends only this drawing: the reply goes on, and is followed again
    from where it is. A Stop click stops the reply as soon as it reaches the server."""
    stop_key = f"stop-{reply.message_id}"
    handed = False

    def handed_over() -> bool:
        nonlocal handed
        waiting = waiting_rerun()
        if waiting is None:
            return False
        if _clicked_in(waiting, stop_key):
            reply.stop()
        if getattr(waiting, "is_auto_rerun", False):
            return False  # a fragment's timed rerun (a status line) can wait for this one
        handed = True
        return True

    with st.chat_message("assistant"):
        thinking = LiveThinking(reply.turn)  # "Thinking…", the reasoning as it comes, collapsed at the answer
        with_tools = reply.turn.tools is not None  # (its tools may still be being listed)
        steps_area = st.container() if with_tools else None
        body = st.container()
        st.button("Stop", key=stop_key, icon=":material/stop_circle:", type="secondary",
                  on_click=on_stop, args=(reply.conversation_id,))

        try:
            with body:
                if with_tools:
                    _follow_steps(reply, steps_area, thinking, handed_over)
                else:
                    st.write_stream(_shown(reply.follow(), reply, thinking, handed_over))
        except BaseException as interruption:
            if clicked(interruption, stop_key):
                reply.stop()
            raise
    return not handed


def follow_column(reply: LiveReply, figures: Callable[[], str]) -> None:
    """A Compare column's live reply: its Thinking section, its text as it streams, and under it the line
    ``figures()`` gives, redrawn every quarter second. A rerun of the page ends only this drawing."""
    thinking = LiveThinking(reply.turn)
    body = st.container()
    figures_slot = st.empty()
    drawn = 0.0

    def redraw_figures() -> None:
        nonlocal drawn
        if time.monotonic() - drawn >= FIGURES_EVERY:
            figures_slot.caption(figures() or "…")
            drawn = time.monotonic()

    with body:
        st.write_stream(_shown(reply.follow(), reply, thinking, on_tick=redraw_figures))


def follow_stored(store: Store, row: dict) -> None:
    """Draw a reply another app process is writing, from the checkpoints it saves, until it leaves
    'streaming' (finished there, or marked interrupted when that process died: the follower marks it
    itself once no checkpoint has come for chat.store.STALE_AFTER seconds, as any page run would). A reply that uses
    tools shows its steps as they are checkpointed (a call waiting for approval is approved in the tab that
    started the reply)."""
    with st.chat_message("assistant"):
        steps_slot = st.empty()
        body = st.empty()
        st.caption(WRITTEN_ELSEWHERE)
        drawn = None
        while True:
            current = store.message(row["id"])
            if current is None:
                return
            steps = current.get("tool_steps")
            shown = (json.dumps(steps, sort_keys=True, default=str) if steps else None, current["content"] or "")
            if shown != drawn:
                drawn = shown
                if steps:
                    with steps_slot.container():
                        render.tool_steps(steps)
                        if any(c.get("status") == "waiting" for s in steps for c in s.get("calls") or []):
                            st.caption(APPROVAL_ELSEWHERE)
                    body.empty()
                elif shown[1]:
                    body.markdown(inert_markdown(shown[1]))
            if current["status"] != "streaming":
                return
            if is_dead(current):  # the process writing it died
                try:
                    store.mark_dead_replies()
                except StoreError:
                    pass  # housekeeping: the next poll tries again
            deadline = time.monotonic() + STORED_POLL
            while time.monotonic() < deadline:
                time.sleep(HEARTBEAT)
                _let_a_rerun_in()
