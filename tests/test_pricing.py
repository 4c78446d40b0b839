"""Costs from genai-prices and configured overrides, and how figures are shown."""

from __future__ import annotations

import genai_prices
import pytest

from chat import tokens
from chat.display import format_cost, format_tokens
from chat.pricing import Cost, Pricer
from chat.providers.base import Message, Usage


def genai_prices_total(model: str, provider_id: str, usage: Usage) -> float:
    """The figure straight from genai-prices, whose input_tokens include the cache tokens."""
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    calc = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=usage.input_tokens + cached, output_tokens=usage.output_tokens,
                           cache_read_tokens=usage.cache_read_tokens,
                           cache_write_tokens=usage.cache_write_tokens),
        model, provider_id=provider_id)
    return float(calc.total_price)


# ---------------------------------------------------------------- genai-prices


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "gpt-4o"), ("openai", "gpt-4.1-mini"), ("anthropic", "claude-sonnet-4-5"),
     ("anthropic", "claude-3-5-haiku-latest")],
)
def test_known_models_cost_what_genai_prices_says(provider, model):
    usage = Usage(input_tokens=1200, output_tokens=340, cache_read_tokens=5000, cache_write_tokens=800)

    cost = Pricer().cost(provider, model, usage)

    assert cost == Cost(pytest.approx(genai_prices_total(model, provider, usage)), "genai-prices")
    assert Pricer().price_known(provider, model)


def test_gpt_4o_costs_its_published_price_per_million_tokens():
    # $2.50 per million input tokens, $10 per million output, $1.25 per million cached input
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert Pricer().cost("openai", "gpt-4o", usage).usd == pytest.approx(1000 * 2.5e-6 + 500 * 10e-6)

    cached = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=2000)
    assert Pricer().cost("openai", "gpt-4o", cached).usd == pytest.approx(0.0075 + 2000 * 1.25e-6)


def test_claude_opus_4_1_costs_its_published_prices_including_cache_reads_and_writes():
    # $15 input, $75 output, $1.50 cache reads, $18.75 cache writes (5 minutes), per million tokens
    usage = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=2000, cache_write_tokens=500)
    expected = 1000 * 15e-6 + 100 * 75e-6 + 2000 * 1.5e-6 + 500 * 18.75e-6
    assert Pricer().cost("anthropic", "claude-opus-4-1", usage).usd == pytest.approx(expected)


def test_cache_reads_are_priced_and_cheaper_than_fresh_input():
    pricer = Pricer()
    fresh = pricer.cost("anthropic", "claude-sonnet-4-5", Usage(input_tokens=10_000, output_tokens=0)).usd
    read = pricer.cost("anthropic", "claude-sonnet-4-5",
                       Usage(input_tokens=0, output_tokens=0, cache_read_tokens=10_000)).usd
    written = pricer.cost("anthropic", "claude-sonnet-4-5",
                          Usage(input_tokens=0, output_tokens=0, cache_write_tokens=10_000)).usd
    assert 0 < read < fresh < written


def test_an_unknown_model_has_an_unknown_cost_not_zero():
    cost = Pricer().cost("openai", "gpt-nonexistent-9000", Usage(input_tokens=10, output_tokens=10))
    assert cost == Cost(None, "unknown")
    assert not cost.known
    assert not Pricer().price_known("openai", "gpt-nonexistent-9000")


def test_a_custom_endpoint_has_an_unknown_cost_even_for_a_well_known_model_name():
    usage = Usage(input_tokens=10, output_tokens=10)
    assert Pricer().cost("ollama", "gpt-4o", usage) == Cost(None, "unknown")
    assert not Pricer().price_known("ollama", "gpt-4o")
    assert Pricer().cost("vllm-internal", "llama3.1:8b", usage) == Cost(None, "unknown")


def test_a_usage_with_no_figures_has_an_unknown_cost_and_a_single_missing_one_counts_as_zero():
    pricer = Pricer()
    assert pricer.cost("openai", "gpt-4o", Usage()) == Cost(None, "unknown")
    assert pricer.cost("openai", "gpt-4o", Usage(input_tokens=1000)).usd == pytest.approx(0.0025)
    assert pricer.cost("openai", "gpt-4o", Usage(output_tokens=1000)).usd == pytest.approx(0.01)


def test_a_stopped_reply_is_priced_from_its_estimated_tokens():
    messages = [Message("user", "hello world")]  # 9 prompt tokens in o200k_base
    usage = tokens.fill_missing_usage(Usage(), messages=messages, system=None, reply_text="hello world",
                                      model="gpt-4o")  # 2 output tokens
    cost = Pricer().cost("openai", "gpt-4o", usage)
    assert cost == Cost(pytest.approx(9 * 2.5e-6 + 2 * 10e-6), "genai-prices")
    assert not usage.exact  # the caller shows it as an estimate


# ---------------------------------------------------------------- overrides


def test_an_override_beats_genai_prices():
    pricer = Pricer({"openai:gpt-4o": {"input_mtok": 1, "output_mtok": 2, "cache_read_mtok": 0.5}})
    usage = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=4000)
    assert pricer.cost("openai", "gpt-4o", usage) == Cost(pytest.approx(0.001 + 0.001 + 0.002), "override")
    assert pricer.cost("openai", "gpt-4o-mini", usage).source == "genai-prices"  # other models unaffected


def test_a_custom_endpoint_is_priced_by_its_override():
    pricer = Pricer({"vllm-internal:llama3.1:8b": {"input_mtok": "0.10", "output_mtok": "0.40"}})
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert pricer.cost("vllm-internal", "llama3.1:8b", usage) == Cost(pytest.approx(0.3), "override")
    assert pricer.price_known("vllm-internal", "llama3.1:8b")
    assert not pricer.price_known("vllm-internal", "qwen2.5")


def test_a_wildcard_override_prices_every_model_of_a_provider_and_an_exact_key_beats_it():
    pricer = Pricer({
        "ollama:*": {"input_mtok": 0, "output_mtok": 0},
        "ollama:big-model": {"input_mtok": 1, "output_mtok": 1},
        "openai:*": {"input_mtok": 1, "output_mtok": 1},
    })
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert pricer.cost("ollama", "llama3.1:8b", usage) == Cost(0.0, "override")  # a real $0, not unknown
    assert pricer.cost("ollama", "big-model", usage) == Cost(2.0, "override")
    assert pricer.cost("OpenAI", "gpt-4o", usage) == Cost(2.0, "override")
    assert pricer.price_known("ollama", "anything")


def test_missing_cache_prices_in_an_override_default_to_the_input_price():
    pricer = Pricer({"acme:model": {"input_mtok": 3, "output_mtok": 15}})
    usage = Usage(input_tokens=0, output_tokens=0, cache_read_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert pricer.cost("acme", "model", usage).usd == pytest.approx(6.0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"gpt-4o": {"input_mtok": 1, "output_mtok": 1}},  # no provider
        {"openai:": {"input_mtok": 1, "output_mtok": 1}},  # no model
        {"openai:gpt-4o": {"input_mtok": 1}},  # output price missing
        {"openai:gpt-4o": {"input_mtok": 1, "output_mtok": -1}},
        {"openai:gpt-4o": {"input_mtok": 1, "output_mtok": "cheap"}},
        {"openai:gpt-4o": {"input_mtok": 1, "output_mtok": True}},
        {"openai:gpt-4o": {"input_mtok": 1, "output_mtok": float("nan")}},
        {"openai:gpt-4o": {"input_mtok": 1, "output_mtok": 1, "cache_mtok": 1}},  # typo'd field
        {"openai:gpt-4o": 2.5},
        {"openai:gpt-4o": {"input_mtok": 1, "output_mtok": 1}, "OpenAI:GPT-4o": {"input_mtok": 2, "output_mtok": 2}},
    ],
)
def test_an_invalid_override_is_refused_at_start_up(overrides):
    with pytest.raises(ValueError, match="price override"):
        Pricer(overrides)


# ---------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("usd", "estimated", "shown"),
    [
        (None, False, "cost unknown"),
        (None, True, "cost unknown"),
        (0.0, False, "$0.00"),
        (0.0025, False, "$0.0025"),
        (0.00031, False, "$0.00031"),
        (0.000314159, False, "$0.00031"),
        (0.0000042, True, "≈$0.0000042"),
        (0.00999, False, "$0.01"),
        (0.01, False, "$0.01"),
        (0.25, False, "$0.25"),
        (1.234, False, "$1.23"),
        (1.235, True, "≈$1.24"),
        (1234.5, False, "$1,234.50"),
    ],
)
def test_costs_are_shown_with_two_significant_digits_below_a_cent(usd, estimated, shown):
    assert format_cost(usd, estimated=estimated) == shown


@pytest.mark.parametrize(
    ("n", "estimated", "shown"),
    [(None, False, "unknown"), (0, False, "0"), (999, False, "999"), (1234, False, "1,234"),
     (1234, True, "≈1,234"), (1_234_567, False, "1,234,567")],
)
def test_token_counts_are_shown_with_thousands_separators(n, estimated, shown):
    assert format_tokens(n, estimated=estimated) == shown


def test_what_the_cache_saved_is_the_cost_with_cache_tokens_billed_as_plain_input_less_the_real_cost():
    pricer = Pricer({"anthropic:m": {"input_mtok": 1.0, "output_mtok": 5.0, "cache_read_mtok": 0.1,
                                     "cache_write_mtok": 1.25}})
    assert pricer.cache_saving("anthropic", "m", Usage(100, 10, cache_read_tokens=1_000_000)) == pytest.approx(0.9)
    assert pricer.cache_saving("anthropic", "m", Usage(100, 10, cache_write_tokens=1_000_000)) == pytest.approx(-0.25)
    assert pricer.cache_saving("anthropic", "m", Usage(100, 10)) is None
    assert pricer.cache_saving("other", "m", Usage(100, 10, cache_read_tokens=5)) is None  # no price
