"""The totals kept on each conversation (tokens, cost, counts, models), recomputed from the conversation's
own messages inside the same transaction as each write that can change them. A listing reads them without
touching ``messages``; a reply counts once it has left ``streaming``, however often it is finished."""

from __future__ import annotations

import json
from typing import Any

from chat.store.rows import FAILED_STATUSES
from chat.store.sql import one, update

_TOTALS_SQL = """
SELECT
  COUNT(*) FILTER (WHERE superseded = 0) AS message_count,
  COUNT(*) FILTER (WHERE counted) AS reply_count,
  COALESCE(SUM(input_tokens) FILTER (WHERE counted), 0) AS input_tokens,
  COALESCE(SUM(output_tokens) FILTER (WHERE counted), 0) AS output_tokens,
  COALESCE(SUM(cache_read_tokens) FILTER (WHERE counted), 0) AS cache_read_tokens,
  COALESCE(SUM(cache_write_tokens) FILTER (WHERE counted), 0) AS cache_write_tokens,
  COALESCE(SUM(cost) FILTER (WHERE counted), 0.0) AS cost,
  COUNT(*) FILTER (WHERE counted AND cost IS NULL) AS unknown_cost_count,
  COUNT(*) FILTER (WHERE counted AND status = 'stopped') AS stopped_count,
  COUNT(*) FILTER (WHERE counted AND status IN ({failed})) AS error_count
FROM (
  SELECT *, role = 'assistant' AND status != 'streaming' AS counted
  FROM messages WHERE conversation_id = ?
) AS m
""".format(failed=", ".join(f"'{status}'" for status in FAILED_STATUSES))

_MODELS_SQL = """
SELECT provider || ':' || model FROM messages
WHERE conversation_id = ? AND role = 'assistant' AND provider IS NOT NULL AND model IS NOT NULL
GROUP BY 1 ORDER BY MIN(position)
"""


def refresh_totals(db: Any, conversation_id: str, *, touch: str | None = None) -> None:
    """Inside a write: recompute the conversation's kept totals from its messages (one indexed pass), and
    set its ``updated_at`` to ``touch`` when given."""
    totals = one(db, _TOTALS_SQL, [conversation_id]) or {}
    totals["models"] = json.dumps([row[0] for row in db.execute(_MODELS_SQL, [conversation_id]).fetchall()])
    if touch is not None:
        totals["updated_at"] = touch
    update(db, "conversations", conversation_id, totals)
