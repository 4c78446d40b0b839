"""The app's settings as one frozen value (:class:`Settings`), and :func:`load_settings`, which reads every
setting from the environment and the secrets mapping (the UI hands in ``st.secrets`` as a plain mapping)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chat.config.access import access_from
from chat.config.capabilities import capabilities_from
from chat.config.database import database_from
from chat.config.endpoints import Endpoint, endpoints_from
from chat.config.errors import ConfigError
from chat.config.mcp import McpServer, mcp_servers_from
from chat.config.model_ids import parse_model_id
from chat.config.prices import prices_from
from chat.config.values import lookup, model_names, number, text


@dataclass(frozen=True)
class Settings:
    endpoints: tuple[Endpoint, ...]
    database: Path | str  # a SQLite file path, or a postgresql:// URL (see chat.store.open_store)
    default_model: str | None
    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    timeout: float = 60.0
    max_retries: int = 2
    max_retry_wait: float = 10.0
    auth_mode: str = "none"
    auth_header: str = "X-Forwarded-Email"
    analysts: frozenset[str] = frozenset()
    daily_limit_usd: float | None = None
    database_pool_size: int = 10
    first_token_timeout: float = 600.0
    hidden_models: tuple[str, ...] = ()
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)
    mcp_servers: tuple[McpServer, ...] = ()
    tool_steps: int = 10
    attach_max_file_mb: float = 20.0
    attach_max_message_mb: float = 30.0

    def mcp_server(self, name: str) -> McpServer | None:
        return next((s for s in self.mcp_servers if s.name == name), None)

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


def load_settings(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None,
                  ) -> Settings:
    """Every setting, read and checked (see chat/config/__init__.py for the names); ConfigError on the
    first malformed one."""
    env = os.environ if env is None else env
    secrets = secrets or {}

    def setting(key: str) -> Any:
        return lookup(env, secrets, key)

    endpoints = endpoints_from(env, secrets)
    prices = prices_from(env, secrets)
    access = access_from(env, secrets)
    default_model = text("CHAT_DEFAULT_MODEL", setting("CHAT_DEFAULT_MODEL"))
    if default_model:
        parse_model_id(default_model)  # fail early and clearly on a malformed id
    database, pool_size = database_from(env, secrets)
    return Settings(
        endpoints=endpoints,
        database=database,
        database_pool_size=pool_size,
        default_model=default_model,
        prices=prices,
        timeout=number("CHAT_TIMEOUT", setting("CHAT_TIMEOUT"), default=60.0, minimum=0, above=True,
                       hint=" (seconds)"),
        first_token_timeout=number("CHAT_FIRST_TOKEN_TIMEOUT", setting("CHAT_FIRST_TOKEN_TIMEOUT"), default=600.0,
                                   minimum=0, above=True, hint=" (seconds)"),
        hidden_models=tuple(m.strip() for m in model_names("CHAT_HIDE_MODELS", setting("CHAT_HIDE_MODELS"), ())
                            if m.strip()),
        capabilities=capabilities_from(env, secrets),
        max_retries=int(number("CHAT_MAX_RETRIES", setting("CHAT_MAX_RETRIES"), default=2, minimum=0,
                               integer=True)),
        max_retry_wait=number("CHAT_MAX_RETRY_WAIT", setting("CHAT_MAX_RETRY_WAIT"), default=10.0, minimum=0,
                              hint=" (seconds)"),
        auth_mode=access.auth_mode,
        auth_header=access.auth_header,
        analysts=access.analysts,
        daily_limit_usd=access.daily_limit_usd,
        mcp_servers=mcp_servers_from(secrets),
        tool_steps=int(number("CHAT_TOOL_STEPS", setting("CHAT_TOOL_STEPS"), default=10, minimum=1, integer=True,
                              hint=" (model calls per reply)")),
        attach_max_file_mb=number("CHAT_ATTACH_MAX_FILE_MB", setting("CHAT_ATTACH_MAX_FILE_MB"), default=20.0,
                                  minimum=0, above=True, hint=" (MB)"),
        attach_max_message_mb=number("CHAT_ATTACH_MAX_MESSAGE_MB", setting("CHAT_ATTACH_MAX_MESSAGE_MB"),
                                     default=30.0, minimum=0, above=True, hint=" (MB)"),
    )
