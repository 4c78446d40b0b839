"""Which conversations History asks for: :class:`Filters`, and the status filters with the kept totals each
asks of a conversation, as SQL (the whole filter as SQL is ``Store.filter_sql``; one row is judged against it
by chat.history.filtering)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from chat.store.rows import check_source

STATUS_COUNTS = {  # status filter -> the kept totals of which one at least must be above 0
    "stopped": ("stopped_count",),
    "failed": ("error_count",),
    "stopped or failed": ("stopped_count", "error_count"),
}


def _condition(counts: tuple[str, ...]) -> str:
    either = " OR ".join(f"c.{count} > 0" for count in counts)
    return f"({either})" if len(counts) > 1 else either


STATUSES = {status: _condition(counts) for status, counts in STATUS_COUNTS.items()}  # the same, as SQL


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
