"""History's queries over the totals kept on each conversation: the filters as SQL, the matching
conversations listed and counted, their sums and per-user usage, and every finished reply's figures for the
daily charts. Full-text search is each engine's own (``search_session``, ``snippets``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from chat.store.conversations import name_untitled
from chat.store.engine import Engine
from chat.store.filters import STATUSES, Filters
from chat.store.rows import ConversationRow, SummaryRow, UserUsageRow, conversation_row
from chat.store.sql import chunks, marks, rows
from chat.usage import TOKEN_COLUMNS


def tokens(table: str) -> str:
    """A row's tokens in SQL: input, output and cache reads and writes (chat.display.total_tokens)."""
    return " + ".join(f"COALESCE({table}.{k}, 0)" for k in TOKEN_COLUMNS)

class Reporting(Engine):
    def filter_sql(self, filters: Filters) -> tuple[str, list[Any]]:
        """A condition on ``conversations c`` and its parameters."""
        where = ["c.deleted_at IS NOT NULL" if filters.deleted else "c.deleted_at IS NULL"]
        params: list[Any] = []
        if filters.user is not None:
            where.append('c."user" = ?')
            params.append(filters.user)
        if filters.source is not None:
            where.append("c.source = ?")
            params.append(filters.source)
        if filters.since is not None:
            where.append("c.updated_at >= ?")
            params.append(filters.since.isoformat())
        if filters.until is not None:
            where.append("c.updated_at < ?")
            params.append((filters.until + timedelta(days=1)).isoformat())
        # `models` is the JSON list the store keeps, e.g. ["openai:gpt-4o"]: match the JSON-encoded text
        if filters.provider:
            where.append(self._contains("c.models"))
            params.append(json.dumps(f"{filters.provider}:")[:-1])  # '"openai:' (no closing quote: a prefix)
        if filters.model:
            where.append(self._contains("c.models"))
            params.append(json.dumps(filters.model))
        if filters.status is not None:
            where.append(STATUSES[filters.status])
        return " AND ".join(where), params

    def list_conversations(self, filters: Filters, *, limit: int | None = 50, offset: int = 0) -> list[ConversationRow]:
        """Conversations matching ``filters``, last active first, with ``models`` and ``settings`` decoded
        and a ``title`` (the first visible message when untitled)."""
        where, params = self.filter_sql(filters)
        sql = f"SELECT c.* FROM conversations c WHERE {where} ORDER BY c.updated_at DESC, c.rowid DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [limit, offset]
        with self.db() as db:
            found = [conversation_row(row) for row in rows(db, sql, params)]
            name_untitled(db, found)
        return found

    def conversations_by_id(self, conversation_ids: list[str]) -> dict[str, ConversationRow]:
        """These conversations (deleted or not) by id, decoded and named as in :meth:`list_conversations`;
        ids no longer stored are left out."""
        found: dict[str, ConversationRow] = {}
        with self.db() as db:
            for chunk in chunks(conversation_ids):
                for row in rows(db, f"SELECT c.* FROM conversations c WHERE c.id IN ({marks(chunk)})", chunk):
                    found[row["id"]] = conversation_row(row)
            name_untitled(db, list(found.values()))
        return found

    def count_conversations(self, filters: Filters) -> int:
        where, params = self.filter_sql(filters)
        with self.db() as db:
            return db.execute(f"SELECT COUNT(*) FROM {self._totals_source(filters)} WHERE {where}",
                              params).fetchone()[0]

    def filter_values(self, filters: Filters) -> tuple[list[list[str]], list[str]]:
        """The distinct ``provider:model`` lists and users of the conversations matching ``filters``."""
        where, params = self.filter_sql(filters)
        source = self._totals_source(filters)
        with self.db() as db:
            model_lists = [json.loads(row[0] or "[]") for row in db.execute(
                f"SELECT DISTINCT c.models FROM {source} WHERE {where}", params).fetchall()]
            users = [row[0] for row in db.execute(
                f'SELECT DISTINCT c."user" FROM {source} WHERE {where} ORDER BY 1', params).fetchall()]
        return model_lists, users

    def summary(self, filters: Filters) -> SummaryRow:
        """Conversations, messages, replies, tokens, known cost and replies of unknown cost, summed from the
        kept totals of the conversations matching ``filters``."""
        where, params = self.filter_sql(filters)
        with self.db() as db:
            return rows(db, f"""
                SELECT COUNT(*) AS conversations,
                       COALESCE(SUM(c.message_count), 0) AS messages,
                       COALESCE(SUM(c.reply_count), 0) AS replies,
                       COALESCE(SUM({tokens("c")}), 0) AS tokens,
                       COALESCE(SUM(c.cost), 0.0) AS cost,
                       COALESCE(SUM(c.unknown_cost_count), 0) AS unknown_cost_count
                FROM {self._totals_source(filters)} WHERE {where}""", params)[0]

    def usage_by_user(self, filters: Filters) -> list[UserUsageRow]:
        where, params = self.filter_sql(filters)
        with self.db() as db:
            return rows(db, f"""
                SELECT c."user" AS "user", COUNT(*) AS conversations, SUM(c.message_count) AS messages,
                       SUM({tokens("c")}) AS tokens,
                       COALESCE(SUM(c.cost), 0.0) AS cost, SUM(c.unknown_cost_count) AS unknown_cost_count
                FROM {self._totals_source(filters)} WHERE {where} GROUP BY c."user" ORDER BY 1""", params)

    def reply_figures(self, filters: Filters, *, batch: int = 10_000) -> Iterator[list[tuple]]:
        """Every finished reply of the conversations matching ``filters`` (superseded ones too, as in the
        totals), in batches of (UTC day, model name, tokens, cost, ttft, tokens per second) tuples."""
        where, params = self.filter_sql(filters)
        # The conversations are the outer loop: the filters pick them, an index finds their replies.
        # The rate is chat.display.tokens_per_second, in SQL: generation starts at the first reasoning token,
        # at the start when the reasoning was hidden, else at the first answer token.
        start = ("COALESCE(m.reasoning_ttft, CASE WHEN m.reasoning_tokens > 0 THEN 0 ELSE COALESCE(m.ttft, 0) END)")
        sql = f"""
            SELECT substr(m.created_at, 1, 10),
                   CASE WHEN m.provider IS NULL THEN COALESCE(m.model, 'unknown model')
                        ELSE m.provider || ':' || m.model END,
                   {tokens("m")},
                   m.cost, m.ttft,
                   CASE WHEN m.output_tokens > 0 AND m.duration - {start} > 0.05
                        THEN m.output_tokens / (m.duration - {start}) END
            FROM {self._replies_join()}
            WHERE {where} AND m.role = 'assistant' AND m.status != 'streaming'"""
        with self.db() as db:
            cursor = db.execute(sql, params)
            while found := cursor.fetchmany(batch):
                yield found
