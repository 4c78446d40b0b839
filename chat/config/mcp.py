"""MCP servers a chat may use ([mcp.NAME], secrets.toml only): a local command over stdio or a
streamable-HTTP url. Their ``env`` and ``headers`` usually hold secrets: never shown, logged or exported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chat.config.errors import ConfigError
from chat.config.values import NAME, base_url, check_fields, number, text

_MCP_FIELDS = ("command", "args", "env", "url", "headers", "trust", "label", "timeout")


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


def mcp_servers_from(secrets: Mapping[str, Any]) -> tuple[McpServer, ...]:
    table = secrets.get("mcp") or {}
    if not isinstance(table, Mapping):
        raise ConfigError("[mcp] in secrets.toml must be a table of named servers ([mcp.NAME]).")
    return tuple(_mcp_server(name, spec) for name, spec in table.items())


def _string_table(where: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where} must be a table of text values, e.g. {{ TOKEN = \"...\" }}.")
    return {str(k): v for k, v in value.items()}


def _mcp_server(name: Any, spec: Any) -> McpServer:
    name = str(name)
    where = f"MCP server {name!r}"
    if not NAME.match(name):
        raise ConfigError(f"{where}: the name may use lower-case letters, digits, - _ .")
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a table ([mcp.{name}] with command or url), not a value.")
    check_fields(where, spec, _MCP_FIELDS)
    command = text(f"{where}: command", spec.get("command"))
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
        name=name, label=text(f"{where}: label", spec.get("label")) or name, command=command, args=tuple(args),
        env=_string_table(f"{where}: env", spec.get("env")),
        url=base_url(f"{where}: url", url) if url is not None else None,
        headers=_string_table(f"{where}: headers", spec.get("headers")), trust=trust,
        timeout=number(f"{where}: timeout", spec.get("timeout"), default=60.0, minimum=0, above=True,
                       hint=" (seconds)"))
