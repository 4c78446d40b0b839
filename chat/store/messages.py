"""A conversation's messages: the user's (with their files) added, read in order or one by one, and the
versions of the last reply (regenerate, edit and resend hide messages; they stay in the totals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chat.store.attachments import Attachments, attachments_of
from chat.store.conversations import title_from
from chat.store.errors import NotFound
from chat.store.rows import MessageRow, message_row
from chat.store.sql import insert_sql, one, rows
from chat.store.totals import refresh_totals
from chat.timestamps import now

if TYPE_CHECKING:
    from chat.attachments import Attachment


def insert_message(db: Any, conversation_id: str, row: dict) -> int:
    """Inside a write that holds the conversation: add a message after its last one; returns its id."""
    # The conversation is held (SQLite's write lock, PostgreSQL's row lock): max + 1 cannot race
    position = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM messages WHERE conversation_id = ?",
                          [conversation_id]).fetchone()[0]
    row = {"conversation_id": conversation_id, "position": position, **row}
    return db.execute(insert_sql("messages", row) + " RETURNING id", list(row.values())).fetchall()[0][0]


class Messages(Attachments):
    def add_user_message(self, conversation_id: str, content: str,
                         attachments: Sequence[Attachment] = ()) -> MessageRow:
        """Store the user's message (with its attached files) and commit before returning; names the
        conversation if unnamed. A file's bytes are stored once however often it is attached (sha256)."""
        stamp = now()
        with self._write() as db:
            conversation = self._require(db, conversation_id, lock=True)
            message_id = insert_message(db, conversation_id, {
                "role": "user", "content": content, "status": "complete",
                "created_at": stamp, "updated_at": stamp,
            })
            self._insert_attachments(db, message_id, attachments, stamp)
            if not conversation["title"].strip():
                title = content if content.strip() or not attachments else ", ".join(a.name for a in attachments)
                db.execute("UPDATE conversations SET title = ? WHERE id = ?",
                           [title_from(title), conversation_id])
            refresh_totals(db, conversation_id, touch=stamp)
            row = message_row(one(db, "SELECT * FROM messages WHERE id = ?", [message_id]))
            row["attachments"] = attachments_of(db, [message_id]).get(message_id, [])
            return row

    def messages(self, conversation_id: str, *, include_superseded: bool = False,
                 after_position: int | None = None) -> list[MessageRow]:
        """The conversation's messages in order (those after ``after_position`` only, when given)."""
        sql = "SELECT * FROM messages WHERE conversation_id = ?"
        params: list = [conversation_id]
        if not include_superseded:
            sql += " AND superseded = 0"
        if after_position is not None:
            sql += " AND position > ?"
            params.append(after_position)
        with self.db() as db:
            found = [message_row(row) for row in rows(db, sql + " ORDER BY position", params)]
            files = attachments_of(db, [r["id"] for r in found if r["role"] == "user"])
        for row in found:
            row["attachments"] = files.get(row["id"], [])
        return found

    def message(self, message_id: int) -> MessageRow | None:
        """One message by id (a reply another process is writing is followed through this)."""
        with self.db() as db:
            row = one(db, "SELECT * FROM messages WHERE id = ?", [message_id])
            if row is None:
                return None
            found = message_row(row)
            found["attachments"] = (attachments_of(db, [message_id]).get(message_id, [])
                                    if found["role"] == "user" else [])
        return found

    def show_reply(self, conversation_id: str, message_id: int) -> None:
        """Make ``message_id``, one version of the conversation's last reply, the one shown and continued
        from: the other replies after the last visible user message are superseded, this one is not. The
        totals are unchanged (superseded replies count too)."""
        stamp = now()
        with self._write() as db:
            self._require(db, conversation_id)
            last_user = db.execute("SELECT MAX(position) FROM messages WHERE conversation_id = ? AND role = 'user' "
                                   "AND superseded = 0", [conversation_id]).fetchone()[0]
            chosen = one(db, "SELECT position, role FROM messages WHERE id = ? AND conversation_id = ?",
                         [message_id, conversation_id])
            if chosen is None or chosen["role"] != "assistant" or last_user is None or chosen["position"] <= last_user:
                raise NotFound("version of the last reply", message_id)
            db.execute("UPDATE messages SET superseded = CASE WHEN id = ? THEN 0 ELSE 1 END, updated_at = ? "
                       "WHERE conversation_id = ? AND role = 'assistant' AND position > ?",
                       [message_id, stamp, conversation_id, last_user])
            refresh_totals(db, conversation_id)

    def supersede_from(self, conversation_id: str, position: int) -> None:
        """Hide the messages at ``position`` and after (regenerate, edit and resend). They stay in the
        database and in the totals; new messages are numbered after the highest position."""
        stamp = now()
        with self._write() as db:
            self._require(db, conversation_id, lock=True)
            db.execute("UPDATE messages SET superseded = 1, updated_at = ? "
                       "WHERE conversation_id = ? AND position >= ? AND superseded = 0",
                       [stamp, conversation_id, position])
            refresh_totals(db, conversation_id, touch=stamp)
