"""Every failure the providers can meet, over HTTP, mapped to the typed errors of chat.providers.base.
Each test runs against both adapters (real SDK clients, fake provider server)."""

import email.utils
import socket
import time

import httpx2
import pytest

from chat.providers.anthropic import AnthropicProvider
from chat.providers.base import (
    AuthenticationFailed,
    ConnectionLost,
    ContextTooLong,
    Message,
    ModelNotFound,
    Overloaded,
    PermissionDenied,
    ProviderError,
    RateLimited,
    StreamError,
    Timeout,
)
from chat.providers.http_errors import redact, retry_after_seconds
from chat.providers.openai import OpenAIProvider

HELLO = [Message("user", "hello there")]
LABELS = {"openai": "OpenAI", "anthropic": "Anthropic"}


@pytest.fixture(params=["openai", "anthropic"])
def kind(request):
    return request.param


@pytest.fixture
def make_provider(kind, make_openai_client, make_anthropic_client):
    """make_provider(**client_options) -> the provider of this test's kind on a fresh SDK client."""

    def make(**client_options):
        if kind == "openai":
            return OpenAIProvider("openai", make_openai_client(**client_options))
        return AnthropicProvider("anthropic", make_anthropic_client(**client_options))

    return make


def fail(provider, model="model-x"):
    """Iterate a reply to its error; return (error, reply)."""
    reply = provider.stream(model, HELLO)
    with pytest.raises(ProviderError) as caught:
        for _ in reply:
            pass
    assert reply.error is caught.value
    return caught.value, reply


@pytest.mark.parametrize(("status", "expected"), [
    (401, AuthenticationFailed),
    (403, PermissionDenied),
    (404, ModelNotFound),
    (429, RateLimited),
    (503, Overloaded),
    (529, Overloaded),
])
def test_an_error_status_before_streaming_maps_to_its_typed_error(fake_provider, make_provider, kind, status,
                                                                  expected):
    fake_provider.set_scenario(None, status=status)
    error, reply = fail(make_provider())
    assert type(error) is expected
    assert error.status == status and error.provider == LABELS[kind]
    assert LABELS[kind] in error.hint
    assert reply.text == "" and not reply.completed


def test_a_500_is_a_plain_provider_error(fake_provider, make_provider):
    fake_provider.set_scenario(None, status=500)
    error, _ = fail(make_provider())
    assert type(error) is ProviderError and error.status == 500


def test_the_context_length_400_is_context_too_long(fake_provider, make_provider):
    fake_provider.set_scenario(None, context_too_long=True)
    error, _ = fail(make_provider())
    assert type(error) is ContextTooLong and error.status == 400


def test_another_400_is_a_provider_error_with_the_apis_message(fake_provider, make_provider):
    fake_provider.set_scenario(None, status=400, error_message="messages: roles must alternate")
    error, _ = fail(make_provider())
    assert type(error) is ProviderError and error.status == 400
    assert "messages: roles must alternate" in error.detail


def test_a_429_carries_retry_after_seconds_from_the_header(fake_provider, make_provider):
    fake_provider.set_scenario(None, status=429, retry_after="7")
    error, _ = fail(make_provider())
    assert type(error) is RateLimited and error.retry_after == 7.0
    assert "about 7 s" in error.hint


def test_a_429_without_retry_after_has_none(fake_provider, make_provider):
    fake_provider.set_scenario(None, status=429)
    error, _ = fail(make_provider())
    assert type(error) is RateLimited and error.retry_after is None


def test_an_openai_429_for_an_exhausted_quota_is_not_a_rate_limit(fake_provider, make_openai_client):
    fake_provider.set_scenario(None, status=429, error_code="insufficient_quota",
                               error_message="You exceeded your current quota.")
    error, _ = fail(OpenAIProvider("openai", make_openai_client()))
    assert type(error) is ProviderError and "quota" in error.detail


def test_a_wrong_key_is_authentication_failed_and_the_key_never_shows(fake_provider, make_provider):
    secret = "sk-live-0123456789abcdef"
    error, _ = fail(make_provider(api_key=secret))
    assert type(error) is AuthenticationFailed
    for text in (error.detail, str(error), error.hint, repr(error.args)):
        assert secret not in text
    assert fake_provider.events("status_error")[0]["status"] == 401


def test_an_error_event_in_the_middle_of_the_stream_is_a_stream_error_keeping_the_partial_text(
        fake_provider, make_provider):
    fake_provider.set_scenario(None, error_after=3)
    error, reply = fail(make_provider())
    assert type(error) is StreamError
    assert reply.text == "Echo: hello there" and reply.chunks == ["Echo:", " hello", " there"]
    assert not reply.completed


def test_an_anthropic_overloaded_event_mid_stream_keeps_overloaded_as_the_cause(fake_provider,
                                                                               make_anthropic_client):
    fake_provider.set_scenario(None, error_after=2, error_type="overloaded_error")
    error, reply = fail(AnthropicProvider("anthropic", make_anthropic_client()))
    assert type(error) is StreamError and type(error.__cause__) is Overloaded
    assert error.__cause__.__cause__.status_code == 200  # the SDK's APIStatusError for an error event
    assert reply.text == "Echo: hello"


@pytest.mark.parametrize(("error_type", "expected"), [
    ("overloaded_error", Overloaded),
    ("rate_limit_error", RateLimited),
    ("api_error", StreamError),
])
def test_an_anthropic_error_event_before_any_text_maps_by_its_type(fake_provider, make_anthropic_client,
                                                                  error_type, expected):
    fake_provider.set_scenario(None, error_after=0, error_type=error_type)
    error, reply = fail(AnthropicProvider("anthropic", make_anthropic_client()))
    assert type(error) is expected and reply.text == ""
    assert reply.usage.input_exact  # message_start came before the error


def test_a_dropped_connection_mid_stream_is_a_stream_error_caused_by_connection_lost(fake_provider,
                                                                                    make_provider):
    fake_provider.set_scenario(None, drop_after=3)
    error, reply = fail(make_provider())
    assert type(error) is StreamError and type(error.__cause__) is ConnectionLost
    assert reply.text == "Echo: hello there"
    assert fake_provider.events("drop")[0]["chunks"] == 3


def test_a_connection_dropped_before_any_text_is_connection_lost(fake_provider, make_provider):
    fake_provider.set_scenario(None, drop_after=0)
    error, _ = fail(make_provider())
    assert type(error) is ConnectionLost


def test_a_stalled_stream_with_a_short_read_timeout_is_a_stream_error_caused_by_timeout(fake_provider,
                                                                                       make_provider):
    fake_provider.set_scenario(None, stall_after=2)
    error, reply = fail(make_provider(timeout=httpx2.Timeout(0.25, connect=2)))
    assert type(error) is StreamError and type(error.__cause__) is Timeout
    assert reply.text == "Echo: hello"
    assert fake_provider.wait_for("disconnect", timeout=1)["chunks"] == 2


def test_a_server_slow_to_answer_is_a_timeout(fake_provider, make_provider):
    fake_provider.set_scenario(None, headers_delay=1)
    error, _ = fail(make_provider(timeout=0.2))
    assert type(error) is Timeout


def test_an_unreachable_server_is_connection_lost(kind, make_openai_client, make_anthropic_client):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    if kind == "openai":
        provider = OpenAIProvider("openai", make_openai_client(base_url=url + "/v1"))
    else:
        provider = AnthropicProvider("anthropic", make_anthropic_client(base_url=url))
    error, _ = fail(provider)
    assert type(error) is ConnectionLost


def test_the_sdk_retries_a_503_before_the_stream_starts(fake_provider, make_provider):
    fake_provider.set_scenario(None, status=503, fail_times=1, retry_after="0.01", words=4)
    reply = make_provider(max_retries=2).stream("model-x", HELLO)
    assert "".join(reply) == "Echo: hello there lorem"
    assert [e["kind"] for e in fake_provider.events() if e["kind"] in ("status_error", "complete")] == [
        "status_error", "complete"]
    assert len(fake_provider.requests) == 2


def test_nothing_retries_once_the_stream_has_started(fake_provider, make_provider):
    fake_provider.set_scenario(None, drop_after=2, retry_after="0.01")
    error, _ = fail(make_provider(max_retries=2))
    assert type(error) is StreamError
    assert len(fake_provider.requests) == 1


def test_a_compatible_endpoints_errors_carry_its_label(fake_provider, make_openai_client):
    fake_provider.set_scenario(None, status=404)
    error, _ = fail(OpenAIProvider("ollama", make_openai_client()))
    assert type(error) is ModelNotFound and error.provider == "ollama"
    assert "ollama does not know this model" in error.hint


def test_an_anthropic_413_request_too_large_is_context_too_long(fake_provider, make_anthropic_client):
    fake_provider.set_scenario(None, status=413)
    error, _ = fail(AnthropicProvider("anthropic", make_anthropic_client()))
    assert type(error) is ContextTooLong and error.status == 413


def test_retry_after_is_read_as_milliseconds_seconds_or_an_http_date():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= retry_after_seconds({"retry-after": in_a_minute}) <= 60
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_key_shaped_strings_are_redacted_even_when_they_are_not_the_clients_key():
    text = "Incorrect API key provided: sk-proj-abc***wxyz. Also sk-ant-api03-secretsecret here."
    assert redact(text) == "Incorrect API key provided: [redacted] Also [redacted] here."
    assert redact("token my-own-key-1234 failed", "my-own-key-1234") == "token [redacted] failed"
