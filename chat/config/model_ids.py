"""Model ids: always ``provider:model``, parsed in this one place. The model part may contain colons
(``ollama:qwen2.5:7b``)."""

from __future__ import annotations

from dataclasses import dataclass

from chat.config.errors import ConfigError


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
