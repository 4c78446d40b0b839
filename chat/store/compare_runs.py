"""Compare runs: one prompt sent to several targets (one conversation each), the run's vote, the compared
replies read back, and the runs of a batch."""

from __future__ import annotations

import json
import uuid

from chat.store.engine import Engine
from chat.store.rows import CompareReplyRow, CompareRunRow, compare_run_row, reply_row
from chat.store.sql import chunks, dumps, insert, marks, one, rows, update
from chat.timestamps import now


class CompareRuns(Engine):
    def create_compare_run(self, *, user: str, prompt: str, settings: dict | None = None,
                           blind: bool = False) -> str:
        run_id = uuid.uuid4().hex
        with self._write() as db:
            insert(db, "compare_runs", {
                "id": run_id, "user": user, "prompt": prompt, "settings": dumps(settings or {}),
                "vote": None, "blind": int(blind), "created_at": now(),
            })
        return run_id

    def get_compare_run(self, run_id: str) -> CompareRunRow | None:
        """A compare run with its settings parsed and ``blind`` as a bool; None if unknown."""
        with self.db() as db:
            row = one(db, "SELECT * FROM compare_runs WHERE id = ?", [run_id])
        return None if row is None else compare_run_row(row)

    def set_compare_vote(self, run_id: str, vote: str | None) -> None:
        """Record the run's vote (a label such as ``A``, ``tie`` or ``all_bad``; None clears it)."""
        with self._write() as db:
            update(db, "compare_runs", run_id, {"vote": vote})

    def compare_replies(self, run_ids: list[str]) -> list[CompareReplyRow]:
        """For each conversation (not deleted) of these compare runs, its first reply: the compared one,
        whatever was added when it was continued as a chat. Each row is a message row plus
        ``compare_run_id`` and ``conversation_settings`` (parsed). In creation order."""
        out: list[CompareReplyRow] = []
        with self.db() as db:
            for chunk in chunks(run_ids):
                sql = f"""
                    SELECT m.*, c.compare_run_id AS compare_run_id, c.settings AS conversation_settings
                    FROM conversations c
                    JOIN messages m ON m.id = (
                        SELECT id FROM messages WHERE conversation_id = c.id AND role = 'assistant'
                        ORDER BY position LIMIT 1)
                    WHERE c.compare_run_id IN ({marks(chunk)}) AND c.deleted_at IS NULL
                    ORDER BY c.rowid
                """
                for row in rows(db, sql, chunk):
                    row["conversation_settings"] = json.loads(row["conversation_settings"] or "{}")
                    out.append(reply_row(row))
        return out

    def recent_compare_runs(self, user: str | None, *, limit: int = 20, mode: str | None = None) -> list[CompareRunRow]:
        """Compare runs, newest first; ``mode`` "single" or "batch" filters on ``settings.mode``."""
        where, params = [], []
        if user is not None:
            where.append('"user" = ?')
            params.append(user)
        if mode is not None:
            where.append(f"COALESCE({self._json_text('settings', 'mode')}, 'single') = ?")
            params.append(mode)
        # a run whose every column was deleted is deleted too: hidden like its conversations
        where.append("EXISTS (SELECT 1 FROM conversations c WHERE c.compare_run_id = compare_runs.id "
                     "AND c.deleted_at IS NULL)")
        sql = "SELECT * FROM compare_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self.db() as db:
            found = rows(db, sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?", [*params, limit])
        return [compare_run_row(row) for row in found]

    def compare_runs_in_batch(self, batch_id: str) -> list[CompareRunRow]:
        """The runs of one batch (one per prompt), by prompt index."""
        with self.db() as db:
            found = rows(db, f"SELECT * FROM compare_runs WHERE {self._json_text('settings', 'batch_id')} = ? "
                             f"ORDER BY {self._json_number('settings', 'prompt_index')}, rowid", [batch_id])
        return [compare_run_row(row) for row in found]
