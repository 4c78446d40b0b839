"""AnthropicProvider over HTTP: the real anthropic SDK against the fake provider."""

import time

import pytest

from chat.providers.anthropic import DEFAULT_MAX_TOKENS, AnthropicProvider
from chat.providers.base import Message, MissingKey, Params

HISTORY = [Message("user", "What is 2+2?"), Message("assistant", "4."), Message("user", "And 3+3?")]


@pytest.fixture
def provider(anthropic_client):
    return AnthropicProvider("anthropic", anthropic_client)


def test_an_anthropic_reply_streams_the_full_text_and_exact_usage_with_cache_tokens(fake_provider, provider):
    fake_provider.set_scenario(None, words=10, input_tokens=42, cache_read_tokens=100, cache_write_tokens=7)
    reply = provider.stream("claude-test", HISTORY)
    assert len(list(reply)) == 10
    assert reply.text == "Echo: And 3+3? lorem ipsum dolor sit amet consectetur adipiscing"
    u = reply.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens) == (42, 10, 100, 7)
    assert u.exact
    assert reply.finish_reason == "end_turn"
    assert reply.completed and reply.provider == "Anthropic"


def test_anthropic_output_tokens_are_replaced_by_message_delta_not_added(fake_provider, provider):
    fake_provider.set_scenario(None, words=5, output_tokens=9)  # message_start says 1, message_delta 9
    reply = provider.stream("claude-test", HISTORY)
    list(reply)
    assert reply.usage.output_tokens == 9


def test_the_anthropic_system_prompt_goes_in_the_system_parameter_never_in_the_messages(fake_provider,
                                                                                       provider):
    list(provider.stream("claude-test", HISTORY, system="Answer in French."))
    body = fake_provider.last_request["body"]
    assert body["system"] == "Answer in French."
    assert body["messages"] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert body["stream"] is True


def test_anthropic_gets_a_default_max_tokens_and_never_a_temperature(fake_provider, provider):
    list(provider.stream("claude-test", HISTORY))
    body = fake_provider.last_request["body"]
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert "system" not in body

    # anthropic 2.x speaks API version 2026-10-21, which rejects sampling parameters at any value
    reply = provider.stream("claude-test", HISTORY, params=Params(temperature=0.5, max_tokens=2))
    list(reply)
    body = fake_provider.last_request["body"]
    assert body["max_tokens"] == 2 and "temperature" not in body
    assert fake_provider.last_request["headers"]["anthropic-version"] == "2026-10-21"
    assert reply.finish_reason == "max_tokens" and len(reply.chunks) == 2
    assert provider.supports_temperature is False


def test_a_stopped_anthropic_reply_closes_the_http_stream_and_keeps_exact_input_tokens(fake_provider,
                                                                                       provider):
    fake_provider.set_scenario(None, words=200, tokens_per_second=100, input_tokens=33, cache_read_tokens=4)
    reply = provider.stream("claude-test", HISTORY)
    chunks = iter(reply)
    for _ in range(3):
        next(chunks)
    closed_at = time.monotonic()
    reply.close()
    event = fake_provider.wait_for("disconnect", timeout=0.5)
    assert event["t"] - closed_at < 0.5
    assert event["chunks"] < 20
    assert (reply.usage.input_tokens, reply.usage.input_exact, reply.usage.cache_read_tokens) == (33, True, 4)
    assert reply.usage.output_tokens is None and not reply.usage.output_exact
    assert reply.text == "Echo: And 3+3?" and not reply.completed and reply.error is None


def test_closing_an_anthropic_reply_in_a_generators_finally_closes_the_http_stream(fake_provider, provider):
    fake_provider.set_scenario(None, words=200, tokens_per_second=100)
    reply = provider.stream("claude-test", HISTORY)

    def generator():
        try:
            yield from reply
        finally:
            reply.close()

    gen = generator()
    next(gen)
    gen.close()
    assert fake_provider.wait_for("disconnect", timeout=0.5)["chunks"] < 20


def test_an_anthropic_stream_without_message_delta_leaves_output_inexact(fake_provider, provider):
    fake_provider.set_scenario(None, include_usage=False, input_tokens=12)
    reply = provider.stream("claude-test", HISTORY)
    list(reply)
    assert reply.completed
    assert (reply.usage.input_tokens, reply.usage.input_exact) == (12, True)
    assert reply.usage.output_tokens is None and not reply.usage.output_exact
    assert reply.finish_reason is None


def test_the_anthropic_request_is_made_on_the_first_iteration(fake_provider, provider):
    reply = provider.stream("claude-test", HISTORY)
    assert fake_provider.requests == []
    next(iter(reply))
    assert len(fake_provider.requests) == 1


def test_time_to_first_token_follows_the_first_token_delay_on_anthropic(fake_provider, provider):
    fake_provider.set_scenario(None, first_token_delay=0.15, words=3)
    reply = provider.stream("claude-test", HISTORY)
    list(reply)
    assert 0.15 <= reply.time_to_first_token < 0.4


def test_an_anthropic_reply_cannot_be_iterated_twice(provider):
    reply = provider.stream("claude-test", HISTORY)
    list(reply)
    with pytest.raises(RuntimeError, match="only once"):
        list(reply)


def test_an_anthropic_provider_without_a_client_raises_missing_key(fake_provider):
    reply = AnthropicProvider("anthropic", None).stream("claude-test", HISTORY)
    with pytest.raises(MissingKey) as caught:
        list(reply)
    assert caught.value.provider == "Anthropic"
    assert fake_provider.requests == []


LONG = "word " * 900  # 4,500 characters: past CACHE_FROM_CHARS
FOLLOW_UP = [Message("user", LONG), Message("assistant", "Noted."), Message("user", "And now?")]


def test_a_long_follow_up_asks_for_automatic_prompt_caching_and_a_short_or_first_turn_does_not(fake_provider,
                                                                                              provider):
    list(provider.stream("claude-test", HISTORY))  # short
    assert "cache_control" not in fake_provider.last_request["body"]
    list(provider.stream("claude-test", [Message("user", LONG)]))  # long, but a first turn
    assert "cache_control" not in fake_provider.last_request["body"]
    list(provider.stream("claude-test", FOLLOW_UP))
    body = fake_provider.last_request["body"]
    assert body["cache_control"] == {"type": "ephemeral"}
    assert [m["content"] for m in body["messages"]] == [LONG, "Noted.", "And now?"]  # the messages unchanged


def test_a_provider_with_caching_off_never_marks_a_request(fake_provider, anthropic_client):
    list(AnthropicProvider("anthropic", anthropic_client, prompt_cache=False).stream("claude-test", FOLLOW_UP))
    assert "cache_control" not in fake_provider.last_request["body"]


def test_the_next_turn_reads_the_prefix_the_previous_one_wrote(fake_provider, provider):
    first = provider.stream("claude-test", FOLLOW_UP)
    list(first)
    assert (first.usage.cache_read_tokens, first.usage.cache_write_tokens) == (0, 903)  # 900 + 1 + 2 words
    second = provider.stream("claude-test", [*FOLLOW_UP, Message("assistant", first.text),
                                             Message("user", "Last one")])
    list(second)
    u = second.usage
    assert u.cache_read_tokens == 903 and u.cache_write_tokens == len(first.text.split()) + 2
    assert u.input_tokens == 0  # everything up to the new mark was read or written
