"""Reasoning models end to end: every shape reasoning arrives in, over the real openai and anthropic SDKs and
HTTP to the fake provider, through a Turn into a real SQLite file; the time limits that fit thinking; Stop and
failures while the model thinks; and what the figures line, exports and model picker make of it."""

from __future__ import annotations

import time

import pytest

from chat import turns
from chat.config import ModelId, load_settings
from chat.display import figures_line, thinking_label, tokens_per_second
from chat.history.export import conversation_json, conversation_markdown
from chat.models import Catalog
from chat.pricing import Pricer
from chat.providers import build_providers
from chat.providers.anthropic import AnthropicProvider
from chat.providers.base import Params, Reasoning, StreamError, Timeout
from chat.providers.openai import OpenAIProvider
from chat.providers.think_tags import ThinkTags

THOUGHT = "The user wants a greeting. A short echo will do."


@pytest.fixture
def providers(openai_client, anthropic_client):
    return {"openai": OpenAIProvider("openai", openai_client, label="OpenAI"),
            "vllm": OpenAIProvider("vllm", openai_client, label="vLLM"),
            "anthropic": AnthropicProvider("anthropic", anthropic_client, label="Anthropic")}


MODELS = {"openai": "gpt-5-mini", "vllm": "qwen3", "anthropic": "claude-sonnet-4-5"}


def start(store, providers, name, prompt="hello", *, conversation=None, params=None, **limits):
    conversation = conversation or store.create_conversation(user="alice", settings={})
    settings = turns.TurnSettings(ModelId(name, MODELS[name]), params=params or Params())
    return turns.send(store, providers[name], Pricer(), conversation, prompt, settings, **limits), conversation


def finish(store, turn, conversation):
    try:
        "".join(turn.stream(flush_every=0.0))
    except Exception:
        pass  # a failed turn is recorded on its row
    return store.messages(conversation)[-1]


SHAPES = [
    ("openai", {}),  # the Responses API's reasoning summary
    ("vllm", {"reasoning_shape": "reasoning_content"}),  # DeepSeek, older vLLM
    ("vllm", {"reasoning_shape": "reasoning"}),  # newer vLLM, OpenRouter, Ollama
    ("anthropic", {}),  # thinking blocks
]


@pytest.mark.parametrize(("name", "knobs"), SHAPES, ids=["responses", "reasoning_content", "reasoning", "anthropic"])
def test_each_reasoning_shape_is_stored_apart_from_the_answer_with_its_tokens_and_timing(
        store, providers, fake_provider, name, knobs):
    fake_provider.set_scenario(None, words=5, reasoning=THOUGHT, **knobs)
    turn, conversation = start(store, providers, name)
    row = finish(store, turn, conversation)
    assert row["status"] == "complete"
    assert row["content"] == "Echo: hello lorem ipsum dolor"
    assert row["reasoning"] == THOUGHT
    assert row["reasoning_tokens"] == 10 and row["output_tokens"] == 15 and row["output_exact"]
    assert row["reasoning_ttft"] is not None and row["reasoning_ttft"] <= row["ttft"]
    line = figures_line(row)
    assert "15 out, 10 of them reasoning" in line
    assert "s to first reasoning token" in line and "s to first answer token" in line
    assert thinking_label(row).startswith("Thought for ")


@pytest.mark.parametrize("split", [None, 1, 3, 5], ids=["word chunks", "1 char", "3 chars", "5 chars"])
def test_think_tags_at_the_start_of_the_content_go_to_the_thinking_section_even_split_across_chunks(
        store, providers, fake_provider, split):
    fake_provider.set_scenario(None, words=5, reasoning=THOUGHT, reasoning_shape="think_tags", think_split=split)
    turn, conversation = start(store, providers, "vllm")
    row = finish(store, turn, conversation)
    assert row["content"] == "Echo: hello lorem ipsum dolor"
    assert row["reasoning"] == THOUGHT
    assert "<think" not in row["content"] and "think>" not in row["reasoning"]


def test_a_think_tag_later_in_an_answer_is_text_and_an_unclosed_one_is_reasoning():
    tags = ThinkTags()
    assert tags.feed("Use ") + tags.feed("<think> tags") + tags.flush() == ["Use ", "<think> tags"]
    tags = ThinkTags()
    pieces = tags.feed("  <thi") + tags.feed("nk>still going") + tags.flush()
    assert pieces == ["still going"] and all(isinstance(p, Reasoning) for p in pieces)


def test_anthropic_reasoning_hidden_by_the_provider_is_shown_as_such_and_billed(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=3, redacted_thinking=True)
    turn, conversation = start(store, providers, "anthropic")
    row = finish(store, turn, conversation)
    assert row["content"] == "Echo: hello lorem" and row["reasoning"] is None and row["reasoning_hidden"]
    assert row["reasoning_tokens"] == 12 and row["output_tokens"] == 15
    assert "reasoning hidden by the provider" in conversation_markdown(
        store.get_conversation(conversation), store.messages(conversation))


@pytest.mark.parametrize("name", ["openai", "vllm", "anthropic"])
def test_reasoning_is_not_sent_back_to_the_provider_in_later_turns(store, providers, fake_provider, name):
    fake_provider.set_scenario(None, words=3, reasoning=THOUGHT)
    turn, conversation = start(store, providers, name)
    finish(store, turn, conversation)
    turn, _ = start(store, providers, name, "and again", conversation=conversation)
    finish(store, turn, conversation)
    sent = fake_provider.sent_messages()
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "Echo: hello lorem" and "user wants" not in str(fake_provider.last_request["body"])


# ---------------------------------------------------------------- settings sent


def test_openai_reasoning_models_get_a_streamed_summary_and_the_chosen_effort(store, openai_client, fake_provider):
    cfg = load_settings({"OPENAI_API_KEY": "k"}, {})
    provider = build_providers(cfg)["openai"]
    provider.client = openai_client
    list(provider.stream("gpt-5-mini", [], params=Params(reasoning_effort="low")))
    assert fake_provider.last_request["body"]["reasoning"] == {"summary": "auto", "effort": "low"}
    list(provider.stream("gpt-5-mini", []))
    assert fake_provider.last_request["body"]["reasoning"] == {"summary": "auto"}
    list(provider.stream("gpt-4o-mini", []))
    assert "reasoning" not in fake_provider.last_request["body"]  # gpt-4o does not reason: nothing sent


@pytest.mark.parametrize(("mode", "params", "expected"), [
    (None, Params(thinking="on"), {"thinking": {"type": "adaptive", "display": "summarized"}}),
    ("enabled", Params(thinking="on", max_tokens=1000), {"thinking": {"type": "enabled", "budget_tokens": 1024},
                                                         "max_tokens": 2024}),
    (None, Params(thinking="off", reasoning_effort="high"), {"thinking": {"type": "disabled"},
                                                            "output_config": {"effort": "high"}}),
])
def test_anthropic_thinking_and_effort_are_sent_as_the_model_takes_them(fake_provider, anthropic_client, mode,
                                                                         params, expected):
    provider = AnthropicProvider("anthropic", anthropic_client, thinking_mode=lambda model: mode)
    list(provider.stream("claude-sonnet-4-5", [], params=params))
    body = fake_provider.last_request["body"]
    assert {k: body.get(k) for k in expected} == expected


def test_the_reply_records_the_reasoning_settings_it_was_sent_with(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=3)
    turn, conversation = start(store, providers, "anthropic", params=Params(thinking="on", reasoning_effort="low"))
    row = finish(store, turn, conversation)
    assert row["settings"]["thinking"] == "on" and row["settings"]["reasoning_effort"] == "low"


# ---------------------------------------------------------------- time limits that fit thinking


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_a_silent_thinking_phase_longer_than_chat_timeout_but_within_the_first_output_limit_completes(
        store, providers, fake_provider, name):
    # scaled down: CHAT_TIMEOUT 0.4 s, first-output limit 5 s, 1.5 s of silence before the first token
    fake_provider.set_scenario(None, words=4, first_token_delay=1.5)
    turn, conversation = start(store, providers, name, idle_timeout=0.4, first_output_timeout=5)
    row = finish(store, turn, conversation)
    assert row["status"] == "complete" and row["ttft"] > 0.4


def test_streamed_reasoning_keeps_restarting_the_clock_so_long_thinking_never_times_out(store, providers,
                                                                                        fake_provider):
    # 2 s of thinking, one delta every 0.1 s: longer than both limits, never silent for either
    fake_provider.set_scenario(None, words=3, reasoning=" ".join(["hmm"] * 20), tokens_per_second=10)
    turn, conversation = start(store, providers, "vllm", idle_timeout=0.5, first_output_timeout=1.0)
    row = finish(store, turn, conversation)
    assert row["status"] == "complete" and row["ttft"] > 1.0 and len(row["reasoning"].split()) == 20


def test_a_provider_silent_past_the_first_output_limit_fails_as_timed_out(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=4, first_token_delay=5)
    turn, conversation = start(store, providers, "anthropic", idle_timeout=0.3, first_output_timeout=0.8)
    with pytest.raises(Timeout):
        "".join(turn.stream(flush_every=0.0))
    assert store.messages(conversation)[-1]["status"] == "error"
    fake_provider.wait_for("disconnect", timeout=2)


def test_once_the_answer_flows_chat_timeout_is_the_limit_between_chunks(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=30, reasoning="quick thought", stall_after=5)
    turn, conversation = start(store, providers, "openai", idle_timeout=0.4, first_output_timeout=30)
    with pytest.raises(StreamError, match="no text for"):
        "".join(turn.stream(flush_every=0.0))
    assert store.messages(conversation)[-1]["content"] == "Echo: hello lorem"


# ---------------------------------------------------------------- Stop and failures while thinking


@pytest.mark.parametrize("name", ["openai", "vllm", "anthropic"])
def test_a_stop_while_the_model_thinks_hangs_up_at_once_and_bills_the_reasoning_received(
        store, providers, fake_provider, name):
    fake_provider.set_scenario(None, words=5, reasoning=" ".join(f"step{i}" for i in range(200)),
                               tokens_per_second=50)
    turn, conversation = start(store, providers, name)
    gen = turn.stream(flush_every=0.0)
    while len(turn.reasoning.split()) < 5:
        assert next(gen) == ""  # no answer yet: only news of the reasoning
    closed_at = time.monotonic()
    gen.close()
    disconnect = fake_provider.wait_for("disconnect", timeout=2)
    assert disconnect["during"] == "reasoning" and disconnect["t"] - closed_at < 0.5
    row = store.messages(conversation)[-1]
    assert row["status"] == "stopped" and row["content"] == "" and row["reasoning"].startswith("step0 step1")
    assert row["output_tokens"] >= 5 and not row["output_exact"] and row["reasoning_tokens"] == row["output_tokens"]
    assert row["cost"] != 0 and "≈" in figures_line(row)  # billed (or of unknown price), never $0


def test_a_failure_while_the_model_thinks_is_billed_what_was_generated(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=5, reasoning=THOUGHT, error_after=4)
    turn, conversation = start(store, providers, "anthropic")
    row = finish(store, turn, conversation)
    assert row["status"] == "error" and row["reasoning"] == "The user wants a"
    assert row["output_tokens"] > 0 and row["cost"] > 0


# ---------------------------------------------------------------- what the figures say


def test_speed_counts_every_output_token_over_the_whole_generation_time():
    row = {"output_tokens": 1240, "reasoning_tokens": 980, "output_exact": True, "ttft": 10.0, "duration": 12.0}
    assert tokens_per_second(row) == pytest.approx(1240 / 12.0)  # reasoning unseen: from the start
    assert tokens_per_second(row | {"reasoning_ttft": 2.0}) == pytest.approx(1240 / 10.0)
    assert tokens_per_second({"output_tokens": 100, "ttft": 1.0, "duration": 3.0}) == 50  # no reasoning: as before
    assert "1,240 out, 980 of them reasoning" in figures_line(row | {"model": "gpt-5"})


def test_exports_mark_the_reasoning_as_reasoning(store, providers, fake_provider):
    fake_provider.set_scenario(None, words=3, reasoning=THOUGHT)
    turn, conversation = start(store, providers, "openai")
    finish(store, turn, conversation)
    conv, messages = store.get_conversation(conversation), store.messages(conversation)
    markdown = conversation_markdown(conv, messages)
    assert "**Reasoning** (Thought for " in markdown and f"> {THOUGHT}" in markdown
    assert markdown.index(THOUGHT) < markdown.index("Echo: hello lorem")
    exported = __import__("json").loads(conversation_json(conv, messages))["messages"][1]
    assert exported["reasoning"] == THOUGHT and exported["content"] == "Echo: hello lorem"


# ---------------------------------------------------------------- the model picker


def catalog_for(fake_provider, **env):
    cfg = load_settings({"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake_provider.url + "/v1",
                         "ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": fake_provider.url,
                         "OPENAI_MODELS": "gpt-4o", "ANTHROPIC_MODELS": "claude-opus-4-1", **env}, {})
    built = build_providers(cfg)
    return Catalog(cfg, lambda: built)


def test_the_picker_lists_what_each_endpoint_serves_after_the_configured_models(fake_provider):
    fake_provider.set_scenario(None, models={"openai": ["gpt-5-mini", "text-embedding-3-small", "gpt-4o"],
                                             "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5"]})
    listed = catalog_for(fake_provider, CHAT_HIDE_MODELS="anthropic:claude-sonnet-*").models()
    assert listed == ["openai:gpt-4o", "openai:gpt-5-mini", "anthropic:claude-opus-4-1", "anthropic:claude-haiku-4-5"]
    assert len(fake_provider.events("models")) == 2


def test_a_failing_model_listing_falls_back_to_the_configured_list_and_is_not_asked_again_at_once(fake_provider):
    fake_provider.set_scenario(None, models_status=500)
    catalog = catalog_for(fake_provider, CHAT_DEFAULT_MODEL="anthropic:claude-unlisted")
    assert catalog.models() == ["anthropic:claude-unlisted", "openai:gpt-4o", "anthropic:claude-opus-4-1"]
    assert set(catalog.failures()) == {"openai", "anthropic"}
    catalog.models()
    assert len(fake_provider.events("models")) == 2  # the failure is kept for a while
    fake_provider.set_scenario(None)
    catalog.refresh()
    assert "anthropic:claude-haiku-4-5" in catalog.models() and not catalog.failures()


def test_an_unreachable_endpoint_does_not_hang_the_picker():
    cfg = load_settings({"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://10.255.255.1:9/v1",
                         "OPENAI_MODELS": "gpt-4o"}, {})
    built = build_providers(cfg)
    catalog = Catalog(cfg, lambda: built, timeout=0.3)
    assert catalog.models() == ["openai:gpt-4o"] and "openai" in catalog.failures()


def test_capabilities_come_from_the_provider_then_configuration_then_the_model_name(fake_provider):
    catalog = catalog_for(fake_provider, CHAT_CAPABILITIES='{"openai:my-tuned": {"reasoning_effort": true}}')
    sonnet = catalog.capabilities("anthropic", "claude-sonnet-4-5")
    assert (sonnet.thinking, sonnet.reasoning_effort, sonnet.context_window, sonnet.max_output) == (
        True, True, 200_000, 64_000) and sonnet.thinking_mode == "adaptive" and sonnet.source == "provider"
    assert catalog.capabilities("anthropic", "claude-haiku-4-5").reasoning_effort is False
    assert catalog.capabilities("openai", "my-tuned").reasoning_effort is True
    assert catalog.capabilities("openai", "gpt-5-mini").reasoning_effort is True
    assert catalog.capabilities("openai", "gpt-4o-mini").reasoning_effort is False
    assert catalog.capabilities("openai", "gpt-4o-mini").context_window == 128_000  # genai-prices
    assert catalog.capabilities("openai", "someone-elses").reasoning_effort is None  # unknown: offered, not sent
