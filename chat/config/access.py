"""Who may use the app and how much: the identity mode (CHAT_AUTH) and the trusted proxy's header, the
analysts who see everyone's chats, and the per-user daily spending limit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chat.config.errors import ConfigError
from chat.config.values import lookup, number, text


@dataclass(frozen=True)
class Access:
    auth_mode: str
    auth_header: str
    analysts: frozenset[str]
    daily_limit_usd: float | None


def access_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> Access:
    auth_mode = text("CHAT_AUTH", lookup(env, secrets, "CHAT_AUTH")) or "none"
    auth_mode = auth_mode.strip().lower()
    if auth_mode not in ("none", "header", "oidc"):
        raise ConfigError(f"CHAT_AUTH must be none, header or oidc, not {auth_mode!r}.")
    auth_header = (text("CHAT_AUTH_HEADER", lookup(env, secrets, "CHAT_AUTH_HEADER")) or "X-Forwarded-Email").strip()
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", auth_header):
        raise ConfigError(f"CHAT_AUTH_HEADER must be a header name such as X-Forwarded-Email, not {auth_header!r}.")
    analysts = lookup(env, secrets, "CHAT_ANALYSTS") or ()
    if isinstance(analysts, str):
        analysts = analysts.split(",")
    if not isinstance(analysts, list | tuple) or not all(isinstance(a, str) for a in analysts):
        raise ConfigError("CHAT_ANALYSTS must be comma-separated text (\"ann@x.com,bob@x.com\") or a list of "
                          f"text, not {analysts!r}.")
    limit = lookup(env, secrets, "CHAT_DAILY_LIMIT_USD")
    daily_limit = None if limit is None else number(
        "CHAT_DAILY_LIMIT_USD", limit, default=0, minimum=0, above=True,
        hint=" (USD per user per day; leave it unset for no limit)")
    return Access(auth_mode=auth_mode, auth_header=auth_header,
                  analysts=frozenset(a.strip().lower() for a in analysts if a.strip()), daily_limit_usd=daily_limit)
