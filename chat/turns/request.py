"""What a turn sends: the stored conversation as the provider's messages (always a valid request), fitted to
the model's context window, with its files' bytes."""

from __future__ import annotations

import dataclasses

from chat import attachments, tokens
from chat.attachments import Attachment
from chat.display import ending
from chat.providers.base import ContextTooLong, Message, ToolCall
from chat.store import NotFound, Store
from chat.tool_loop import ToolRunner, steps_from_json


def _step_messages(row: dict) -> list[Message]:
    """A reply that used tools, as the provider needs it back: per step, the assistant's text with its calls,
    then the results; then the final answer."""
    out: list[Message] = []
    for step in steps_from_json(row.get("tool_steps")):
        calls = [c for c in step.calls if c.status != "skipped"]
        if calls:
            out.append(Message("assistant", step.text, tool_calls=tuple(
                ToolCall(c.id, c.wire_name, c.arguments) for c in calls)))
            out.append(Message("user", "", tool_results=tuple(ToolRunner.results(calls))))
        elif step.text.strip():
            out.append(Message("assistant", step.text))
    return out


def history_from_rows(rows: list[dict]) -> list[Message]:
    """The messages sent to the provider: visible rows, in order, always a valid request.

    - A stopped or failed partial reply is sent as it was shown; an empty reply (it failed before its first
      token, or only asked for a tool) is left out, and the user messages around it are sent as one.
    - A refused or filtered exchange (the reply and the message it answered) is left out: sent again, it
      invites the same answer.
    - The request opens with a user message and never has two of them in a row."""
    out: list[Message] = []
    for row in rows:
        if row.get("superseded"):
            continue
        files = tuple(Attachment.from_meta(meta) for meta in row.get("attachments") or ())
        if row["role"] == "assistant":
            if ending(row).left_out:
                while out and out[-1].role == "user":
                    out.pop()
                continue
            if row.get("tool_steps") and out:
                out += _step_messages(row)
                if out[-1].role == "user":  # the reply ended with results it never answered
                    out.append(Message("assistant", "(no answer)"))
                continue
            if not (row.get("content") or "").strip() or not out:
                continue
        elif out and out[-1].role == "user" and not out[-1].tool_results:
            out[-1] = Message("user", "\n\n".join(t for t in (out[-1].content, row["content"]) if t),
                              out[-1].attachments + files)
            continue
        out.append(Message(row["role"], row["content"], files))
    return out


def with_file_data(store: Store, history: list[Message]) -> list[Message]:
    """``history`` with its attachments' bytes read from the store. A file no longer stored (purged) is
    left out, and the message says so, so the request still goes."""
    out = []
    for message in history:
        if not message.attachments:
            out.append(message)
            continue
        kept, gone = [], []
        for item in message.attachments:
            try:
                kept.append(item if item.data is not None else dataclasses.replace(item, data=store.blob(item.sha256)))
            except NotFound:
                gone.append(item.name)
        content = message.content + "".join(f"\n\n(The attached file {name} is no longer stored.)" for name in gone)
        out.append(Message(message.role, content, tuple(kept)))
    return out


def message_tokens(message: Message, model: str) -> int:
    """≈ tokens of one message in a request: its text, 3 of framing, and its attachments."""
    total = tokens.count_text(message.content, model).tokens + 3
    for item in message.attachments:
        total += attachments.estimate_tokens(item, model, lambda text: tokens.count_text(text, model).tokens)
    return total


def fit_context(history: list[Message], *, model: str, system: str | None, context_window: int | None,
                reserve: int) -> tuple[list[Message], int]:
    """Leave out the oldest messages until the request fits ``context_window - reserve`` tokens.

    Returns (messages to send, how many were left out). Raises ContextTooLong when even the newest
    message alone does not fit, before anything is sent."""
    if not context_window or not history:
        return history, 0
    budget = context_window - reserve
    if budget <= 0:
        budget = context_window // 2
    overhead = 3 + (tokens.count_text(system, model).tokens + 3 if system else 0)
    sizes = [message_tokens(m, model) for m in history]
    total = overhead + sum(sizes)
    start = 0
    while total > budget and start < len(history) - 1:
        total -= sizes[start]
        start += 1
    # A request must open with a user message (Anthropic requires it).
    while start < len(history) - 1 and history[start].role != "user":
        total -= sizes[start]
        start += 1
    if total > budget:
        files = history[-1].attachments
        raise ContextTooLong(
            f"the newest message needs about {total:,} tokens"
            + (f" with its {len(files)} attached file{'s' if len(files) != 1 else ''}" if files else "")
            + f"; this model takes about {budget:,}",
        )
    return history[start:], start
