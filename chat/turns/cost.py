"""What a turn's model calls cost: one call priced (our price, else the figure the server billed), and the
calls of a reply that used tools added up."""

from __future__ import annotations

from collections.abc import Sequence

from chat.config import ModelId
from chat.pricing import Pricer
from chat.providers.base import Reply, Usage

Priced = tuple[Usage | None, float | None]  # one model call's usage and cost


def call_cost(pricer: Pricer, model_id: ModelId, usage: Usage) -> tuple[float | None, str | None]:
    """(cost, source) of one model call: our price (source None), else what the server reported it billed
    (source "provider", e.g. OpenRouter's ``usage.cost``), else unknown (None, None)."""
    cost = pricer.cost(model_id.provider, model_id.model, usage).usd
    if cost is None and usage.provider_cost is not None:
        return usage.provider_cost, "provider"
    return cost, None


def refused_unbilled(reply: Reply | None, status: str, text: str, reasoning: str) -> bool:
    """A failed reply that received nothing, not even an exact input count: the provider refused the request
    or failed before answering it, so nothing is billed."""
    if reply is None:
        return False
    return (status == "error" and not text and not reasoning and not reply.usage.input_exact
            and not reply.reasoning_hidden)


def sum_calls(parts: Sequence[Priced]) -> tuple[Usage, float | None]:
    """The usage and cost of several model calls together; the cost is unknown when any part's is."""
    total = Usage(input_tokens=0, output_tokens=0, input_exact=True, output_exact=True)
    cost: float | None = 0.0
    reasoning = None
    for usage, part_cost in parts:
        if usage is None:
            continue
        total.input_tokens += usage.input_tokens or 0
        total.output_tokens += usage.output_tokens or 0
        total.cache_read_tokens += usage.cache_read_tokens
        total.cache_write_tokens += usage.cache_write_tokens
        total.cache_write_1h_tokens += usage.cache_write_1h_tokens
        total.input_exact = total.input_exact and usage.input_exact
        total.output_exact = total.output_exact and usage.output_exact
        if usage.reasoning_tokens:
            reasoning = (reasoning or 0) + usage.reasoning_tokens
        cost = None if cost is None or part_cost is None else cost + part_cost
    total.reasoning_tokens = reasoning
    return total, cost


def cache_saved_sum(pricer: Pricer, model_id: ModelId, parts: Sequence[Priced]) -> float | None:
    """What the prompt cache saved over several model calls, each priced on its own; None when no call's
    saving is known."""
    savings = [pricer.cache_saving(model_id.provider, model_id.model, usage) for usage, _ in parts
               if usage is not None]
    return None if all(x is None for x in savings) else sum(x or 0.0 for x in savings)
