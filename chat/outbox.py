"""A message on its way into the database: the user's words are never lost to a database fault.

The chat page keeps an :class:`Outgoing` in the session from the moment the message is submitted until
its reply has started. :func:`submitted` makes it, held (nothing saved or sent) while a file cannot go as it
is; :func:`send_again` is what Send again and Send without files do to it; :func:`send` delivers it and
starts its reply as a live reply of its conversation. :func:`deliver` saves it (creating the conversation if
needed) and opens the reply; when the database refuses (busy, read-only, full, damaged, gone) it raises the
:class:`StoreError` with the outgoing message saying how far it got, so "Send again" neither loses the
message nor saves it twice.
Never imports streamlit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chat import live, turns
from chat.store import Store, StoreError


@dataclass
class Outgoing:
    prompt: str
    conversation_id: str | None = None  # None: a new conversation is created on the way
    saved: bool = False  # the message is in the database; only its reply is still to start
    problem: str | None = None  # the last database fault, one sentence for the page
    files: tuple = ()  # chat.attachments.Attachment, with their bytes, kept with the message until it is saved
    held: bool = False  # a file cannot go as it is (``problem`` says why): nothing is saved or sent meanwhile
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _retrying: bool = field(default=False, repr=False, compare=False)

    def save(self, store: Store, *, user: str, settings: dict) -> None:
        """Save the message (and its new conversation) unless it is saved already; at most once."""
        with self._lock:
            if self.saved:
                return
            if self.conversation_id is None:
                self.conversation_id = store.create_conversation(user=user, source="chat", settings=settings)
            else:
                store.update_conversation(self.conversation_id, settings=settings)
            store.add_user_message(self.conversation_id, self.prompt, self.files)
            self.saved = True

    def save_soon(self, store: Store, *, user: str, settings: dict, every: float = 2.0,
                  give_up_after: float = 600.0) -> None:
        """Keep trying to save the message in the background until the database takes it (its reply is
        sent when the user says so). One retrier per message; it touches no page."""
        with self._lock:
            if self.saved or self._retrying:
                return
            self._retrying = True

        def retry() -> None:
            deadline = time.monotonic() + give_up_after
            try:
                while not self.saved and time.monotonic() < deadline:
                    time.sleep(every)
                    try:
                        self.save(store, user=user, settings=settings)
                    except StoreError as exc:
                        self.problem = str(exc)
            finally:
                self._retrying = False

        threading.Thread(target=retry, name="outbox-retry", daemon=True).start()


def deliver(ctx: turns.TurnContext, out: Outgoing, settings: turns.TurnSettings) -> turns.Turn:
    """Save ``out`` (if not saved yet; a new conversation is ``ctx.user``'s) and open its reply. On a database
    fault ``out`` records what was done (the conversation created, the message saved) and the fault, and the
    error is raised."""
    try:
        out.save(ctx.store, user=ctx.user, settings=settings.as_dict())
        return turns.answer(ctx, out.conversation_id, settings)
    except StoreError as exc:
        out.problem = str(exc)
        raise


FilesCheck = Callable[[tuple], "str | None"]  # why these files cannot go to the chosen model, or None


def submitted(prompt: str, conversation_id: str | None, files: tuple, unreadable: Sequence[str], *,
              check: FilesCheck) -> Outgoing:
    """The message the chat input just gave, with the ``files`` that could be read (``unreadable``: one
    sentence per file that could not). It is held, nothing saved or sent, when a file could not be read (the
    sentence says what Send again sends without it) or ``check(files)`` says why they cannot go."""
    out = Outgoing(prompt, conversation_id, files=files)
    if unreadable:
        left = ("the message" + (" and the other files" if files else "") if out.prompt.strip()
                else "the other files")
        out.problem = " ".join(unreadable) + (f" Send again sends {left} without it." if out.prompt.strip() or files
                                              else "")
    else:
        out.problem = check(files)
    out.held = out.problem is not None
    return out


def send_again(out: Outgoing, *, with_files: bool = True, check: FilesCheck) -> bool:
    """Send again (or, ``with_files`` False, Send without files): whether ``out`` may go now. A message held
    for its files is checked again (another model may read them now); one with nothing left stays held and
    says so."""
    if not with_files:
        out.files = ()
    if out.held:
        out.problem = check(out.files) if out.prompt.strip() or out.files else "There is nothing left to send."
        out.held = out.problem is not None
    return not out.held


def send(ctx: turns.TurnContext, out: Outgoing, settings: turns.TurnSettings) -> turns.Turn | None:
    """Deliver ``out`` and start its reply, owned by its conversation. None when it could not start (a reply of
    that conversation is still being written, or the database refused): ``out.problem`` says why (a
    database fault's sentence, kept from :func:`deliver`), and the message is saved in the background as
    soon as the database takes it."""
    try:
        if live.replies.running(out.conversation_id) is not None:
            raise live.ReplyInProgress()
        turn = deliver(ctx, out, settings)
        live.replies.start(turn, grace=live.START_GRACE)
        return turn
    except (StoreError, live.ReplyInProgress) as exc:
        out.problem = out.problem if isinstance(exc, StoreError) else str(exc)
        out.save_soon(ctx.store, user=ctx.user, settings=settings.as_dict())
        return None
