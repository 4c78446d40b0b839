"""What sending the conversation as it stands would cost on a model: the estimate under the input."""

from __future__ import annotations

from dataclasses import dataclass

from chat import limits
from chat.pricing import Pricer
from chat.providers.base import Usage
from chat.turns.request import history_from_rows
from chat.turns.settings import TurnSettings


@dataclass(frozen=True)
class NextCost:
    """What sending the conversation as it stands would cost on a model, before the user's next message:
    ``input_tokens`` (history and system prompt, counted locally), the output at ``output_tokens`` (the max
    tokens setting, else :data:`chat.limits.DEFAULT_OUTPUT_RESERVE`). Costs are None when the model's price
    is unknown."""

    model: str
    input_tokens: int
    output_tokens: int
    input_cost: float | None
    total_cost: float | None


def next_cost(pricer: Pricer, settings: TurnSettings, rows: list[dict]) -> NextCost:
    """The estimate shown under the input: the visible ``rows`` as they would be sent to ``settings``'
    model, and a reply as long as it may get (:func:`chat.limits.likely_usage`, as the daily limit reserves it)."""
    model_id = settings.model_id
    usage = limits.likely_usage(history_from_rows(rows), model_id.model, system=settings.system,
                                max_tokens=settings.params.max_tokens)
    input_cost = pricer.cost(model_id.provider, model_id.model, Usage(usage.input_tokens, 0)).usd
    total = pricer.cost(model_id.provider, model_id.model, usage).usd
    return NextCost(str(model_id), usage.input_tokens, usage.output_tokens, input_cost, total)
