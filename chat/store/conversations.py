"""Conversations: created, read, renamed, listed for a user's sidebar, deleted (softly) and restored, and
the title a conversation gets from its first message."""

from __future__ import annotations

import uuid
from typing import Any

from chat.store.engine import Engine
from chat.store.rows import ConversationRow, check_source, conversation_row
from chat.store.sql import dumps, insert, one, rows, update
from chat.timestamps import now

TITLE_LENGTH = 60


def title_from(text: str, limit: int = TITLE_LENGTH) -> str:
    """A one-line title: the first non-blank line, whitespace collapsed, cut near ``limit`` characters."""
    line = next((" ".join(ln.split()) for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def name_untitled(db: Any, conversations: list[dict]) -> None:
    """A conversation with no title is named after its first message."""
    for row in conversations:
        if not (row.get("title") or "").strip():
            first = db.execute("SELECT content FROM messages WHERE conversation_id = ? AND superseded = 0 "
                               "ORDER BY position LIMIT 1", [row["id"]]).fetchone()
            row["title"] = title_from(first[0]) if first else ""


class Conversations(Engine):
    def create_conversation(self, *, user: str, source: str = "chat", title: str | None = None,
                            settings: dict | None = None, compare_run_id: str | None = None) -> str:
        check_source(source)
        conversation_id = uuid.uuid4().hex
        stamp = now()
        with self._write() as db:
            insert(db, "conversations", {
                "id": conversation_id, "user": user, "title": title or "", "source": source,
                "compare_run_id": compare_run_id, "created_at": stamp, "updated_at": stamp,
                "settings": dumps(settings or {}),
            })
        return conversation_id

    def get_conversation(self, conversation_id: str, *, include_deleted: bool = False) -> ConversationRow | None:
        with self.db() as db:
            row = one(db, "SELECT * FROM conversations WHERE id = ?", [conversation_id])
        if row is None or (row["deleted_at"] is not None and not include_deleted):
            return None
        return conversation_row(row)

    def update_conversation(self, conversation_id: str, *, title: str | None = None,
                            settings: dict | None = None) -> None:
        changes: dict[str, Any] = {}
        if title is not None:
            changes["title"] = title
        if settings is not None:
            changes["settings"] = dumps(settings)
        if not changes:
            return
        changes["updated_at"] = now()
        with self._write() as db:
            update(db, "conversations", conversation_id, changes)

    def chat_list(self, user: str, *, limit: int = 20) -> list[ConversationRow]:
        """The user's chats for the Chat page's sidebar, newest first: conversations started there, and
        those continued there from Compare (a compare conversation with more than its compared exchange)."""
        sql = ("SELECT * FROM conversations WHERE deleted_at IS NULL AND \"user\" = ? "
               "AND (source = 'chat' OR message_count > 2 OR reply_count > 1) "
               "ORDER BY updated_at DESC, rowid DESC LIMIT ?")
        with self.db() as db:
            return [conversation_row(row) for row in rows(db, sql, [user, limit])]

    def soft_delete(self, conversation_id: str) -> None:
        with self._write() as db:
            self._require(db, conversation_id)
            db.execute("UPDATE conversations SET deleted_at = COALESCE(deleted_at, ?) WHERE id = ?",
                       [now(), conversation_id])

    def restore(self, conversation_id: str) -> None:
        with self._write() as db:
            update(db, "conversations", conversation_id, {"deleted_at": None})
