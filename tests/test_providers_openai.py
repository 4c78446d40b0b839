"""OpenAIProvider over HTTP: the real openai SDK against the fake provider, over both of its wire formats
(the Responses API, which OpenAI itself is spoken to with, and Chat Completions, for compatible endpoints)."""

import time

import pytest

from chat.providers.base import Message, MissingKey, Params
from chat.providers.openai import OpenAIProvider

HISTORY = [Message("user", "What is 2+2?"), Message("assistant", "4."), Message("user", "And 3+3?")]


@pytest.fixture(scope="module", autouse=True)
def warm_sdk():
    """The SDK builds its Responses event parser on first use (~1 s); the app does it at start-up (preload)."""
    from chat.providers.openai import warm_up

    warm_up()


@pytest.fixture(params=["responses", "chat"])
def provider(request, openai_client):
    return OpenAIProvider("openai", openai_client, api=request.param)


def test_an_openai_reply_streams_the_full_text_and_exact_usage(fake_provider, provider):
    fake_provider.set_scenario(None, words=10, input_tokens=42, output_tokens=10)
    reply = provider.stream("gpt-test", HISTORY)
    chunks = list(reply)
    assert len(chunks) == 10
    assert reply.text == "Echo: And 3+3? lorem ipsum dolor sit amet consectetur adipiscing"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (42, 10)
    assert reply.usage.exact
    assert reply.finish_reason == "stop"
    assert reply.completed and reply.error is None
    assert reply.provider == "OpenAI" and reply.model == "gpt-test"


def test_cached_prompt_tokens_are_taken_out_of_openai_input_tokens(fake_provider, provider):
    fake_provider.set_scenario(None, input_tokens=10, cache_read_tokens=30)  # prompt_tokens = 40
    reply = provider.stream("gpt-test", HISTORY)
    list(reply)
    assert (reply.usage.input_tokens, reply.usage.cache_read_tokens) == (10, 30)


def test_an_openai_reply_without_a_usage_chunk_is_not_exact(fake_provider, provider):
    fake_provider.set_scenario(None, include_usage=False)
    reply = provider.stream("gpt-test", HISTORY)
    list(reply)
    assert reply.completed
    assert reply.usage.input_tokens is None and reply.usage.output_tokens is None
    assert not reply.usage.input_exact and not reply.usage.output_exact


def test_openai_itself_is_spoken_to_over_the_responses_api_and_compatible_endpoints_over_chat_completions(
        openai_client):
    assert OpenAIProvider("openai", openai_client).api == "responses"
    assert OpenAIProvider("ollama", openai_client).api == "chat"


def test_the_responses_request_stores_nothing_and_sends_the_system_prompt_as_instructions(fake_provider,
                                                                                        openai_client):
    list(OpenAIProvider("openai", openai_client).stream("gpt-test", HISTORY, system="Answer in French."))
    body = fake_provider.last_request["body"]
    assert fake_provider.last_request["path"] == "/v1/responses"
    assert body["stream"] is True and body["store"] is False and body["instructions"] == "Answer in French."
    assert body["input"] == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
                             {"role": "user", "content": "And 3+3?"}]
    assert "temperature" not in body and "max_output_tokens" not in body and "reasoning" not in body


def test_the_chat_completions_request_asks_for_usage_and_sends_the_system_prompt_first_and_the_whole_history(
        fake_provider, openai_client):
    provider = OpenAIProvider("openai", openai_client, api="chat")
    list(provider.stream("gpt-test", HISTORY, system="Answer in French."))
    body = fake_provider.last_request["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert "temperature" not in body and "max_tokens" not in body and "max_completion_tokens" not in body


def test_no_system_message_is_sent_without_a_system_prompt(fake_provider, provider):
    list(provider.stream("gpt-test", HISTORY))
    body = fake_provider.last_request["body"]
    assert [m["role"] for m in body.get("messages") or body["input"]] == ["user", "assistant", "user"]
    assert "instructions" not in body


def test_the_responses_api_gets_max_output_tokens_and_a_cut_reply_ends_at_the_output_limit(fake_provider,
                                                                                       openai_client):
    params = Params(temperature=0.2, max_tokens=3)
    reply = OpenAIProvider("openai", openai_client).stream("gpt-test", HISTORY, params=params)
    list(reply)
    body = fake_provider.last_request["body"]
    assert (body["temperature"], body["max_output_tokens"]) == (0.2, 3)
    assert reply.finish_reason == "max_output_tokens" and reply.provider_finished and len(reply.chunks) == 3


def test_openai_gets_max_completion_tokens_and_compatible_endpoints_get_max_tokens(fake_provider,
                                                                                  openai_client):
    params = Params(temperature=0.2, max_tokens=3)
    reply = OpenAIProvider("openai", openai_client, api="chat").stream("gpt-test", HISTORY, params=params)
    list(reply)
    body = fake_provider.last_request["body"]
    assert (body["temperature"], body["max_completion_tokens"]) == (0.2, 3) and "max_tokens" not in body
    assert reply.finish_reason == "length" and len(reply.chunks) == 3

    list(OpenAIProvider("ollama", openai_client).stream("llama3", HISTORY, params=params))
    body = fake_provider.last_request["body"]
    assert body["max_tokens"] == 3 and "max_completion_tokens" not in body


def test_the_openai_request_is_made_on_the_first_iteration_not_when_the_reply_is_created(fake_provider,
                                                                                          provider):
    reply = provider.stream("gpt-test", HISTORY)
    time.sleep(0.02)
    assert fake_provider.requests == []
    next(iter(reply))
    assert len(fake_provider.requests) == 1


def test_a_stopped_openai_reply_closes_the_http_stream(fake_provider, provider):
    fake_provider.set_scenario(None, words=200, tokens_per_second=100)
    reply = provider.stream("gpt-test", HISTORY)
    chunks = iter(reply)
    for _ in range(3):
        next(chunks)
    closed_at = time.monotonic()
    reply.close()
    event = fake_provider.wait_for("disconnect", timeout=0.5)
    assert event["t"] - closed_at < 0.5
    assert event["chunks"] < 20
    assert reply.closed and not reply.completed and reply.error is None
    assert reply.text == "Echo: And 3+3?"
    assert not reply.usage.output_exact  # the usage chunk never came
    assert list(chunks) == []  # the iteration just ends after a close


def test_closing_an_openai_reply_in_a_generators_finally_closes_the_http_stream(fake_provider, provider):
    """How the chat page streams: a generator handed to st.write_stream, closed when the run stops."""
    fake_provider.set_scenario(None, words=200, tokens_per_second=100)
    reply = provider.stream("gpt-test", HISTORY)

    def generator():
        try:
            yield from reply
        finally:
            reply.close()

    gen = generator()
    next(gen), next(gen)
    gen.close()
    event = fake_provider.wait_for("disconnect", timeout=0.5)
    assert event["chunks"] < 20


def test_a_reply_closed_before_it_is_iterated_sends_no_request(fake_provider, provider):
    reply = provider.stream("gpt-test", HISTORY)
    reply.close()
    assert list(reply) == []
    assert fake_provider.requests == []


def test_time_to_first_token_follows_the_servers_first_token_delay(fake_provider, provider):
    fake_provider.set_scenario(None, first_token_delay=0.15, words=3)
    started = time.monotonic()
    reply = provider.stream("gpt-test", HISTORY)
    list(reply)
    elapsed = time.monotonic() - started
    # not before the server sent it, and timed from the request (no speed asserted: the machine may be busy)
    assert 0.15 <= reply.time_to_first_token <= reply.duration <= elapsed


def test_an_openai_reply_cannot_be_iterated_twice(provider):
    reply = provider.stream("gpt-test", HISTORY)
    list(reply)
    with pytest.raises(RuntimeError, match="only once"):
        list(reply)


def test_an_openai_provider_without_a_client_raises_missing_key_on_iteration(fake_provider):
    reply = OpenAIProvider("openai", None).stream("gpt-test", HISTORY)  # created without error
    with pytest.raises(MissingKey) as caught:
        list(reply)
    assert caught.value.provider == "OpenAI" and "OpenAI" in caught.value.hint
    assert reply.error is caught.value
    assert fake_provider.requests == []


def test_a_compatible_endpoint_is_named_by_its_label(fake_provider, openai_client):
    provider = OpenAIProvider("ollama", openai_client, label="Ollama (local)")
    assert provider.name == "ollama"
    reply = provider.stream("llama3", HISTORY)
    list(reply)
    assert reply.provider == "Ollama (local)"
    assert OpenAIProvider("vllm", openai_client).stream("m", HISTORY).provider == "vllm"
