"""Which conversations History asks for: :class:`Filters`, and the status filters with the condition each
puts on a conversation's kept totals (the whole filter as SQL is ``Store.filter_sql``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from chat.store.rows import check_source

STATUSES = {  # status filter -> the condition on the kept totals
    "stopped": "c.stopped_count > 0",
    "failed": "c.error_count > 0",
    "stopped or failed": "(c.stopped_count > 0 OR c.error_count > 0)",
}


@dataclass(frozen=True)
class Filters:
    """Which conversations: every field None (or False) means "any". Dates are UTC days, inclusive, on the
    conversation's last activity. ``model`` is a ``provider:model`` id. ``deleted`` True shows only the
    deleted conversations (to restore them); otherwise deleted ones are hidden."""

    user: str | None = None
    since: date | None = None
    until: date | None = None
    provider: str | None = None
    model: str | None = None
    status: str | None = None
    source: str | None = None
    deleted: bool = False

    def __post_init__(self):
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {tuple(STATUSES)}, not {self.status!r}")
        if self.source is not None:
            check_source(self.source)
