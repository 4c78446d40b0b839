"""Replies that run in the server, owned by their conversation rather than by the page run that started them.

A :class:`LiveReply` streams one :class:`~chat.turns.Turn` on a thread of its own, to its end: the provider
finishing it, an error, or a Stop (:meth:`LiveReply.stop`, from any thread). Pages only follow it
(:meth:`LiveReply.follow` yields the text so far, then the rest as it arrives), so leaving the page, opening
another conversation, refreshing or closing the tab does not end it; coming back follows it again from where
it is. The turn keeps checkpointing the text to the store, so another process shows it from there, and a
crash leaves it to be marked interrupted.

:data:`replies` is the process's registry: at most one live reply per conversation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from chat.providers.base import ProviderError
from chat.turns import Turn

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.03  # seconds between updates a follower sends, for a short reply
FLUSH_PER_CHAR = 1 / 200_000  # ... growing with the text, since each update redraws the whole reply
MAX_FLUSH = 0.5
HEARTBEAT = 0.1  # a follower yields "" at least this often, so its page can notice a rerun
START_GRACE = 2.0  # a page's reply is sent when the page begins to show it, or after this long regardless


class ReplyInProgress(Exception):
    """The conversation already has a reply streaming; one at a time."""

    def __str__(self) -> str:
        return "A reply is still being written in this conversation; wait for it or stop it first."


class LiveReply:
    """One reply streaming on its own thread. ``text`` is what has arrived so far; ``done`` turns True once
    the reply is stored in its final state (``turn.record``)."""

    def __init__(self, turn: Turn):
        self.turn = turn
        self.conversation_id = turn.conversation_id
        self.message_id = turn.message_id
        self.error: ProviderError | None = None
        self.done = False
        self.started_at = time.monotonic()
        self._parts: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"live-reply-{turn.message_id}", daemon=True)
        self._begun = False

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self._parts)

    def start(self, *, grace: float | None = None) -> LiveReply:
        """Send the request now, or (with ``grace``) when the first follower arrives, at the latest after
        ``grace`` seconds: a page starting a reply sends it as it begins to show it, so the text appears as
        soon as it arrives, and a reply whose page went away is still sent."""
        if grace is None:
            self._begin()
        else:
            timer = threading.Timer(grace, self._begin)
            timer.daemon = True
            timer.start()
        return self

    def _begin(self) -> None:
        with self._changed:
            if self._begun:
                return
            self._begun = True
        self._thread.start()

    def _run(self) -> None:
        try:
            for chunk in self.turn.stream(flush_every=0.0):
                if chunk:
                    with self._changed:
                        self._parts.append(chunk)
                        self._changed.notify_all()
        except ProviderError as exc:
            self.error = exc  # recorded on the reply's row by the turn
        except Exception:
            log.exception("reply %s failed", self.message_id)
        finally:
            self.turn.stop()  # a no-op when the turn finished itself; otherwise the row leaves 'streaming'
            with self._changed:
                self.done = True
                self._changed.notify_all()

    def stop(self) -> None:
        """Stop the reply now: the upstream connection is closed and the partial text saved as stopped."""
        self.turn.request_stop()
        self._begin()  # a reply stopped before it was sent still ends, as stopped
        with self._changed:
            self._changed.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the reply is done (or ``timeout``); True when done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self.done:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def follow(self, *, heartbeat: float = HEARTBEAT) -> Iterator[str]:
        """The reply's text: what has arrived so far at once, then the rest as it comes, in updates spaced
        by a flush interval that grows with the text (each update redraws the whole reply on a page). An
        empty string at least every ``heartbeat`` seconds while nothing new arrives. Ends when the reply is
        done. Closing this generator leaves the reply running."""
        self._begin()
        sent = 0
        length = 0
        last = 0.0
        while True:
            with self._changed:
                if len(self._parts) == sent and not self.done:
                    self._changed.wait(heartbeat)
                # coalesce what arrives until the flush interval since the last update has passed
                due = last + min(MAX_FLUSH, max(FLUSH_EVERY, length * FLUSH_PER_CHAR))
                while len(self._parts) > sent and not self.done and (now := time.monotonic()) < due:
                    self._changed.wait(due - now)
                new = self._parts[sent:]
                sent = len(self._parts)
                finished = self.done
            text = "".join(new)
            if text:
                length += len(text)
                last = time.monotonic()
            yield text
            if finished:
                return


class Registry:
    """The live replies of this process, by conversation. Thread-safe; shared by every session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, LiveReply] = {}

    def start(self, turn: Turn, *, grace: float | None = None) -> LiveReply:
        """Run ``turn`` as the conversation's live reply (see :meth:`LiveReply.start` for ``grace``). Raises
        ReplyInProgress when another is running (the turn is then stopped: its row does not stay
        'streaming')."""
        with self._lock:
            current = self._live.get(turn.conversation_id)
            if current is not None and not current.done:
                turn.stop()
                raise ReplyInProgress()
            for cid in [cid for cid, other in self._live.items() if other.done]:
                del self._live[cid]  # their rows hold everything
            live = self._live[turn.conversation_id] = LiveReply(turn)
        return live.start(grace=grace)

    def get(self, conversation_id: str | None) -> LiveReply | None:
        """The conversation's reply, while it runs and for as long as it is the latest one."""
        if conversation_id is None:
            return None
        with self._lock:
            return self._live.get(conversation_id)

    def running(self, conversation_id: str | None) -> LiveReply | None:
        live = self.get(conversation_id)
        return live if live is not None and not live.done else None


replies = Registry()
