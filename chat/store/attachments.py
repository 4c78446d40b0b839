"""Files attached to messages: each message's attachments (name, media type, size, dimensions) in order,
and the files' bytes stored once by their sha256 however often they are attached; the purge of the bytes
nothing refers to any more."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chat.store.engine import Engine
from chat.store.errors import NotFound
from chat.store.sql import chunks, marks, rows

if TYPE_CHECKING:
    from chat.attachments import Attachment


def attachments_of(db: Any, message_ids: list[int]) -> dict[int, list[dict]]:
    """Each message's attachments (metadata, no bytes), in order."""
    found: dict[int, list[dict]] = {}
    for chunk in chunks(message_ids):
        for row in rows(db, "SELECT message_id, sha256, name, media_type, size, width, height, pages "
                            f"FROM attachments WHERE message_id IN ({marks(chunk)}) ORDER BY message_id, position",
                        chunk):
            found.setdefault(row.pop("message_id"), []).append(row)
    return found


class Attachments(Engine):
    def _insert_attachments(self, db: Any, message_id: int, attachments: Sequence[Attachment],
                            stamp: str) -> None:
        """Inside a write: tie these files to the message, storing the bytes of those not stored yet."""
        for position, item in enumerate(attachments):
            if item.data is not None:
                self._insert_blob(db, item.sha256, item.data, stamp)
            elif db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", [item.sha256]).fetchone() is None:
                raise ValueError(f"{item.name}: no data given and none stored")
            db.execute("INSERT INTO attachments (message_id, position, sha256, name, media_type, size, width, "
                       "height, pages) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [message_id, position, item.sha256, item.name, item.media_type, item.size, item.width,
                        item.height, item.pages])

    def attachments_of(self, message_ids: list[int]) -> dict[int, list[dict]]:
        with self.db() as db:
            return attachments_of(db, message_ids)

    def blob(self, sha256: str) -> bytes:
        """The bytes of a stored file. Raises NotFound when no blob has that hash."""
        with self.db() as db:
            row = db.execute("SELECT data FROM blobs WHERE sha256 = ?", [sha256]).fetchone()
        if row is None:
            raise NotFound("blob", sha256)
        return bytes(row[0])

    def purge_blobs(self, *, deleted_conversations: bool = False) -> int:
        """Remove the stored files no attachment refers to; returns how many. Files of soft-deleted
        conversations are kept (an undo brings them back with their messages) unless
        ``deleted_conversations``: then those conversations lose their files for good (their messages say
        which files they had no more), and a file another conversation still holds stays."""
        with self._write() as db:
            if deleted_conversations:
                db.execute("DELETE FROM attachments WHERE message_id IN (SELECT m.id FROM messages m JOIN "
                           "conversations c ON c.id = m.conversation_id WHERE c.deleted_at IS NOT NULL)")
            return db.execute("DELETE FROM blobs WHERE NOT EXISTS "
                              "(SELECT 1 FROM attachments a WHERE a.sha256 = blobs.sha256)").rowcount
