"""A message on its way into the database: the user's words are never lost to a database fault.

The chat page keeps an :class:`Outgoing` in the session from the moment the message is submitted until
its reply has started. :func:`deliver` saves it (creating the conversation if needed) and opens the reply;
when the database refuses (busy, read-only, full, damaged, gone) it raises the :class:`StoreError` with the
outgoing message saying how far it got, so "Send again" neither loses the message nor saves it twice.
Never imports streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat import turns
from chat.pricing import Pricer
from chat.providers.base import Provider
from chat.store import Store, StoreError


@dataclass
class Outgoing:
    prompt: str
    conversation_id: str | None = None  # None: a new conversation is created on the way
    saved: bool = False  # the message is in the database; only its reply is still to start
    problem: str | None = None  # the last database fault, one sentence for the page


def deliver(store: Store, out: Outgoing, provider: Provider, pricer: Pricer, settings: turns.TurnSettings, *,
            user: str, **turn_options) -> turns.Turn:
    """Save ``out`` (if not saved yet) and open its reply. On a database fault ``out`` records what was
    done (the conversation created, the message saved) and the fault, and the error is raised."""
    try:
        if not out.saved:
            if out.conversation_id is None:
                out.conversation_id = store.create_conversation(user=user, source="chat",
                                                                settings=settings.as_dict())
            else:
                store.update_conversation(out.conversation_id, settings=settings.as_dict())
            store.add_user_message(out.conversation_id, out.prompt)
            out.saved = True
        return turns.answer(store, provider, pricer, out.conversation_id, settings, user=user, **turn_options)
    except StoreError as exc:
        out.problem = str(exc)
        raise
