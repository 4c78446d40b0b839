"""Provider registry: builds one provider (and its SDK client) per configured endpoint."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from chat.config import Endpoint, Settings
from chat.providers.base import (
    AuthenticationFailed,
    ConnectionLost,
    ContextTooLong,
    Message,
    MissingKey,
    ModelNotFound,
    Overloaded,
    Params,
    PermissionDenied,
    Provider,
    ProviderError,
    RateLimited,
    Reply,
    StreamError,
    Timeout,
    Usage,
)

SDK_IMPORTS = threading.RLock()
"""Held while an SDK (or what a reply needs with it) is imported. Two threads importing one SDK at once can
each find the other's modules half imported (anthropic's client and base client import each other), which
Python answers with an ImportError: a page building a provider and the start-up loading take turns."""

__all__ = [
    "AuthenticationFailed", "ConnectionLost", "ContextTooLong", "Message", "MissingKey", "ModelNotFound",
    "Overloaded", "Params", "PermissionDenied", "Provider", "ProviderError", "RateLimited", "Reply",
    "Providers", "StreamError", "TAKES_TEMPERATURE", "Timeout", "Usage", "build_provider", "build_providers",
    "takes_temperature",
]


# Whether each wire format's adapter sends a temperature (Anthropic's 2026 API fixes it), known without
# importing the SDKs (a test keeps this in step with the adapters' own `supports_temperature`).
TAKES_TEMPERATURE = {"openai": True, "anthropic": False}


def takes_temperature(provider: Provider | Endpoint | None) -> bool:
    """Whether a reply from ``provider`` carries a temperature (Anthropic's current API fixes it). Asked of an
    endpoint, its kind answers (no SDK imported); of a built provider, its adapter's own
    ``supports_temperature`` (a provider that does not say, or none, takes one)."""
    if isinstance(provider, Endpoint):
        return TAKES_TEMPERATURE[provider.kind]
    return getattr(provider, "supports_temperature", True)


def build_provider(endpoint: Endpoint, *, timeout: float = 60.0, max_retries: int = 2,
                   max_retry_wait: float = 10.0, first_token_timeout: float | None = None,
                   settings: Settings | None = None) -> Provider:
    """One provider with its SDK client built once. An endpoint without a key gets no client: its
    replies raise MissingKey instead of the SDK failing at construction.

    The SDK's read timeout is the longer of the two limits (a thinking model may send nothing for minutes);
    the turn enforces ``timeout`` between chunks once the answer flows (``provider.idle_timeout``) and
    ``first_token_timeout`` before it (``provider.first_output_timeout``)."""
    import httpx2  # the transport both SDKs use

    from chat import models
    from chat.providers.transport import http_client

    provider = _build(endpoint, httpx2, http_client, timeout=max(timeout, first_token_timeout or 0),
                      connect=min(10.0, timeout), max_retries=max_retries, max_retry_wait=max_retry_wait)
    provider.idle_timeout = timeout
    provider.first_output_timeout = first_token_timeout or timeout
    if settings is not None:  # what each model can do, as configured or known from its name
        if endpoint.kind == "anthropic":
            provider.thinking_mode = lambda model: models.capabilities(settings, endpoint.name, model).thinking_mode
        else:
            provider.reasons = lambda model: models.capabilities(settings, endpoint.name, model).reasoning_effort
    return provider


def _build(endpoint: Endpoint, httpx2, http_client, *, timeout: float, connect: float, max_retries: int,
           max_retry_wait: float) -> Provider:
    request_timeout = httpx2.Timeout(timeout, connect=connect)
    if endpoint.kind == "anthropic":
        with SDK_IMPORTS:
            import anthropic

            from chat.providers.anthropic import AnthropicProvider

        client = None
        if endpoint.api_key:
            client = anthropic.Anthropic(
                api_key=endpoint.api_key, base_url=endpoint.base_url, timeout=request_timeout,
                max_retries=max_retries,
                http_client=http_client(anthropic, timeout=request_timeout, max_retry_wait=max_retry_wait))
        return AnthropicProvider(name=endpoint.name, client=client, label=endpoint.label)

    with SDK_IMPORTS:
        import openai

        from chat.providers.openai import OpenAIProvider

    client = None
    if endpoint.configured:
        client = openai.OpenAI(
            api_key=endpoint.api_key or "not-needed", base_url=endpoint.base_url, timeout=request_timeout,
            max_retries=max_retries,
            http_client=http_client(openai, timeout=request_timeout, max_retry_wait=max_retry_wait))
    return OpenAIProvider(name=endpoint.name, client=client, label=endpoint.label)


class Providers(Mapping[str, Provider]):
    """The providers by endpoint name, each built on first use (its SDK imported then): a reply waits for
    its own provider's SDK only, and nothing is imported for an endpoint nobody uses. Thread-safe."""

    def __init__(self, names: list[str], build: Callable[[str], Provider]):
        self._build = build
        self._locks = {name: threading.Lock() for name in names}
        self._built: dict[str, Provider] = {}

    def __getitem__(self, name: str) -> Provider:
        built = self._built.get(name)
        if built is not None:
            return built
        with self._locks[name]:  # a KeyError for an unknown name, as a dict would raise
            if name not in self._built:
                self._built[name] = self._build(name)
            return self._built[name]

    def __contains__(self, name: object) -> bool:  # without building it
        return name in self._locks

    def __iter__(self) -> Iterator[str]:
        return iter(self._locks)

    def __len__(self) -> int:
        return len(self._locks)


def build_providers(settings: Settings, *, then: Callable[[str, Provider], None] | None = None) -> Providers:
    """Every configured endpoint's provider, built on first use; ``then(name, provider)`` once each is built."""
    def build(name: str) -> Provider:
        endpoint = settings.endpoint(name)
        provider = build_provider(endpoint, timeout=settings.timeout, max_retries=settings.max_retries,
                                  max_retry_wait=settings.max_retry_wait,
                                  first_token_timeout=settings.first_token_timeout, settings=settings)
        if then is not None:
            then(name, provider)
        return provider

    return Providers([e.name for e in settings.endpoints], build)
