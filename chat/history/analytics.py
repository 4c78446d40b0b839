"""The History page's analytics: the cards, usage per UTC day and model, per model and per user. The cards and
the per-user table read the per-conversation totals the store keeps; the per-day figures read every reply."""

from __future__ import annotations

import statistics
from collections import defaultdict

from chat.store import Filters, Store


def summary(store: Store, filters: Filters) -> dict:
    """The cards: conversations, messages, replies, tokens, cost (known costs) and replies of unknown cost,
    from the kept totals."""
    return store.summary(filters)


def usage_by_model_and_day(store: Store, filters: Filters) -> tuple[list[dict], list[dict]]:
    """Every finished reply of the matching conversations, (superseded ones too, as in the totals), grouped:

    - by UTC day and model: ``day``, ``model``, ``replies``, ``tokens``, ``cost`` (known), ``unknown_cost``;
    - by model: the same plus ``median_ttft`` (s) and ``median_tokens_per_second`` (None without data).
    """
    days: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, 0.0, 0])
    totals: dict[str, list] = defaultdict(lambda: [0, 0, 0.0, 0])
    ttfts: dict[str, list[float]] = defaultdict(list)
    rates: dict[str, list[float]] = defaultdict(list)
    for batch in store.reply_figures(filters):
        for day, name, tokens, cost, ttft, rate in batch:
            entry = days[(day, name)]
            entry[0] += 1
            entry[1] += tokens
            if cost is None:
                entry[3] += 1
            else:
                entry[2] += cost
            if ttft is not None:
                ttfts[name].append(ttft)
            if rate is not None:
                rates[name].append(rate)
    for (_, name), (n, tokens, cost, unknown) in days.items():
        entry = totals[name]
        entry[0] += n
        entry[1] += tokens
        entry[2] += cost
        entry[3] += unknown
    by_day = [{"day": day, "model": name, "replies": n, "tokens": tokens, "cost": cost, "unknown_cost": unknown}
              for (day, name), (n, tokens, cost, unknown) in sorted(days.items())]
    by_model = [{"model": name, "replies": n, "tokens": tokens, "cost": cost, "unknown_cost": unknown,
                 "median_ttft": statistics.median(ttfts[name]) if ttfts[name] else None,
                 "median_tokens_per_second": statistics.median(rates[name]) if rates[name] else None}
                for name, (n, tokens, cost, unknown) in sorted(totals.items())]
    return by_day, by_model


def usage_by_user(store: Store, filters: Filters) -> list[dict]:
    return store.usage_by_user(filters)

