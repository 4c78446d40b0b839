"""Per-user daily spending limit (CHAT_DAILY_LIMIT_USD). A day is a UTC calendar day."""

from __future__ import annotations

from datetime import UTC, datetime

from chat.pricing import format_cost
from chat.providers.base import ProviderError
from chat.store import Store


class SpendLimitReached(ProviderError):
    """A turn refused before it started, because the user is past the day's limit."""

    kind = "spend_limit"

    def __init__(self, spent: float, limit: float):
        super().__init__(f"spent {spent:.4f} of {limit:.4f} USD today")
        self.spent = spent
        self.limit = limit

    @property
    def hint(self) -> str:
        return (f"You have spent {format_cost(self.spent)} today, which reaches your daily limit of "
                f"{format_cost(self.limit)}. The limit resets at midnight UTC; ask an admin if you need more.")


def start_of_day(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%dT00:00:00.000000Z")


def spent_today(store: Store, user: str, *, now: datetime | None = None) -> float:
    """Known cost of every reply the user received today, in any conversation (chat or compare)."""
    with store.db() as db:
        row = db.execute(
            "SELECT COALESCE(SUM(m.cost), 0) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.user = ? AND m.role = 'assistant' AND m.created_at >= ?",
            [user, start_of_day(now)],
        ).fetchone()
    return float(row[0] or 0.0)


def check_daily_limit(store: Store, user: str, limit: float | None) -> None:
    """Raise SpendLimitReached when a new turn would start at or past the limit."""
    if not limit:
        return
    spent = spent_today(store, user)
    if spent >= limit:
        raise SpendLimitReached(spent, limit)
