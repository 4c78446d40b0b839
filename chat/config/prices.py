"""Price overrides ([prices."provider:model"] / CHAT_PRICES, USD per million tokens), checked by the one
place that knows what an override may hold (:class:`chat.pricing.Pricer`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat.config.errors import PriceConfigError
from chat.config.values import json_object
from chat.pricing import Pricer


def prices_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    table = secrets.get("prices") or {}
    if not isinstance(table, Mapping):
        raise PriceConfigError("[prices] in secrets.toml must be a table of price overrides, e.g. "
                               '[prices."openai:gpt-4o-mini"] with input_mtok and output_mtok.')
    prices = dict(table)
    prices.update(json_object(env, "CHAT_PRICES", show_value=True, error=PriceConfigError,
                              what='a JSON object, e.g. {"openai:gpt-4o-mini": {"input_mtok": 0.15, '
                                   '"output_mtok": 0.6}}') or {})
    try:
        Pricer(prices)  # the one place that knows what a price override may hold
    except ValueError as exc:
        raise PriceConfigError(f"{exc} (in [prices] or CHAT_PRICES; USD per million tokens).") from None
    return {str(k): dict(v) for k, v in prices.items()}
