"""Settings from the environment and `.streamlit/secrets.toml`.

The UI hands in `st.secrets` as a plain mapping; this module never imports streamlit. The environment
wins over secrets, so an operator can override a file-based value without editing it.

Names other tools rely on:
    OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL   the SDKs' own variables
    CHAT_DB                 where conversations are stored: a SQLite file path (default: ./chat.db), or a
                            postgresql://user:password@host:port/dbname URL (several replicas, one database);
                            or a [database] table in secrets: url = "postgresql://..." or path = "...",
                            and pool_size (connections per app process, PostgreSQL only; default 10)
    CHAT_DEFAULT_MODEL      `provider:model` selected by default
    CHAT_ENDPOINTS          JSON: {"ollama": {"base_url": ..., "api_key": ..., "models": [...]}, ...}
    OPENAI_MODELS, ANTHROPIC_MODELS   comma-separated model lists shown in the picker
    CHAT_TIMEOUT            seconds to wait for the provider between chunks (default 60)
    CHAT_FIRST_TOKEN_TIMEOUT  seconds to wait for a reply's first output while the model thinks (default 600);
                            every reasoning delta restarts this clock
    CHAT_HIDE_MODELS        comma-separated `provider:pattern` (shell wildcards) kept out of the model picker
    CHAT_CAPABILITIES       JSON: {"provider:model": {"reasoning_effort": true, "thinking": false,
                            "context_window": 128000, "max_output": 8192}} where the provider does not say
    CHAT_MAX_RETRIES        retries the SDKs make before streaming starts (default 2)
    CHAT_AUTH               identity mode: none (default), header, oidc (see chat/identity.py)
    CHAT_AUTH_HEADER        the trusted proxy's header in header mode (default X-Forwarded-Email)
    CHAT_ANALYSTS           comma-separated users who see everyone's chats on the History page
    CHAT_DAILY_LIMIT_USD    per-user daily spending limit; a turn past it is refused
    CHAT_MAX_RETRY_WAIT     longest retry-after (s) the SDKs may wait out before a retry (default 10);
                            a longer one fails at once with "wait about N s"
    CHAT_TOOL_STEPS         model calls one reply may make while it uses tools (default 10)
    [mcp.NAME]              an MCP server (secrets.toml only): `command` with `args`/`env` (stdio) or `url`
                            with `headers` (streamable HTTP); `trust = true` runs its tools without asking
    CHAT_ATTACH_MAX_FILE_MB, CHAT_ATTACH_MAX_MESSAGE_MB   attachment limits per file (20) and per message (30)

Configuration fails closed: a secrets file that exists but cannot be read or parsed, or a setting of the
wrong type or out of range, raises ConfigError naming the setting (and for a file, the line), rather than
starting with weaker settings than were written (no identity check, no spending limit).
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
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


class PriceConfigError(ConfigError):
    """A price override ([prices] / CHAT_PRICES) is malformed."""


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
class McpServer:
    """A configured MCP server: a local command spoken to over stdio, or a streamable-HTTP ``url``. ``env`` and
    ``headers`` usually hold secrets: they stay out of ``repr`` and never reach a page, a log or an export."""

    name: str
    label: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)
    trust: bool = False  # run its tools without asking, even those not marked read-only
    timeout: float = 60.0  # seconds one tool call may take

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"


@dataclass(frozen=True)
class Settings:
    endpoints: tuple[Endpoint, ...]
    database: Path | str  # a SQLite file path, or a postgresql:// URL (see chat.store.Store)
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

    @property
    def db_path(self) -> Path | str:
        """The store's target (a file path, or a postgresql:// URL); the older name of ``database``."""
        return self.database

    @property
    def database_label(self) -> str:
        """Where the conversations are, without a password: for messages."""
        if isinstance(self.database, Path):
            return str(self.database)
        from chat.store.postgres import redacted

        return redacted(self.database)

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


# ---------------------------------------------------------------- the secrets file


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def read_secrets(path: str | os.PathLike) -> dict[str, Any] | None:
    """A secrets TOML file as a dict; None when there is no such file (the environment alone is fine).
    A file that exists but cannot be read or parsed raises ConfigError naming the file, and for a syntax
    error the line and column."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror or exc}. Fix its permissions or remove it.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        where = f"line {found[1]}, column {found[2]}" if found else "at the end"
        problem = _TOML_POSITION.sub("", message).replace(" (at end of document)", "")
        raise ConfigError(f"{path}, {where}: {problem}. Fix the file (it is TOML), or remove it to "
                          "configure from the environment only.") from None


# ---------------------------------------------------------------- reading and checking settings


def _lookup(env: Mapping[str, str], secrets: Mapping[str, Any], key: str) -> Any:
    value = env.get(key)
    if value not in (None, ""):
        return value
    value = secrets.get(key)
    if value in (None, ""):
        value = secrets.get(key.lower())
    return value if value not in (None, "") else None


def _text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be text, not {value!r}; write it in quotes.")
    return value


def _models(key: str, value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None:
        return default
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(m, str) for m in value):
        raise ConfigError(f"{key} must be a list of model names, e.g. [\"gpt-4o-mini\", \"gpt-4o\"], "
                          f"not {value!r}.")
    return tuple(m.strip() for m in value if m.strip())


def _base_url(key: str, value: Any) -> str | None:
    url = _text(key, value)
    if url is None:
        return None
    if not re.match(r"^https?://[^/\s]+", url.strip()):
        raise ConfigError(f"{key} must be an http:// or https:// address, e.g. http://localhost:11434/v1, "
                          f"not {url!r}.")
    return url.strip()


def _number(key: str, value: Any, *, default: float, minimum: float, above: bool = False,
            integer: bool = False, hint: str = "") -> float:
    """A finite number >= minimum (> minimum when ``above``), from text or a TOML number."""
    if value is None:
        return default
    bound = f"{'greater than' if above else 'at least'} {minimum:g}"
    kind = "a whole number" if integer else "a number"
    what = f"{key} must be {kind} {bound}{hint}, not {value!r}."
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(what)
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(what) from None
    if not math.isfinite(number) or number < minimum or (above and number == minimum):
        raise ConfigError(what)
    if integer and not number.is_integer():
        raise ConfigError(what)
    return number


_ENDPOINT_FIELDS = ("base_url", "api_key", "models", "context_window", "label")


def _endpoint(name: Any, spec: Any) -> Endpoint:
    name = str(name).lower()
    if name in BUILTIN_PROVIDERS or not _ENDPOINT_NAME.match(name):
        raise ConfigError(f"Endpoint name {name!r} is reserved or invalid; use letters, digits, - _ .")
    where = f"Endpoint {name!r}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a table ([endpoints.{name}] with base_url and models), not {spec!r}.")
    unknown = sorted(set(spec) - set(_ENDPOINT_FIELDS))
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"it takes {', '.join(_ENDPOINT_FIELDS)}.")
    if not spec.get("base_url"):
        raise ConfigError(f"{where} needs a base_url, e.g. http://localhost:11434/v1.")
    models = _models(f"{where}: models", spec.get("models"), ())
    if not models:
        raise ConfigError(f"{where} needs a list of models.")
    window = spec.get("context_window")
    if window is not None:
        window = int(_number(f"{where}: context_window", window, default=0, minimum=0, above=True,
                             integer=True, hint=" (tokens)"))
    label = _text(f"{where}: label", spec.get("label"))
    return Endpoint(name=name, kind="openai", label=label or name,
                    api_key=_text(f"{where}: api_key", spec.get("api_key")) or None,
                    base_url=_base_url(f"{where}: base_url", spec["base_url"]), models=models,
                    context_window=window)


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


def _prices_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    table = secrets.get("prices") or {}
    if not isinstance(table, Mapping):
        raise PriceConfigError("[prices] in secrets.toml must be a table of price overrides, e.g. "
                               '[prices."openai:gpt-4o-mini"] with input_mtok and output_mtok.')
    prices = dict(table)
    raw = env.get("CHAT_PRICES")
    if raw:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PriceConfigError(f"CHAT_PRICES is not valid JSON: {exc.msg}.") from None
        if not isinstance(data, dict):
            raise PriceConfigError('CHAT_PRICES must be a JSON object, e.g. {"openai:gpt-4o-mini": '
                                   '{"input_mtok": 0.15, "output_mtok": 0.6}}, not ' + f"{data!r}.")
        prices.update(data)
    from chat.pricing import Pricer  # here: chat.pricing imports chat.providers, which imports this module

    try:
        Pricer(prices)  # the one place that knows what a price override may hold
    except ValueError as exc:
        raise PriceConfigError(f"{exc} (in [prices] or CHAT_PRICES; USD per million tokens).") from None
    return {str(k): dict(v) for k, v in prices.items()}


_DATABASE_FIELDS = ("url", "path", "pool_size")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _database_url(key: str, url: str) -> str:
    url = url.strip()
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{key} must be a file path or a postgresql:// URL (e.g. postgresql://chat:secret@db:5432/"
                          f"chat); {url.split('://')[0]}:// is not a database this app can use.")
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: the URL does not parse
        problem = str(exc).strip().replace(url, "the URL")
        raise ConfigError(f"{key} is not a valid postgresql:// URL ({problem}).") from None
    return url


def _database(env: Mapping[str, str], secrets: Mapping[str, Any]) -> tuple[Path | str, int]:
    """The store's target and its pool size: CHAT_DB (environment, then secrets), else [database], else
    ./chat.db. A URL is PostgreSQL; anything else a SQLite path."""
    table = secrets.get("database")
    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise ConfigError("[database] in secrets.toml must be a table, e.g. [database] with "
                          'url = "postgresql://user:password@host/dbname" (or path = "chat.db").')
    unknown = sorted(set(table) - set(_DATABASE_FIELDS))
    if unknown:
        raise ConfigError(f"[database] has unknown field(s) {', '.join(map(repr, unknown))}; it takes "
                          f"{', '.join(_DATABASE_FIELDS)}.")
    url = _text("[database] url", table.get("url") or None)
    path = _text("[database] path", table.get("path") or None)
    if url and path:
        raise ConfigError("[database] takes a url (PostgreSQL) or a path (SQLite), not both.")
    pool_size = int(_number("[database] pool_size", table.get("pool_size"), default=10, minimum=1, integer=True,
                            hint=" (connections per app process)"))
    value = _text("CHAT_DB", _lookup(env, secrets, "CHAT_DB"))
    key = "CHAT_DB"
    if value is None:
        value, key = (url, "[database] url") if url else (path, "[database] path")
    if value is None:
        return Path("chat.db"), pool_size
    if _URL_SCHEME.match(value.strip()):
        return _database_url(key, value), pool_size
    if key == "[database] url":
        raise ConfigError(f"[database] url must be a postgresql:// URL, not {value!r}; a file goes in path.")
    return Path(value), pool_size


_CAPABILITY_FIELDS = {"reasoning_effort": bool, "thinking": bool, "thinking_mode": str, "context_window": int,
                      "max_output": int, "efforts": list, "image_input": bool, "pdf_input": bool}


def _capabilities_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    table = dict(secrets.get("capabilities") or {})
    raw = env.get("CHAT_CAPABILITIES")
    if raw:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"CHAT_CAPABILITIES is not valid JSON: {exc.msg}.") from None
        if not isinstance(data, dict):
            raise ConfigError("CHAT_CAPABILITIES must be a JSON object of \"provider:model\" entries.")
        table.update(data)
    out: dict[str, dict[str, Any]] = {}
    for key, spec in table.items():
        parse_model_id(str(key))
        if not isinstance(spec, Mapping):
            raise ConfigError(f"Capabilities of {key!r} must be a table, not {spec!r}.")
        for name, value in spec.items():
            kind = _CAPABILITY_FIELDS.get(name)
            if kind is None:
                raise ConfigError(f"Capabilities of {key!r}: unknown field {name!r}; it takes "
                                  f"{', '.join(_CAPABILITY_FIELDS)}.")
            if not isinstance(value, kind) or (kind is int and (isinstance(value, bool) or value <= 0)):
                raise ConfigError(f"Capabilities of {key!r}: {name} must be {kind.__name__}, not {value!r}.")
        out[str(key)] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    return out


_MCP_FIELDS = ("command", "args", "env", "url", "headers", "trust", "label", "timeout")


def _string_table(where: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where} must be a table of text values, e.g. {{ TOKEN = \"...\" }}.")
    return {str(k): v for k, v in value.items()}


def _mcp_server(name: Any, spec: Any) -> McpServer:
    name = str(name)
    where = f"MCP server {name!r}"
    if not _ENDPOINT_NAME.match(name):
        raise ConfigError(f"{where}: the name may use lower-case letters, digits, - _ .")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a table ([mcp.{name}] with command or url), not a value.")
    unknown = sorted(set(spec) - set(_MCP_FIELDS))
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"it takes {', '.join(_MCP_FIELDS)}.")
    command = _text(f"{where}: command", spec.get("command"))
    url = spec.get("url")
    if bool(command) == bool(url):
        raise ConfigError(f"{where} needs either a command (a local server) or a url (a streamable-HTTP one).")
    args = spec.get("args") or []
    if not isinstance(args, list | tuple) or not all(isinstance(a, str) for a in args):
        raise ConfigError(f"{where}: args must be a list of text, e.g. [\"server.py\"].")
    trust = spec.get("trust", False)
    if not isinstance(trust, bool):
        raise ConfigError(f"{where}: trust must be true or false.")
    if command is None and (spec.get("env") or args):
        raise ConfigError(f"{where}: args and env go with a command, not a url.")
    if command is not None and spec.get("headers"):
        raise ConfigError(f"{where}: headers go with a url, not a command.")
    return McpServer(
        name=name, label=_text(f"{where}: label", spec.get("label")) or name, command=command, args=tuple(args),
        env=_string_table(f"{where}: env", spec.get("env")),
        url=_base_url(f"{where}: url", url) if url is not None else None,
        headers=_string_table(f"{where}: headers", spec.get("headers")), trust=trust,
        timeout=_number(f"{where}: timeout", spec.get("timeout"), default=60.0, minimum=0, above=True,
                        hint=" (seconds)"))


def _mcp_servers_from(secrets: Mapping[str, Any]) -> tuple[McpServer, ...]:
    table = secrets.get("mcp") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("[mcp] in secrets.toml must be a table of named servers ([mcp.NAME]).")
    return tuple(_mcp_server(name, spec) for name, spec in table.items())


def load_settings(env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None,
                  ) -> Settings:
    env = os.environ if env is None else env
    secrets = secrets or {}
    models_table = secrets.get("models") or {}
    if not isinstance(models_table, Mapping):
        raise ConfigError(f"[models] in secrets.toml must be a table (openai = [...], anthropic = [...]), "
                          f"not {models_table!r}.")

    def models(key: str, provider: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = _lookup(env, secrets, key)
        if value is not None:
            return _models(key, value, default)
        return _models(f"[models] {provider}", models_table.get(provider), default)

    endpoints = [
        Endpoint(
            name="openai", kind="openai", label="OpenAI",
            api_key=_text("OPENAI_API_KEY", _lookup(env, secrets, "OPENAI_API_KEY")),
            base_url=_base_url("OPENAI_BASE_URL", _lookup(env, secrets, "OPENAI_BASE_URL")),
            models=models("OPENAI_MODELS", "openai", DEFAULT_OPENAI_MODELS),
        ),
        Endpoint(
            name="anthropic", kind="anthropic", label="Anthropic",
            api_key=_text("ANTHROPIC_API_KEY", _lookup(env, secrets, "ANTHROPIC_API_KEY")),
            base_url=_base_url("ANTHROPIC_BASE_URL", _lookup(env, secrets, "ANTHROPIC_BASE_URL")),
            models=models("ANTHROPIC_MODELS", "anthropic", DEFAULT_ANTHROPIC_MODELS),
        ),
    ]
    endpoints += [_endpoint(name, spec) for name, spec in _endpoints_from(env, secrets).items()]
    prices = _prices_from(env, secrets)

    auth_mode = _text("CHAT_AUTH", _lookup(env, secrets, "CHAT_AUTH")) or "none"
    auth_mode = auth_mode.strip().lower()
    if auth_mode not in ("none", "header", "oidc"):
        raise ConfigError(f"CHAT_AUTH must be none, header or oidc, not {auth_mode!r}.")
    auth_header = (_text("CHAT_AUTH_HEADER", _lookup(env, secrets, "CHAT_AUTH_HEADER")) or "X-Forwarded-Email").strip()
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", auth_header):
        raise ConfigError(f"CHAT_AUTH_HEADER must be a header name such as X-Forwarded-Email, not {auth_header!r}.")
    analysts = _lookup(env, secrets, "CHAT_ANALYSTS") or ()
    if isinstance(analysts, str):
        analysts = analysts.split(",")
    if not isinstance(analysts, list | tuple) or not all(isinstance(a, str) for a in analysts):
        raise ConfigError("CHAT_ANALYSTS must be comma-separated text (\"ann@x.com,bob@x.com\") or a list of "
                          f"text, not {analysts!r}.")
    limit = _lookup(env, secrets, "CHAT_DAILY_LIMIT_USD")
    daily_limit = None if limit is None else _number(
        "CHAT_DAILY_LIMIT_USD", limit, default=0, minimum=0, above=True,
        hint=" (USD per user per day; leave it unset for no limit)")

    default_model = _text("CHAT_DEFAULT_MODEL", _lookup(env, secrets, "CHAT_DEFAULT_MODEL"))
    if default_model:
        parse_model_id(default_model)  # fail early and clearly on a malformed id
    database, pool_size = _database(env, secrets)
    return Settings(
        endpoints=tuple(endpoints),
        database=database,
        database_pool_size=pool_size,
        default_model=default_model,
        prices=prices,
        timeout=_number("CHAT_TIMEOUT", _lookup(env, secrets, "CHAT_TIMEOUT"), default=60.0, minimum=0,
                        above=True, hint=" (seconds)"),
        first_token_timeout=_number("CHAT_FIRST_TOKEN_TIMEOUT", _lookup(env, secrets, "CHAT_FIRST_TOKEN_TIMEOUT"),
                                    default=600.0, minimum=0, above=True, hint=" (seconds)"),
        hidden_models=tuple(m.strip() for m in (_models("CHAT_HIDE_MODELS", _lookup(env, secrets, "CHAT_HIDE_MODELS"),
                                                        ())) if m.strip()),
        capabilities=_capabilities_from(env, secrets),
        max_retries=int(_number("CHAT_MAX_RETRIES", _lookup(env, secrets, "CHAT_MAX_RETRIES"), default=2,
                                minimum=0, integer=True)),
        max_retry_wait=_number("CHAT_MAX_RETRY_WAIT", _lookup(env, secrets, "CHAT_MAX_RETRY_WAIT"), default=10.0,
                               minimum=0, hint=" (seconds)"),
        auth_mode=auth_mode,
        auth_header=auth_header,
        analysts=frozenset(a.strip().lower() for a in analysts if a.strip()),
        daily_limit_usd=daily_limit,
        mcp_servers=_mcp_servers_from(secrets),
        tool_steps=int(_number("CHAT_TOOL_STEPS", _lookup(env, secrets, "CHAT_TOOL_STEPS"), default=10, minimum=1,
                               integer=True, hint=" (model calls per reply)")),
        attach_max_file_mb=_number("CHAT_ATTACH_MAX_FILE_MB", _lookup(env, secrets, "CHAT_ATTACH_MAX_FILE_MB"),
                                   default=20.0, minimum=0, above=True, hint=" (MB)"),
        attach_max_message_mb=_number("CHAT_ATTACH_MAX_MESSAGE_MB",
                                      _lookup(env, secrets, "CHAT_ATTACH_MAX_MESSAGE_MB"), default=30.0, minimum=0,
                                      above=True, hint=" (MB)"),
    )
