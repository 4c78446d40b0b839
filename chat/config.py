"""Settings from the environment and `.streamlit/secrets.toml`.

The UI hands in `st.secrets` as a plain mapping; this module never imports streamlit. The environment
wins over secrets, so an operator can override a file-based value without editing it.

Names other tools rely on:
    OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL   the SDKs' own variables
    CHAT_DB                 path of the SQLite database (default: ./chat.db)
    CHAT_DEFAULT_MODEL      `provider:model` selected by default
    CHAT_ENDPOINTS          JSON: {"ollama": {"base_url": ..., "api_key": ..., "models": [...]}, ...}
    OPENAI_MODELS, ANTHROPIC_MODELS   comma-separated model lists shown in the picker
    CHAT_TIMEOUT            seconds to wait for the provider between chunks (default 60)
    CHAT_MAX_RETRIES        retries the SDKs make before streaming starts (default 2)
    CHAT_AUTH               identity mode: none (default), header, oidc (see chat/identity.py)
    CHAT_AUTH_HEADER        the trusted proxy's header in header mode (default X-Forwarded-Email)
    CHAT_ANALYSTS           comma-separated users who see everyone's chats on the History page
    CHAT_DAILY_LIMIT_USD    per-user daily spending limit; a turn past it is refused
    CHAT_MAX_RETRY_WAIT     longest retry-after (s) the SDKs may wait out before a retry (default 10);
                            a longer one fails at once with "wait about N s"
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_OPENAI_MODELS = ("gpt-5-mini", "gpt-5", "gpt-4.1-mini", "gpt-4o-mini", "gpt-4o")
DEFAULT_ANTHROPIC_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1")
BUILTIN_PROVIDERS = ("openai", "anthropic")
_ENDPOINT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class ConfigError(ValueError):
    """A setting is malformed; the message says which one and how to fix it."""


@dataclass(frozen=True)
class ModelId:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_model_id(value: str) -> ModelId:
    """`provider:model` -> ModelId. The model part may itself contain colons (`ollama:llama3.2:3b`)."""
    provider, sep, model = (value or "").strip().partition(":")
    if not sep or not provider or not model:
        raise ConfigError(f"Model id {value!r} must look like provider:model, e.g. anthropic:claude-haiku-4-5.")
    return ModelId(provider.strip().lower(), model.strip())


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


@dataclass(frozen=True)
class Settings:
    endpoints: tuple[Endpoint, ...]
    db_path: Path
    default_model: str | None
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    timeout: float = 60.0
    max_retries: int = 2
    max_retry_wait: float = 10.0
    auth_mode: str = "none"
    auth_header: str = "X-Forwarded-Email"
    analysts: frozenset[str] = frozenset()
    daily_limit_usd: float | None = None

    def endpoint(self, name: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.name == name), None)

    @property
    def configured(self) -> list[Endpoint]:
        return [e for e in self.endpoints if e.configured]

    def available_models(self) -> list[str]:
        return [mid for e in self.configured for mid in e.model_ids()]

    def initial_model(self) -> str | None:
        """The model selected by default: CHAT_DEFAULT_MODEL when it is available, else the first one."""
        available = self.available_models()
        if self.default_model in available:
            return self.default_model
        if self.default_model:
            try:
                mid = parse_model_id(self.default_model)
            except ConfigError:
                mid = None
            ep = self.endpoint(mid.provider) if mid else None
            if ep is not None and ep.configured:  # a model the picker does not list is still allowed
                return self.default_model
        return available[0] if available else None


def _lookup(env: Mapping[str, str], secrets: Mapping[str, Any], key: str) -> Any:
    value = env.get(key)
    if value not in (None, ""):
        return value
    value = secrets.get(key)
    if value in (None, ""):
        value = secrets.get(key.lower())
    return value if value not in (None, "") else None


def _models(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if isinstance(value, str):
        value = value.split(",")
    return tuple(m.strip() for m in value if str(m).strip())


def _endpoints_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    table = secrets.get("endpoints") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("[endpoints] in secrets.toml must be a table of named servers.")
    found.update(table)
    raw = env.get("CHAT_ENDPOINTS")
    if raw:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"CHAT_ENDPOINTS is not valid JSON: {exc.msg}.") from None
        if not isinstance(data, dict):
            raise ConfigError("CHAT_ENDPOINTS must be a JSON object of named servers.")
        found.update(data)
    return found


def load_settings(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None,
                  ) -> Settings:
    env = os.environ if env is None else env
    secrets = secrets or {}
    models_table = secrets.get("models") or {}

    endpoints = [
        Endpoint(
            name="openai", kind="openai", label="OpenAI",
            api_key=_lookup(env, secrets, "OPENAI_API_KEY"),
            base_url=_lookup(env, secrets, "OPENAI_BASE_URL"),
            models=_models(_lookup(env, secrets, "OPENAI_MODELS") or models_table.get("openai"),
                           DEFAULT_OPENAI_MODELS),
        ),
        Endpoint(
            name="anthropic", kind="anthropic", label="Anthropic",
            api_key=_lookup(env, secrets, "ANTHROPIC_API_KEY"),
            base_url=_lookup(env, secrets, "ANTHROPIC_BASE_URL"),
            models=_models(_lookup(env, secrets, "ANTHROPIC_MODELS") or models_table.get("anthropic"),
                           DEFAULT_ANTHROPIC_MODELS),
        ),
    ]
    for name, spec in _endpoints_from(env, secrets).items():
        name = str(name).lower()
        if name in BUILTIN_PROVIDERS or not _ENDPOINT_NAME.match(name):
            raise ConfigError(f"Endpoint name {name!r} is reserved or invalid; use letters, digits, - _ .")
        if not isinstance(spec, Mapping) or not spec.get("base_url"):
            raise ConfigError(f"Endpoint {name!r} needs a base_url, e.g. http://localhost:11434/v1.")
        models = _models(spec.get("models"), ())
        if not models:
            raise ConfigError(f"Endpoint {name!r} needs a list of models.")
        window = spec.get("context_window")
        endpoints.append(Endpoint(
            name=name, kind="openai", label=str(spec.get("label") or name),
            api_key=spec.get("api_key") or None, base_url=str(spec["base_url"]), models=models,
            context_window=int(window) if window else None,
        ))

    prices = {str(k): dict(v) for k, v in (secrets.get("prices") or {}).items()}
    raw_prices = env.get("CHAT_PRICES")
    if raw_prices:
        try:
            prices.update(json.loads(raw_prices))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"CHAT_PRICES is not valid JSON: {exc.msg}.") from None

    def number(key: str, default: float) -> float:
        value = _lookup(env, secrets, key)
        if value is None:
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}.") from None

    auth_mode = str(_lookup(env, secrets, "CHAT_AUTH") or "none").strip().lower()
    if auth_mode not in ("none", "header", "oidc"):
        raise ConfigError(f"CHAT_AUTH must be none, header or oidc, not {auth_mode!r}.")
    analysts = _lookup(env, secrets, "CHAT_ANALYSTS") or ()
    if isinstance(analysts, str):
        analysts = analysts.split(",")
    limit = _lookup(env, secrets, "CHAT_DAILY_LIMIT_USD")

    default_model = _lookup(env, secrets, "CHAT_DEFAULT_MODEL")
    if default_model:
        parse_model_id(default_model)  # fail early and clearly on a malformed id
    return Settings(
        endpoints=tuple(endpoints),
        db_path=Path(_lookup(env, secrets, "CHAT_DB") or "chat.db"),
        default_model=default_model,
        prices=prices,
        timeout=number("CHAT_TIMEOUT", 60.0),
        max_retries=int(number("CHAT_MAX_RETRIES", 2)),
        max_retry_wait=number("CHAT_MAX_RETRY_WAIT", 10.0),
        auth_mode=auth_mode,
        auth_header=str(_lookup(env, secrets, "CHAT_AUTH_HEADER") or "X-Forwarded-Email"),
        analysts=frozenset(a.strip().lower() for a in analysts if str(a).strip()),
        daily_limit_usd=number("CHAT_DAILY_LIMIT_USD", 0.0) or None if limit is not None else None,
    )
