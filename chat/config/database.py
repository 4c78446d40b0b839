"""Where conversations are stored: CHAT_DB (environment, then secrets), else [database] (``url`` or
``path``, and ``pool_size``), else ./chat.db. A postgresql:// URL is PostgreSQL; anything else a SQLite
file path; a URL of any other scheme is refused rather than taken for a file name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chat.config.errors import ConfigError
from chat.config.values import check_fields, lookup, number, text

_DATABASE_FIELDS = ("url", "path", "pool_size")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database (``postgresql://...`` or ``postgres://...``); anything
    else the store is given is a SQLite file path."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def database_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> tuple[Path | str, int]:
    """The store's target and its pool size: CHAT_DB (environment, then secrets), else [database], else
    ./chat.db. A URL is PostgreSQL; anything else a SQLite path."""
    table = secrets.get("database")
    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise ConfigError("[database] in secrets.toml must be a table, e.g. [database] with "
                          'url = "postgresql://user:password@host/dbname" (or path = "chat.db").')
    check_fields("[database]", table, _DATABASE_FIELDS)
    url = text("[database] url", table.get("url") or None)
    path = text("[database] path", table.get("path") or None)
    if url and path:
        raise ConfigError("[database] takes a url (PostgreSQL) or a path (SQLite), not both.")
    pool_size = int(number("[database] pool_size", table.get("pool_size"), default=10, minimum=1, integer=True,
                           hint=" (connections per app process)"))
    value = text("CHAT_DB", lookup(env, secrets, "CHAT_DB"))
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


def _database_url(key: str, url: str) -> str:
    url = url.strip()
    if not is_postgres_url(url):
        raise ConfigError(f"{key} must be a file path or a postgresql:// URL (e.g. postgresql://chat:secret@db:5432/"
                          f"chat); {url.split('://')[0]}:// is not a database this app can use.")
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: the URL does not parse
        problem = str(exc).strip().replace(url, "the URL")
        raise ConfigError(f"{key} is not a valid postgresql:// URL ({problem}).") from None
    return url
