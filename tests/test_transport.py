"""Pre-stream retries through the clients the app builds: counted, and bounded by the longest wait."""

from __future__ import annotations

import time

import pytest

from chat.config import Endpoint
from chat.providers import Message, RateLimited, build_provider


def provider_for(fake_provider, kind: str, **kwargs):
    base = fake_provider.url + ("/v1" if kind == "openai" else "")
    endpoint = Endpoint(name=kind, kind=kind, label=kind.title(), models=("m",), api_key="test-key", base_url=base)
    return build_provider(endpoint, timeout=5, **kwargs)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("knobs", [{"status": 503}, {"status": 502, "error_html": True}], ids=["503", "502-page"])
def test_a_retry_before_streaming_is_counted_on_the_reply(fake_provider, kind, knobs):
    fake_provider.set_scenario(None, fail_times=1, retry_after="0", **knobs)
    reply = provider_for(fake_provider, kind, max_retries=2).stream("m", [Message("user", "hi")])
    assert "".join(reply).startswith("Echo: hi")
    assert reply.attempts == 2 and reply.failed_attempts == 1  # what the page's "retrying…" reads


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_each_attempt_of_a_call_reaches_its_callback_and_the_callbacks_key_never_leaves(fake_provider, kind):
    import anthropic
    import httpx2
    import openai

    from chat.providers import transport

    sdk = openai if kind == "openai" else anthropic
    http = transport.http_client(sdk, timeout=httpx2.Timeout(5.0), max_retry_wait=5)
    base = fake_provider.url + ("/v1" if kind == "openai" else "")
    client = (openai.OpenAI if kind == "openai" else anthropic.Anthropic)(
        api_key="test-key", base_url=base, max_retries=2, http_client=http)
    fake_provider.set_scenario(None, status=524, error_html=True, fail_times=1, retry_after="0")
    seen: list[int | None] = []
    with transport.reporting_to(seen.append) as headers:
        if kind == "openai":
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                           extra_headers=headers)
        else:
            client.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                                   extra_headers=headers)
    assert seen == [None, 524, None]  # sent, a gateway page the SDK retries, sent again
    requests = fake_provider.events("request")
    assert len(requests) == 2
    assert not any(name.startswith("x-chat") for r in requests for name in r["headers"])
    client.models.list()  # a call made without the headers reports to no one
    assert seen == [None, 524, None]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_long_retry_after_fails_at_once_instead_of_waiting_silently(fake_provider, kind):
    fake_provider.set_scenario(None, status=429, retry_after="30")
    reply = provider_for(fake_provider, kind, max_retries=2, max_retry_wait=5).stream("m", [Message("user", "hi")])
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        list(reply)
    assert time.monotonic() - started < 5
    assert reply.attempts == 1
    assert caught.value.retry_after == pytest.approx(30, abs=1)
    assert "30 s" in caught.value.hint


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_retries_are_bounded_by_the_configured_count(fake_provider, kind):
    fake_provider.set_scenario(None, status=503, retry_after="0")
    reply = provider_for(fake_provider, kind, max_retries=2).stream("m", [Message("user", "hi")])
    with pytest.raises(Exception):  # noqa: B017 - the type is covered in test_provider_errors
        list(reply)
    assert reply.attempts == 3
    assert len(fake_provider.events("request")) == 3


def test_the_temperature_table_matches_what_the_adapters_send():
    from chat.providers import TAKES_TEMPERATURE
    from chat.providers.anthropic import AnthropicProvider
    from chat.providers.openai import OpenAIProvider

    assert TAKES_TEMPERATURE == {"openai": OpenAIProvider.supports_temperature,
                                 "anthropic": AnthropicProvider.supports_temperature}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_no_retry_is_sent_after_the_reply_was_stopped(fake_provider, kind):
    import threading

    fake_provider.set_scenario(None, status=503, retry_after="1")
    reply = provider_for(fake_provider, kind, max_retries=3).stream("m", [Message("user", "hi")])
    worker = threading.Thread(target=lambda: list(reply), daemon=True)
    worker.start()
    fake_provider.wait_for("request", timeout=5)
    reply.close()  # the user pressed Stop while the SDK waits 1 s to retry
    worker.join(10)
    assert not worker.is_alive()
    assert len(fake_provider.events("request")) == 1
