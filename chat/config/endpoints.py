"""The providers a chat can use: OpenAI and Anthropic (keys, base URLs and pinned models from the SDKs'
own variables or [models]), and named OpenAI-compatible servers ([endpoints.NAME] / CHAT_ENDPOINTS)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chat.config.errors import ConfigError
from chat.config.values import NAME, base_url, check_fields, json_object, lookup, model_names, number, text

DEFAULT_OPENAI_MODELS = ("gpt-5-mini", "gpt-5", "gpt-4.1-mini", "gpt-4o-mini", "gpt-4o")
DEFAULT_ANTHROPIC_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1")
BUILTIN_PROVIDERS = ("openai", "anthropic")
_ENDPOINT_FIELDS = ("base_url", "api_key", "models", "context_window", "label")


@dataclass(frozen=True)
class Endpoint:
    """A configured provider: openai, anthropic, or a named OpenAI-compatible server."""

    name: str
    kind: str  # "openai" or "anthropic" (the wire format)
    label: str
    models: tuple[str, ...]
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None
    context_window: int | None = None

    @property
    def configured(self) -> bool:
        # Named OpenAI-compatible servers (Ollama, vLLM) often need no key; the built-in ones do.
        return bool(self.api_key) or (self.name not in BUILTIN_PROVIDERS and bool(self.base_url))

    def model_ids(self) -> list[str]:
        return [f"{self.name}:{m}" for m in self.models]


def endpoints_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> tuple[Endpoint, ...]:
    """OpenAI, Anthropic, then every named server, in the order configured."""
    models_table = secrets.get("models") or {}
    if not isinstance(models_table, Mapping):
        raise ConfigError(f"[models] in secrets.toml must be a table (openai = [...], anthropic = [...]), "
                          f"not {models_table!r}.")

    def models(key: str, provider: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = lookup(env, secrets, key)
        if value is not None:
            return model_names(key, value, default)
        return model_names(f"[models] {provider}", models_table.get(provider), default)

    def builtin(name: str, label: str, default: tuple[str, ...]) -> Endpoint:
        prefix = name.upper()  # the SDK's own variables: OPENAI_API_KEY, ANTHROPIC_BASE_URL, ...
        return Endpoint(
            name=name, kind=name, label=label,
            api_key=text(f"{prefix}_API_KEY", lookup(env, secrets, f"{prefix}_API_KEY")),
            base_url=base_url(f"{prefix}_BASE_URL", lookup(env, secrets, f"{prefix}_BASE_URL")),
            models=models(f"{prefix}_MODELS", name, default),
        )

    endpoints = [builtin("openai", "OpenAI", DEFAULT_OPENAI_MODELS),
                 builtin("anthropic", "Anthropic", DEFAULT_ANTHROPIC_MODELS)]
    return tuple(endpoints + [_endpoint(name, spec) for name, spec in _named_servers(env, secrets).items()])


def _endpoint(name: Any, spec: Any) -> Endpoint:
    name = str(name).lower()
    if name in BUILTIN_PROVIDERS or not NAME.match(name):
        raise ConfigError(f"Endpoint name {name!r} is reserved or invalid; use letters, digits, - _ .")
    where = f"Endpoint {name!r}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a table ([endpoints.{name}] with base_url and models), not {spec!r}.")
    check_fields(where, spec, _ENDPOINT_FIELDS)
    if not spec.get("base_url"):
        raise ConfigError(f"{where} needs a base_url, e.g. http://localhost:11434/v1.")
    models = model_names(f"{where}: models", spec.get("models"), ())
    if not models:
        raise ConfigError(f"{where} needs a list of models.")
    window = spec.get("context_window")
    if window is not None:
        window = int(number(f"{where}: context_window", window, default=0, minimum=0, above=True,
                            integer=True, hint=" (tokens)"))
    label = text(f"{where}: label", spec.get("label"))
    return Endpoint(name=name, kind="openai", label=label or name,
                    api_key=text(f"{where}: api_key", spec.get("api_key")) or None,
                    base_url=base_url(f"{where}: base_url", spec["base_url"]), models=models,
                    context_window=window)


def _named_servers(env: Mapping[str, str], secrets: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    table = secrets.get("endpoints") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("[endpoints] in secrets.toml must be a table of named servers.")
    found.update(table)
    found.update(json_object(env, "CHAT_ENDPOINTS", what="a JSON object of named servers") or {})
    return found
