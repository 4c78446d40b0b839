"""The versions of a conversation's last reply: Regenerate adds one, and the one shown is what the next
message continues from."""

from __future__ import annotations

from chat.store import Store


def last_position(rows: list[dict], role: str) -> int | None:
    """The position of the last visible message of ``role`` (None when there is none)."""
    for row in reversed(rows):
        if row["role"] == role and not row.get("superseded"):
            return row["position"]
    return None


def reply_versions(rows: list[dict]) -> list[dict]:
    """The versions of the conversation's last reply, oldest first: every reply after the last visible user
    message (``rows`` must include the superseded ones). Regenerate adds one; a superseded version with no
    text (a failure before its first token) is left out. The visible one is what is shown and what the
    next message continues from."""
    user_pos = last_position(rows, "user")
    if user_pos is None:
        return []
    return [r for r in rows if r["role"] == "assistant" and r["position"] > user_pos
            and (not r.get("superseded") or (r.get("content") or "").strip())]


def show_version(store: Store, conversation_id: str, message_id: int) -> None:
    """Show (and continue from) this version of the last reply; the others stay stored, superseded."""
    store.show_reply(conversation_id, message_id)
