"""The actions that start a turn: send a message, answer the conversation as it is, regenerate the last
reply, edit the last message."""

from __future__ import annotations

from chat.attachments import Attachment
from chat.store import Store
from chat.turns.settings import TurnContext, TurnSettings
from chat.turns.turn import Turn
from chat.turns.versions import last_position

CONTINUE_PROMPT = "Continue exactly where your previous reply stopped."


def files_sent(store: Store, conversation_id: str) -> list[Attachment]:
    """The files the conversation's messages carry: Regenerate, Retry, Edit and Continue send them again."""
    return [Attachment.from_meta(meta) for row in store.messages(conversation_id) if row["role"] == "user"
            for meta in row.get("attachments") or ()]


def send(ctx: TurnContext, conversation_id: str, prompt: str, settings: TurnSettings, *,
         files: tuple[Attachment, ...] = ()) -> Turn:
    """Save the user's message and its files (committed before any provider call), then open the reply.
    Past the user's daily spending limit the reply is refused (recorded as failed, nothing sent)."""
    ctx.store.add_user_message(conversation_id, prompt, files)
    return answer(ctx, conversation_id, settings)


def answer(ctx: TurnContext, conversation_id: str, settings: TurnSettings) -> Turn:
    """Open the reply to the conversation's messages as they are (the user's message already saved).
    Past the user's daily spending limit, counting what replies still streaming have reserved, the reply is
    refused (recorded as failed, nothing sent)."""
    return Turn.open(ctx, conversation_id, settings)


def regenerate(ctx: TurnContext, conversation_id: str, settings: TurnSettings) -> Turn:
    """Replace the last reply (or retry a failed one): the old reply is superseded, not erased, so what
    it cost stays counted."""
    rows = ctx.store.messages(conversation_id)
    user_pos = last_position(rows, "user")
    if user_pos is None:
        raise ValueError("there is no message to answer")
    ctx.store.supersede_from(conversation_id, user_pos + 1)
    return answer(ctx, conversation_id, settings)


def edit_last(ctx: TurnContext, conversation_id: str, prompt: str, settings: TurnSettings) -> Turn:
    """Replace the last user message with ``prompt`` and answer it afresh; its attached files go with the
    new one."""
    rows = ctx.store.messages(conversation_id)
    user_pos = last_position(rows, "user")
    if user_pos is None:
        raise ValueError("there is no message to edit")
    last_user = next(r for r in rows if r["position"] == user_pos)
    files = tuple(Attachment.from_meta(meta) for meta in last_user.get("attachments") or ())
    ctx.store.supersede_from(conversation_id, user_pos)
    return send(ctx, conversation_id, prompt, settings, files=files)
