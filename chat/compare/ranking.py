"""The measured verdict on a run: complete replies ranked by latency, time to first token and cost, and the
summary table of a saved run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chat.compare.views import RunView
from chat.display import cost_text, ending, estimated, format_seconds, format_tokens, tokens_per_second


@dataclass(frozen=True)
class Rank:
    latency: int | None  # by total time; complete replies only
    first_token: int | None
    cost: int | None  # known costs of complete replies only


def _competition_ranks(values: Mapping[str, float | None]) -> dict[str, int | None]:
    """1, 1, 3 style: equal values share a rank; None values get no rank."""
    known = sorted((v, k) for k, v in values.items() if v is not None)
    ranks: dict[str, int | None] = dict.fromkeys(values)
    for position, (value, key) in enumerate(known, start=1):
        tied = next((ranks[k] for v, k in known[: position - 1] if v == value), None)
        ranks[key] = tied or position
    return ranks


def ranks(rows: Mapping[str, Mapping]) -> dict[str, Rank]:
    """Rank reply rows (label -> stored reply) by total time, time to first token and cost. Stopped and
    failed replies are not ranked: a partial reply is neither fast nor cheap in any useful sense."""

    def metric(row: Mapping, key: str) -> float | None:
        return row.get(key) if row.get("status") == "complete" else None

    latency = _competition_ranks({k: metric(r, "duration") for k, r in rows.items()})
    first = _competition_ranks({k: metric(r, "ttft") for k, r in rows.items()})
    cost = _competition_ranks({k: metric(r, "cost") for k, r in rows.items()})
    return {k: Rank(latency[k], first[k], cost[k]) for k in rows}


def leaders(rows: Mapping[str, Mapping]) -> dict[str, list[str]]:
    """The labels ranked first: {"first_token": [...], "latency": [...], "cost": [...]} (ties share)."""
    ranked = ranks(rows)
    return {
        "first_token": [k for k, r in ranked.items() if r.first_token == 1],
        "latency": [k for k, r in ranked.items() if r.latency == 1],
        "cost": [k for k, r in ranked.items() if r.cost == 1],
    }


def summary_line(rows: Mapping[str, Mapping]) -> str:
    """ "Fastest first token: A · Fastest reply: B · Cheapest: A" (empty when nothing completed)."""
    best = leaders(rows)
    parts = []
    for key, words in (("first_token", "Fastest first token"), ("latency", "Fastest reply"),
                       ("cost", "Cheapest")):
        if best[key]:
            parts.append(f"{words}: {', '.join(best[key])}")
    return " · ".join(parts)


def _seconds(value: float | None) -> str:
    return "—" if value is None else format_seconds(value)


def summary_rows(view: RunView) -> list[dict]:
    """One row per column for the summary table, in label order, with its latency and cost ranks."""
    rows = {c.label: c.reply for c in view.columns}
    ranked = ranks(rows)
    out = []
    for column in view.columns:
        reply, rank = column.reply, ranked[column.label]
        rate = tokens_per_second(reply)
        out.append({
            "Target": column.label,
            "Model": column.name if view.revealed else "hidden",
            "Status": ending(reply).label,
            "First token": _seconds(reply.get("ttft")),
            "Total time": _seconds(reply.get("duration")),
            "Tokens/s": "—" if rate is None else f"{rate:,.0f}",
            "In": _tokens_cell(reply, "input"),
            "Out": _tokens_cell(reply, "output"),
            "Cost": cost_text(reply, estimated=estimated(reply)),
            "Latency rank": _rank_cell(rank.latency),
            "Cost rank": _rank_cell(rank.cost),
        })
    return out


def _rank_cell(rank: int | None) -> str:
    return "—" if rank is None else str(rank)


def _tokens_cell(reply: Mapping, kind: str) -> str:
    value = reply.get(f"{kind}_tokens")
    if value is None:
        return "—"
    return format_tokens(value, estimated=not reply.get(f"{kind}_exact"))
