"""What a reply cost, from its token usage: configured overrides first, then genai-prices' bundled data.

- genai-prices is used offline: its bundled snapshot only; its updater (``UpdatePrices``) is never started.
  It is imported on first use, off the first paint's path (its import and first lookup are slow: README,
  Performance).
- Only the providers in :data:`GENAI_PRICES_PROVIDERS` are looked up there. A named OpenAI-compatible
  endpoint (Ollama, vLLM, a gateway...) may serve a model with a well-known name at another price, or for
  free: its cost is unknown unless configuration gives an override.
- An unknown price is ``None``, never $0 (chat/display.py words it "cost unknown").

Overrides (negotiated rates, self-hosted models) are keyed ``provider:model``, or ``provider:*`` for every
model of a provider, with USD per million tokens::

    {"openai:gpt-4o": {"input_mtok": 2.0, "output_mtok": 8.0, "cache_read_mtok": 1.0},
     "ollama:*": {"input_mtok": 0, "output_mtok": 0}}

Anthropic's cache writes with a 1-hour lifetime cost more: genai-prices has their rate, and an override's
``cache_write_1h_mtok`` defaults to twice ``input_mtok`` (Anthropic's published multiplier).

``input_mtok`` and ``output_mtok`` are required. ``cache_read_mtok`` and ``cache_write_mtok`` default to
``input_mtok``: a missing discount is billed as plain input, so a cost is never understated by a guess (and
an endpoint with no prompt cache reports no cache tokens anyway). genai-prices does the same for models it
lists without a cache-write price (e.g. OpenAI's). Matching is case-insensitive; the exact key wins over the
wildcard, and any override wins over genai-prices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from chat.usage import Usage

log = logging.getLogger(__name__)

# Our provider names -> genai-prices provider ids. Other providers get no genai-prices lookup.
GENAI_PRICES_PROVIDERS: dict[str, str] = {"openai": "openai", "anthropic": "anthropic"}

SOURCE_GENAI_PRICES = "genai-prices"
SOURCE_OVERRIDE = "override"
SOURCE_UNKNOWN = "unknown"

PRICE_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok")
REQUIRED_PRICE_FIELDS = ("input_mtok", "output_mtok")
WILDCARD = "*"
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Cost:
    """A cost in USD (None when unknown) and where the price came from: "genai-prices", "override" or
    "unknown"."""

    usd: float | None
    source: str

    @property
    def known(self) -> bool:
        return self.usd is not None


UNKNOWN = Cost(None, SOURCE_UNKNOWN)


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal
    cache_write_mtok: Decimal
    cache_write_1h_mtok: Decimal

    @classmethod
    def from_config(cls, key: str, value: Mapping[str, object]) -> Price:
        if not isinstance(value, Mapping):
            raise ValueError(f"price override {key!r}: expected a table of prices, got {value!r}")
        unknown = set(value) - set(PRICE_FIELDS)
        if unknown:
            raise ValueError(f"price override {key!r}: unknown field(s) {', '.join(sorted(unknown))}; "
                             f"expected {', '.join(PRICE_FIELDS)}")
        missing = [f for f in REQUIRED_PRICE_FIELDS if value.get(f) is None]
        if missing:
            raise ValueError(f"price override {key!r}: missing {', '.join(missing)}")
        prices = {f: _decimal(key, f, value[f]) for f in PRICE_FIELDS if value.get(f) is not None}
        prices.setdefault("cache_read_mtok", prices["input_mtok"])
        prices.setdefault("cache_write_mtok", prices["input_mtok"])
        prices.setdefault("cache_write_1h_mtok", 2 * prices["input_mtok"])
        return cls(**prices)

    def cost(self, usage: Usage) -> Decimal:
        return (
            (usage.input_tokens or 0) * self.input_mtok
            + (usage.output_tokens or 0) * self.output_mtok
            + usage.cache_read_tokens * self.cache_read_mtok
            + (usage.cache_write_tokens - usage.cache_write_1h_tokens) * self.cache_write_mtok
            + usage.cache_write_1h_tokens * self.cache_write_1h_mtok
        ) / _MILLION


def _decimal(key: str, field: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError(f"price override {key!r}: {field} must be a number, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"price override {key!r}: {field} must be a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"price override {key!r}: {field} must be a finite number >= 0, got {value!r}")
    return number


def _split_key(key: str) -> tuple[str, str]:
    provider, sep, model = key.strip().partition(":")  # models may contain ":" (ollama's "llama3:8b")
    if not sep or not provider.strip() or not model.strip():
        raise ValueError(f"price override key {key!r}: expected 'provider:model' or 'provider:*'")
    return provider.strip().casefold(), model.strip().casefold()


class Pricer:
    """Prices usage. Immutable after construction, so one instance can be shared by every session.
    Invalid overrides raise ValueError here, at start-up, rather than pricing silently wrong later."""

    def __init__(self, overrides: Mapping[str, Mapping[str, object]] | None = None):
        self._overrides: dict[tuple[str, str], Price] = {}
        for key, value in (overrides or {}).items():
            split = _split_key(key)
            if split in self._overrides:
                raise ValueError(f"price override {key!r} is given twice")
            self._overrides[split] = Price.from_config(key, value)

    def override_for(self, provider: str, model: str) -> Price | None:
        p, m = provider.strip().casefold(), model.strip().casefold()
        return self._overrides.get((p, m)) or self._overrides.get((p, WILDCARD))

    def cost(self, provider: str, model: str, usage: Usage) -> Cost:
        """What ``usage`` cost on ``provider``'s ``model``.

        A None input or output figure counts as 0 when the other is known (e.g. a reply that failed before
        any output); when both are None the cost is unknown. Callers with a stopped or failed reply should
        estimate the missing figures first (``chat.tokens.fill_missing_usage``) and mark the cost estimated.
        """
        if usage.input_tokens is None and usage.output_tokens is None:
            return UNKNOWN
        price = self.override_for(provider, model)
        if price is not None:
            return Cost(float(price.cost(usage)), SOURCE_OVERRIDE)
        provider_id = GENAI_PRICES_PROVIDERS.get(provider.strip().casefold())
        if provider_id is None:
            return UNKNOWN
        total = _genai_prices_total(provider_id, model, usage)
        return UNKNOWN if total is None else Cost(float(total), SOURCE_GENAI_PRICES)

    def cache_saving(self, provider: str, model: str, usage: Usage) -> float | None:
        """What the prompt cache saved on ``usage`` (USD): its cost with every cache read and write billed as
        plain input, less its real cost. Negative when writing the cache cost more than reading it saved;
        None without cache tokens or without a price."""
        if not (usage.cache_read_tokens or usage.cache_write_tokens):
            return None
        plain = Usage(input_tokens=(usage.input_tokens or 0) + usage.cache_read_tokens + usage.cache_write_tokens,
                      output_tokens=usage.output_tokens)
        real, uncached = self.cost(provider, model, usage).usd, self.cost(provider, model, plain).usd
        if real is None or uncached is None:
            return None
        return uncached - real

    def price_known(self, provider: str, model: str) -> bool:
        """Whether :meth:`cost` can price this model (an override, or genai-prices knows it)."""
        if self.override_for(provider, model) is not None:
            return True
        provider_id = GENAI_PRICES_PROVIDERS.get(provider.strip().casefold())
        return provider_id is not None and _genai_prices_total(provider_id, model, Usage(0, 0)) is not None


def _genai_prices_total(provider_id: str, model: str, usage: Usage) -> Decimal | None:
    """genai-prices' total for ``usage``, or None when it does not know the model."""
    import genai_prices  # lazily: off the first paint's path

    cached = usage.cache_read_tokens + usage.cache_write_tokens
    gp_usage = genai_prices.Usage(
        # genai-prices counts cache reads and writes as part of the input; our Usage does not.
        input_tokens=(usage.input_tokens or 0) + cached,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
    )
    try:
        return genai_prices.calc_price(gp_usage, model, provider_id=provider_id).total_price
    except LookupError:
        return None
    except Exception:  # bad data must not break a chat turn: the cost is then shown as unknown
        log.warning("genai-prices failed to price %s:%s", provider_id, model, exc_info=True)
        return None
