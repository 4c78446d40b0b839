"""The one streaming consumer of the pages: a reply followed live into an assistant bubble."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import streamlit as st

from chat.display import InertStream
from chat.live import HEARTBEAT, LiveReply
from chat.store import Store, StoreError
from ui.render import LiveThinking

STORED_POLL = 0.5  # seconds between reads of a reply another process is writing (it checkpoints every second)


def _shown(chunks: Iterator[str], status, retries: Callable[[], int] | None = None,
           thinking: LiveThinking | None = None) -> Iterator[str]:
    """The chunks, made inert (no remote images), with "Thinking…" replaced by the first text. Empty chunks
    (heartbeats) touch the session, which is where a rerun of this page interrupts the stream. With
    ``thinking``, the reply's Thinking section is kept up to date from its turn until the answer starts."""
    guard = InertStream()
    first = True
    failures = 0
    for chunk in chunks:
        if not chunk:
            st.session_state["_heartbeat"] = True
            if first and retries is not None and retries() > failures:
                failures = retries()  # the SDK retries before streaming: say so while it waits
                note = f"The provider is busy; retrying (attempt {failures + 1})…"
                if thinking is not None:
                    thinking.note = note
                else:
                    status.caption(note)
            if first and thinking is not None:
                thinking.update()
            continue
        if first:
            if thinking is not None:
                thinking.finish()
            else:
                status.empty()
            first = False
        yield guard.feed(chunk)
    if thinking is not None:
        thinking.finish()
    yield guard.flush()


def clicked(interruption: BaseException, key: str) -> bool:
    """Whether the rerun that interrupts this run comes from a click on the button ``key``. A Stop then acts
    as soon as the click reaches the server (the interrupted run sees it within a heartbeat) instead of when
    the next run has started and run its callbacks, some 60 ms later; the callback still runs, harmlessly."""
    states = getattr(getattr(interruption, "rerun_data", None), "widget_states", None)
    for widget in getattr(states, "widgets", ()):
        if widget.id.endswith(f"-{key}") and widget.WhichOneof("value") == "trigger_value":
            return bool(widget.trigger_value)
    return False


def follow_reply(reply: LiveReply, *, on_stop: Callable[[str], None]) -> None:
    """Draw a live reply as it is written, with a Stop button, until it is done. Leaving the page (any
    rerun) ends only this drawing: the reply goes on, and is followed again from where it is."""
    stop_key = f"stop-{reply.message_id}"
    with st.chat_message("assistant"):
        thinking = LiveThinking(reply.turn)  # "Thinking…", the reasoning as it comes, collapsed at the answer
        body = st.container()
        st.button("Stop", key=stop_key, icon=":material/stop_circle:", type="secondary",
                  on_click=on_stop, args=(reply.conversation_id,))

        def retries() -> int:
            sdk_reply = reply.turn.reply
            return sdk_reply.failed_attempts if sdk_reply is not None else 0

        try:
            with body:
                st.write_stream(_shown(reply.follow(), thinking.slot, retries, thinking))
        except BaseException as interruption:
            if clicked(interruption, stop_key):
                reply.stop()
            raise


def _silent_for(row: dict) -> float:
    """Seconds since the row was last written."""
    written = datetime.strptime(row["updated_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - written).total_seconds()


def follow_stored(store: Store, row: dict) -> None:
    """Draw a reply another app process is writing, from the checkpoints it saves, until it leaves
    'streaming' (finished there, or marked interrupted when that process died: the follower marks it
    itself once no checkpoint has come for STALE_AFTER seconds, as any page run would)."""
    from ui.resources import STALE_AFTER

    def chunks() -> Iterator[str]:
        sent = 0
        while True:
            current = store.message(row["id"])
            if current is None:
                return
            text = current["content"] or ""
            yield text[sent:]
            sent = len(text)
            if current["status"] != "streaming":
                return
            if _silent_for(current) > STALE_AFTER:  # the process writing it died
                try:
                    store.mark_interrupted_replies(stale_after=STALE_AFTER)
                except StoreError:
                    pass  # housekeeping: the next poll tries again
            deadline = time.monotonic() + STORED_POLL
            while time.monotonic() < deadline:
                time.sleep(HEARTBEAT)
                yield ""

    with st.chat_message("assistant"):
        status = st.empty()
        body = st.container()
        st.caption("Being written by another app server; it can be stopped there.")
        with body:
            st.write_stream(_shown(chunks(), status))
