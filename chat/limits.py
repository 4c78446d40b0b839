"""Per-user daily spending limit (CHAT_DAILY_LIMIT_USD). A day is a UTC calendar day.

A check made only before a turn starts lets two tabs, a four-target comparison or a batch all pass it
together and end far past the limit. So a turn *reserves* its likely cost when it starts, in the same
write transaction as the check (:meth:`chat.store.Store.start_reply_within`): the check counts the day's
known costs plus the reservations of replies still streaming, and refuses a new turn once that sum
reaches the limit. A finished reply's real cost replaces its reservation; a reply marked interrupted
drops it. As long as reservations are not below the real costs, the day ends past the limit by at most
the last admitted reply's cost.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chat import tokens
from chat.display import format_cost
from chat.pricing import Pricer
from chat.providers.base import Message, ProviderError, Usage
from chat.store import Budget
from chat.timestamps import stamp

if TYPE_CHECKING:  # a turn's context and settings, read only
    from chat.turns.settings import TurnContext, TurnSettings

# Output tokens counted for a reply with no max_tokens set: kept free in the context window, and priced by
# the estimate under the input and by the reservation against the daily limit.
DEFAULT_OUTPUT_RESERVE = 4096


class SpendLimitReached(ProviderError):
    """A turn refused before it started, because the user is past the day's limit (counting what replies
    still streaming have reserved)."""

    kind = "spend_limit"

    def __init__(self, spent: float, limit: float, reserved: float = 0.0):
        super().__init__(f"spent {spent:.4f} (+{reserved:.4f} reserved) of {limit:.4f} USD today")
        self.spent = spent
        self.limit = limit
        self.reserved = reserved

    @property
    def hint(self) -> str:
        streaming = (f", and replies still streaming may cost up to {format_cost(self.reserved)} more"
                     if self.reserved > 0 else "")
        return (f"You have spent {format_cost(self.spent)} today{streaming}, which reaches your daily limit of "
                f"{format_cost(self.limit)}. The limit resets at midnight UTC; ask an admin if you need more.")


def start_of_day(now: datetime | None = None) -> str:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return stamp(now.replace(hour=0, minute=0, second=0, microsecond=0))


def likely_usage(messages: list[Message], model: str, *, system: str | None, max_tokens: int | None) -> Usage:
    """The most a reply is counted to use: the request's input tokens counted locally, and the output up to
    ``max_tokens`` (or :data:`DEFAULT_OUTPUT_RESERVE`). Cache discounts are not counted: an upper bound."""
    input_tokens = tokens.estimate_input(messages, model, system).tokens
    return Usage(input_tokens=input_tokens, output_tokens=max_tokens or DEFAULT_OUTPUT_RESERVE)


def likely_cost(pricer: Pricer, provider: str, model: str, messages: list[Message], *, system: str | None,
                max_tokens: int | None) -> float:
    """What a reply will probably cost at most (:func:`likely_usage` priced). 0 when the price is unknown."""
    if not pricer.price_known(provider, model):
        return 0.0
    return pricer.cost(provider, model, likely_usage(messages, model, system=system, max_tokens=max_tokens)).usd or 0.0


def budget(user: str | None, limit: float | None) -> Budget | None:
    """Today's budget for ``user``; None when there is no limit."""
    if not limit:
        return None
    return Budget(user=user or "", limit=float(limit), since=start_of_day())


def start_reply(ctx: TurnContext, conversation_id: str, settings: TurnSettings, messages: list[Message], *,
                recorded: dict | None, budget: Budget | None) -> tuple[int, SpendLimitReached | None]:
    """Start a reply row in ``ctx.store`` (its settings as ``recorded``), checked against ``budget`` with the
    likely cost of sending ``messages`` reserved, in one transaction. Returns the row's id and, when the
    budget refused it, the error to record on it."""
    model_id = settings.model_id
    if budget is not None:
        budget = dataclasses.replace(budget, reserve=likely_cost(
            ctx.pricer, model_id.provider, model_id.model, messages, system=settings.system,
            max_tokens=settings.params.max_tokens))
    started = ctx.store.start_reply_within(conversation_id, provider=model_id.provider, model=model_id.model,
                                           settings=recorded, budget=budget)
    if budget is None or started.admitted:
        return started.id, None
    return started.id, SpendLimitReached(started.spent, budget.limit, started.reserved)
