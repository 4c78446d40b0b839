"""Reading `.streamlit/secrets.toml`: a missing file is fine (the environment alone configures the app); a
file that exists but cannot be read or parsed stops the app, naming the file and, for a syntax error, the
line and column."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from chat.config.errors import ConfigError

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
