"""Whether one conversation passes the History page's filters, judged from its row (no query): the page
closes an open transcript that a filter change has left out."""

from __future__ import annotations

from typing import Any

from chat.store.filters import STATUS_COUNTS


def matches(filters: Any, row: dict) -> bool:
    """``row``: a conversation as the store reads it (``models`` a list). ``filters``: chat.store.Filters
    (user, since, until, provider, model, status, source, deleted), the same meaning as its SQL."""
    if bool(filters.deleted) != (row.get("deleted_at") is not None):
        return False
    if filters.user is not None and row.get("user") != filters.user:
        return False
    if filters.source is not None and row.get("source") != filters.source:
        return False
    day = (row.get("updated_at") or "")[:10]
    if filters.since is not None and day < filters.since.isoformat():
        return False
    if filters.until is not None and day > filters.until.isoformat():
        return False
    models = row.get("models") or []
    if filters.provider and not any(m.startswith(f"{filters.provider}:") for m in models):
        return False
    if filters.model and filters.model not in models:
        return False
    return filters.status is None or any(row.get(count) for count in STATUS_COUNTS[filters.status])
