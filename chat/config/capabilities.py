"""What a model can do where its provider does not say ([capabilities."provider:model"] /
CHAT_CAPABILITIES): reasoning effort, thinking, context window, output limit, files it reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chat.config.errors import ConfigError
from chat.config.model_ids import parse_model_id
from chat.config.values import json_object

_CAPABILITY_FIELDS = {"reasoning_effort": bool, "thinking": bool, "thinking_mode": str, "context_window": int,
                      "max_output": int, "efforts": list, "image_input": bool, "pdf_input": bool}


def capabilities_from(env: Mapping[str, str], secrets: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    table = dict(secrets.get("capabilities") or {})
    table.update(json_object(env, "CHAT_CAPABILITIES", what='a JSON object of "provider:model" entries') or {})
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
