"""One setting's value, read and checked: the environment wins over secrets; a value of the wrong type or
out of range raises ConfigError naming the setting and saying what it takes."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from chat.config.errors import ConfigError

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")  # a named endpoint's or MCP server's name


def lookup(env: Mapping[str, str], secrets: Mapping[str, Any], key: str) -> Any:
    """``key`` from the environment, else from secrets (as written, or in lower case); None when unset or
    empty."""
    value = env.get(key)
    if value not in (None, ""):
        return value
    value = secrets.get(key)
    if value in (None, ""):
        value = secrets.get(key.lower())
    return value if value not in (None, "") else None


def text(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be text, not {value!r}; write it in quotes.")
    return value


def model_names(key: str, value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of model names, from comma-separated text or a list."""
    if value is None:
        return default
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(m, str) for m in value):
        raise ConfigError(f"{key} must be a list of model names, e.g. [\"gpt-4o-mini\", \"gpt-4o\"], "
                          f"not {value!r}.")
    return tuple(m.strip() for m in value if m.strip())


def base_url(key: str, value: Any) -> str | None:
    url = text(key, value)
    if url is None:
        return None
    if not re.match(r"^https?://[^/\s]+", url.strip()):
        raise ConfigError(f"{key} must be an http:// or https:// address, e.g. http://localhost:11434/v1, "
                          f"not {url!r}.")
    return url.strip()


def number(key: str, value: Any, *, default: float, minimum: float, above: bool = False,
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
        figure = float(value)
    except ValueError:
        raise ConfigError(what) from None
    if not math.isfinite(figure) or figure < minimum or (above and figure == minimum):
        raise ConfigError(what)
    if integer and not figure.is_integer():
        raise ConfigError(what)
    return figure


def check_fields(where: str, spec: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    """Refuse a table with a field it does not take (a typo would otherwise be ignored)."""
    unknown = sorted(set(spec) - set(fields))
    if unknown:
        raise ConfigError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"it takes {', '.join(fields)}.")


def json_object(env: Mapping[str, str], key: str, *, what: str, show_value: bool = False,
                error: type[ConfigError] = ConfigError) -> dict[str, Any] | None:
    """The JSON object in the environment variable ``key``; None when it is unset or empty. Not JSON, or
    not an object: ``error`` saying ``key`` must be ``what`` (with the value read, when ``show_value``)."""
    raw = env.get(key)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise error(f"{key} is not valid JSON: {exc.msg}.") from None
    if not isinstance(data, dict):
        raise error(f"{key} must be {what}" + (f", not {data!r}." if show_value else "."))
    return data
